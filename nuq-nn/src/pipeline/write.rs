//! The last pipeline step: the integer model into a `.nuq` file on disk.

use std::collections::BTreeMap;
use std::path::Path;

use nuq_fpga_fmt::{CodebookKind, WriteOptions};

use crate::error::NnError;
use crate::integer::{to_file_model, IntegerModel};

/// Writes `model` to `path` as a `.nuq` file (a temporary file renamed into place: a failed
/// run leaves no partial file) and returns the file's size in bytes. `kind` names the codebook
/// family; `metadata` entries are stored in the file.
///
/// # Errors
/// An inconsistent model or a scale the format cannot hold ([`to_file_model`]),
/// [`NnError::Write`], or [`NnError::Io`] when the written file cannot be measured.
pub fn write_model(
    path: &Path,
    model: &IntegerModel,
    kind: CodebookKind,
    metadata: BTreeMap<String, String>,
) -> Result<u64, NnError> {
    let file_model = to_file_model(model, kind, metadata)?;
    nuq_fpga_fmt::write_file(path, &file_model, &WriteOptions::default())?;
    Ok(std::fs::metadata(path)
        .map_err(|source| NnError::Io {
            path: path.display().to_string(),
            source,
        })?
        .len())
}
