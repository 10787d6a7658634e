//! Safetensors checkpoints with PyTorch tensor names and layouts, and resumable training state.
//!
//! A model file holds every parameter and BatchNorm buffer under its PyTorch name
//! (`conv1.weight` as `[out, in, kh, kw]`, `bn1.running_mean`, `bn1.num_batches_tracked` as an
//! `i64` scalar, `layer2.0.downsample.0.weight`, `fc.bias`; see [`crate::models`]), so a
//! `state_dict` saved from PyTorch with `safetensors.torch.save_file` loads here and back.
//! The training state (optimiser buffers, step counts, epoch, RNG) lives in a separate
//! safetensors file. Files are written to a temporary name in the same folder and
//! renamed into place, so a crash never leaves a truncated checkpoint.
//!
//! Loading is strict about what matters and forgiving about what PyTorch users' files
//! commonly differ in:
//!
//! - **Names**: a file tensor matches the model tensor of the same name; failing that, its
//!   leading [`WRAPPER_PREFIXES`] (`module.` from `DataParallel`/`DistributedDataParallel`,
//!   nested `module.module.` too, and `_orig_mod.` from `torch.compile`) are stripped one at a
//!   time until it matches. Two file tensors matching one model tensor are an error
//!   ([`CheckpointError::Duplicate`]). Every other model tensor must be present and no file
//!   tensor may remain: [`CheckpointError::Names`] lists the missing and the unexpected names
//!   (the first [`NAMES_SHOWN`] of each, with the counts).
//! - **`num_batches_tracked`** may be absent (it is set to 0, as PyTorch's BatchNorm does when
//!   loading a `state_dict` without it; nuq's BatchNorm uses a fixed momentum, so the count
//!   changes no result) and may be stored as any integer type or as a float holding a whole
//!   number ([`CheckpointError::Count`] otherwise).
//! - **Element types**: parameters and running statistics may be `F32`, `F16`, `BF16` (both
//!   converted exactly) or `F64` (rounded to nearest; a finite value beyond `f32`'s range is
//!   [`CheckpointError::Range`]); any other type is [`CheckpointError::Dtype`].
//! - **Shapes** must be exactly the model's (PyTorch layout); [`CheckpointError::Shape`] lists
//!   every mismatch with the expected and found shapes.
//!
//! Nothing is assigned unless the whole file loads.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

mod names;
mod tensors;

use crate::error::NnError;
use crate::models::{Arch, ModelConfig, Network};
use crate::optim::StateTensor;
use crate::param::BufferMut;

pub use crate::error::{CheckpointError, ShapeMismatch, NAMES_SHOWN};
pub use names::WRAPPER_PREFIXES;

/// An owned tensor to be written.
struct Owned {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serializes `tensors` with `metadata` as safetensors bytes whose JSON header has its keys
/// sorted, so equal contents give equal bytes in every process (the metadata map's own order
/// is random per process).
fn serialize(
    path: &Path,
    tensors: &[Owned],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| CheckpointError::Format {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(canonical_header(bytes))
}

/// `bytes` (safetensors) with the header's JSON objects re-serialized in sorted key order and
/// padded with spaces to its original length (the data offsets are unchanged).
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(n) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| bytes.len() >= 8 + n)
    else {
        return bytes;
    };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&bytes[8..8 + n]) else {
        return bytes;
    };
    // serde_json's map is a BTreeMap: keys come out sorted.
    let Ok(text) = serde_json::to_vec(&header) else {
        return bytes;
    };
    if text.len() <= n {
        bytes[8..8 + text.len()].copy_from_slice(&text);
        bytes[8 + text.len()..8 + n].fill(b' ');
    }
    bytes
}

fn write_atomic(
    path: &Path,
    tensors: &[Owned],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let bytes = serialize(path, tensors, metadata)?;
    write_bytes_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file next to `path`, flushes it and renames it over `path`.
fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>, CheckpointError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// The `f32` values of the one-dimensional tensor `name` of `len` values (training state).
fn f32_vector(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    len: usize,
) -> Result<Vec<f32>, CheckpointError> {
    let t = tensor(st, path, name)?;
    if t.shape() != [len] {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            mismatches: vec![ShapeMismatch {
                name: name.to_string(),
                expected: vec![len],
                found: t.shape().to_vec(),
            }],
        });
    }
    tensors::to_f32(path, name, &t)
}

/// The tensor `name`, which the file lists.
fn tensor<'a>(
    st: &SafeTensors<'a>,
    path: &Path,
    name: &str,
) -> Result<TensorView<'a>, CheckpointError> {
    st.tensor(name).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes every parameter and buffer of `net` under its PyTorch name and layout, with the
/// model configuration as metadata (the bytes of [`model_bytes`]).
pub fn save_model(net: &mut Network, path: &Path) -> Result<(), NnError> {
    let bytes = model_bytes(net)?;
    write_bytes_atomic(path, &bytes)?;
    Ok(())
}

/// The checkpoint [`save_model`] writes, as bytes: equal networks give equal bytes.
pub fn model_bytes(net: &mut Network) -> Result<Vec<u8>, NnError> {
    let mut tensors = Vec::new();
    net.visit_params(&mut |name, p| {
        tensors.push(Owned {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape: p.torch_shape.clone(),
            bytes: f32_bytes(&p.to_torch()),
        })
    });
    net.visit_buffers(&mut |name, b| {
        tensors.push(match b {
            BufferMut::F32(v) => Owned {
                name: name.to_string(),
                dtype: Dtype::F32,
                shape: vec![v.len()],
                bytes: f32_bytes(v),
            },
            BufferMut::I64(v) => Owned {
                name: name.to_string(),
                dtype: Dtype::I64,
                shape: vec![],
                bytes: v.to_le_bytes().to_vec(),
            },
        })
    });
    let c = net.config();
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("nuq.arch".to_string(), c.arch.name().to_string()),
        ("nuq.width".to_string(), c.width.to_string()),
        ("nuq.in_channels".to_string(), c.in_channels.to_string()),
        ("nuq.classes".to_string(), c.classes.to_string()),
        (
            "nuq.input_size".to_string(),
            format!("{}x{}", c.input_size.0, c.input_size.1),
        ),
    ]);
    Ok(serialize(Path::new("model"), &tensors, meta)?)
}

/// The model configuration [`save_model`] stored in the checkpoint's metadata, or `None` for a
/// checkpoint without it (e.g. one written by PyTorch): the caller must then say which model
/// the tensors belong to.
///
/// # Errors
/// An unreadable or malformed file, or nuq metadata that is present but incomplete or invalid
/// (the error names the key).
pub fn read_model_config(path: &Path) -> Result<Option<ModelConfig>, NnError> {
    read_model_config_bytes(path, &read_file(path)?)
}

/// As [`read_model_config`] for the contents `bytes` of a checkpoint (`path` only names it in
/// errors).
///
/// # Errors
/// As [`read_model_config`].
pub fn read_model_config_bytes(path: &Path, bytes: &[u8]) -> Result<Option<ModelConfig>, NnError> {
    let meta = metadata(path, bytes)?;
    if !meta.contains_key("nuq.arch") {
        return Ok(None);
    }
    let bad = |key: &str, message: String| CheckpointError::Metadata {
        path: path.to_path_buf(),
        key: key.into(),
        message,
    };
    let get = |key: &str| -> Result<&String, CheckpointError> {
        meta.get(key).ok_or_else(|| bad(key, "missing".into()))
    };
    let count = |key: &str| -> Result<usize, CheckpointError> {
        let text = get(key)?;
        match text.parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(bad(
                key,
                format!("expected a positive integer, found {text:?}"),
            )),
        }
    };
    let arch: Arch = get("nuq.arch")?
        .parse()
        .map_err(|e: NnError| bad("nuq.arch", e.to_string()))?;
    let width_text = get("nuq.width")?;
    let width = match width_text.parse::<f32>() {
        Ok(w) if w > 0.0 && w.is_finite() => w,
        _ => {
            return Err(bad(
                "nuq.width",
                format!("expected a positive number, found {width_text:?}"),
            )
            .into())
        }
    };
    let size_text = get("nuq.input_size")?;
    let input_size = size_text
        .split_once('x')
        .and_then(|(h, w)| Some((h.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
        .filter(|&(h, w)| h > 0 && w > 0)
        .ok_or_else(|| {
            bad(
                "nuq.input_size",
                format!("expected HxW, found {size_text:?}"),
            )
        })?;
    Ok(Some(ModelConfig {
        arch,
        width,
        in_channels: count("nuq.in_channels")?,
        classes: count("nuq.classes")?,
        input_size,
    }))
}

/// Loads parameters and buffers into `net` (built with the matching configuration), with the
/// forgiving rules of the [module documentation](self): wrapper prefixes stripped, a missing
/// `num_batches_tracked` set to 0, float types converted. On any error `net` is left
/// unchanged.
///
/// # Errors
/// [`CheckpointError::Io`], [`CheckpointError::Format`], then the first kind of problem found
/// in this order: [`CheckpointError::Duplicate`], [`CheckpointError::Names`],
/// [`CheckpointError::Shape`], [`CheckpointError::Dtype`], [`CheckpointError::Range`],
/// [`CheckpointError::Count`].
pub fn load_model(net: &mut Network, path: &Path) -> Result<(), NnError> {
    load_model_bytes(net, path, &read_file(path)?)
}

/// What the model holds under one name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `f32` values (a parameter or a running statistic).
    Values,
    /// A batch count (`num_batches_tracked`), optional in the file.
    Count,
}

/// A tensor the model needs: name, PyTorch shape, kind.
struct Want {
    name: String,
    shape: Vec<usize>,
    kind: Kind,
}

/// A decoded value for one [`Want`].
enum Value {
    Values(Vec<f32>),
    Count(i64),
}

/// As [`load_model`] for the contents `bytes` of a checkpoint (`path` only names it in
/// errors).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_bytes(net: &mut Network, path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let st = parse(path, bytes)?;
    let mut wants: Vec<Want> = Vec::new();
    net.visit_params(&mut |name, p| {
        wants.push(Want {
            name: name.to_string(),
            shape: p.torch_shape.clone(),
            kind: Kind::Values,
        })
    });
    net.visit_buffers(&mut |name, b| {
        let (shape, kind) = match b {
            BufferMut::F32(v) => (vec![v.len()], Kind::Values),
            BufferMut::I64(_) => (vec![], Kind::Count),
        };
        wants.push(Want {
            name: name.to_string(),
            shape,
            kind,
        })
    });
    let values = read_wanted(&st, path, &wants)?;
    // Everything is read and checked: assign (in the order visited above).
    let mut values = values.into_iter();
    let mut set_err = None;
    net.visit_params(&mut |_, p| {
        if let Some(Value::Values(v)) = values.next() {
            if let Err(e) = p.set_from_torch(&v) {
                set_err.get_or_insert(e);
            }
        }
    });
    if let Some(e) = set_err {
        return Err(e);
    }
    net.visit_buffers(&mut |_, b| match (b, values.next()) {
        (BufferMut::F32(v), Some(Value::Values(x))) => *v = x,
        (BufferMut::I64(v), Some(Value::Count(x))) => *v = x,
        _ => {}
    });
    Ok(())
}

/// The value of every wanted tensor (in order), matched, checked and converted.
fn read_wanted(
    st: &SafeTensors<'_>,
    path: &Path,
    wants: &[Want],
) -> Result<Vec<Value>, CheckpointError> {
    let index: HashMap<&str, usize> = wants
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.as_str(), i))
        .collect();
    let mut file_names = st.names();
    file_names.sort_unstable();
    let mut source: Vec<Option<&str>> = vec![None; wants.len()];
    let mut unexpected = Vec::new();
    for f in file_names {
        match names::model_name(f, |n| index.contains_key(n)) {
            Some(n) => {
                let slot = &mut source[index[n]];
                if let Some(first) = slot {
                    return Err(CheckpointError::Duplicate {
                        path: path.to_path_buf(),
                        name: n.to_string(),
                        first: first.to_string(),
                        second: f.to_string(),
                    });
                }
                *slot = Some(f);
            }
            None => unexpected.push(f.to_string()),
        }
    }
    let missing: Vec<String> = wants
        .iter()
        .zip(&source)
        .filter(|(w, s)| s.is_none() && w.kind != Kind::Count)
        .map(|(w, _)| w.name.clone())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(CheckpointError::Names {
            path: path.to_path_buf(),
            missing,
            unexpected,
        });
    }
    let mut views = Vec::with_capacity(wants.len());
    let mut mismatches = Vec::new();
    for (w, s) in wants.iter().zip(&source) {
        let view = s.map(|f| tensor(st, path, f)).transpose()?;
        if let Some(t) = &view {
            let fits = match w.kind {
                Kind::Values => t.shape() == w.shape.as_slice(),
                Kind::Count => tensors::is_scalar(t.shape()),
            };
            if !fits {
                mismatches.push(ShapeMismatch {
                    name: w.name.clone(),
                    expected: w.shape.clone(),
                    found: t.shape().to_vec(),
                });
            }
        }
        views.push(view);
    }
    if !mismatches.is_empty() {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            mismatches,
        });
    }
    wants
        .iter()
        .zip(views)
        .map(|(w, view)| match (w.kind, view) {
            (Kind::Values, Some(t)) => tensors::to_f32(path, &w.name, &t).map(Value::Values),
            (Kind::Count, Some(t)) => tensors::count(path, &w.name, &t).map(Value::Count),
            // Checked above: only a batch count may be absent (PyTorch's default, 0).
            (_, None) => Ok(Value::Count(0)),
        })
        .collect()
}

/// Where the training state of the model checkpoint at `model` is kept: `model` with
/// `.state` appended (`vgg.safetensors` → `vgg.safetensors.state`).
pub fn train_state_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".state");
    PathBuf::from(s)
}

/// Everything besides the model needed to resume training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: u64,
    /// Optimiser steps taken (drives the schedule).
    pub step: u64,
    /// State of the training RNG.
    pub rng: [u64; 4],
    /// Optimiser state tensors by name ([`crate::optim::Optimizer::state`]).
    pub optimizer: Vec<StateTensor>,
    /// The optimiser's own step count.
    pub optimizer_steps: u64,
    /// Free-form entries (e.g. the command line), stored as metadata.
    pub extra: Vec<(String, String)>,
    /// The model checkpoint ([`model_bytes`]) this state belongs to, stored in the same file
    /// (tensor [`MODEL_TENSOR`]) so that a run killed between writing the model and the state
    /// still resumes from a consistent pair.
    pub model: Option<Vec<u8>>,
}

/// Name of the `U8` tensor of a training-state file holding [`TrainState::model`].
pub const MODEL_TENSOR: &str = "nuq.model";

/// Writes a [`TrainState`] (tensors for the optimiser, metadata for the scalars).
pub fn save_train_state(state: &TrainState, path: &Path) -> Result<(), NnError> {
    let mut tensors: Vec<Owned> = state
        .optimizer
        .iter()
        .map(|(n, v)| Owned {
            name: n.clone(),
            dtype: Dtype::F32,
            shape: vec![v.len()],
            bytes: f32_bytes(v),
        })
        .collect();
    if let Some(model) = &state.model {
        tensors.push(Owned {
            name: MODEL_TENSOR.into(),
            dtype: Dtype::U8,
            shape: vec![model.len()],
            bytes: model.clone(),
        });
    }
    let mut meta: HashMap<String, String> = state
        .extra
        .iter()
        .map(|(k, v)| (format!("extra.{k}"), v.clone()))
        .collect();
    meta.insert("nuq.epoch".into(), state.epoch.to_string());
    meta.insert("nuq.step".into(), state.step.to_string());
    meta.insert(
        "nuq.optimizer_steps".into(),
        state.optimizer_steps.to_string(),
    );
    meta.insert(
        "nuq.rng".into(),
        state
            .rng
            .iter()
            .map(|v| format!("{v:016x}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    write_atomic(path, &tensors, meta)?;
    Ok(())
}

/// Reads a [`TrainState`] written by [`save_train_state`].
pub fn load_train_state(path: &Path) -> Result<TrainState, NnError> {
    load_train_state_bytes(path, &read_file(path)?)
}

/// As [`load_train_state`] for the contents `bytes` of a state file (`path` only names it in
/// errors).
///
/// # Errors
/// As [`load_train_state`].
pub fn load_train_state_bytes(path: &Path, bytes: &[u8]) -> Result<TrainState, NnError> {
    let st = parse(path, bytes)?;
    let meta = metadata(path, bytes)?;
    let get = |key: &str| -> Result<&String, CheckpointError> {
        meta.get(key).ok_or_else(|| CheckpointError::Metadata {
            path: path.to_path_buf(),
            key: key.into(),
            message: "missing".into(),
        })
    };
    let num = |key: &str| -> Result<u64, CheckpointError> {
        get(key)?.parse().map_err(|e| CheckpointError::Metadata {
            path: path.to_path_buf(),
            key: key.into(),
            message: format!("not an integer: {e}"),
        })
    };
    let rng_text = get("nuq.rng")?;
    let words: Vec<u64> = rng_text
        .split(',')
        .map(|w| u64::from_str_radix(w, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| CheckpointError::Metadata {
            path: path.to_path_buf(),
            key: "nuq.rng".into(),
            message: e.to_string(),
        })?;
    let rng: [u64; 4] = words
        .try_into()
        .map_err(|w: Vec<u64>| CheckpointError::Metadata {
            path: path.to_path_buf(),
            key: "nuq.rng".into(),
            message: format!("expected 4 words, found {}", w.len()),
        })?;
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter(|&n| n != MODEL_TENSOR)
        .map(str::to_string)
        .collect();
    names.sort();
    let model = match st.tensor(MODEL_TENSOR) {
        Ok(t) if t.dtype() == Dtype::U8 && t.shape().len() == 1 => Some(t.data().to_vec()),
        Ok(t) => {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: MODEL_TENSOR.into(),
                expected: "U8, one dimension".into(),
                found: format!("{:?} {:?}", t.dtype(), t.shape()),
            }
            .into())
        }
        Err(_) => None,
    };
    let mut optimizer = Vec::new();
    for n in names {
        let len = st
            .tensor(&n)
            .ok()
            .and_then(|t| t.shape().iter().try_fold(1usize, |p, &d| p.checked_mul(d)))
            .unwrap_or(0);
        optimizer.push((n.clone(), f32_vector(&st, path, &n, len)?));
    }
    let mut extra: Vec<(String, String)> = meta
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("extra.").map(|k| (k.to_string(), v.clone())))
        .collect();
    extra.sort();
    Ok(TrainState {
        epoch: num("nuq.epoch")?,
        step: num("nuq.step")?,
        rng,
        optimizer,
        optimizer_steps: num("nuq.optimizer_steps")?,
        extra,
        model,
    })
}
