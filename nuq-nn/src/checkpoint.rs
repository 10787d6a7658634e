//! Safetensors checkpoints with PyTorch tensor names and layouts, and resumable training state.
//!
//! A model file holds every parameter and BatchNorm buffer under its PyTorch name
//! (`conv1.weight` as `[out, in, kh, kw]`, `bn1.running_mean`, `bn1.num_batches_tracked` as an
//! `i64` scalar, `layer2.0.downsample.0.weight`, `fc.bias`; see [`crate::models`]), so a
//! `state_dict` saved from PyTorch with `safetensors.torch.save_file` loads here and back.
//! Loading is strict: every tensor must be present with its exact shape and no unknown tensor
//! may remain. The training state (optimiser buffers, step counts, epoch, RNG) lives in a
//! separate safetensors file. Files are written to a temporary name in the same folder and
//! renamed into place, so a crash never leaves a truncated checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::NnError;
use crate::models::{Arch, ModelConfig, Network};
use crate::optim::StateTensor;
use crate::param::BufferMut;

pub use crate::error::CheckpointError;

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

fn f32_tensor(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, CheckpointError> {
    let t = st.tensor(name).map_err(|_| CheckpointError::Missing {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: "F32".into(),
            found: format!("{:?}", t.dtype()),
        });
    }
    if t.shape() != shape {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: t.shape().to_vec(),
        });
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

fn i64_scalar(st: &SafeTensors<'_>, path: &Path, name: &str) -> Result<i64, CheckpointError> {
    let t = st.tensor(name).map_err(|_| CheckpointError::Missing {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.dtype() != Dtype::I64 {
        return Err(CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: "I64".into(),
            found: format!("{:?}", t.dtype()),
        });
    }
    let bytes: Option<[u8; 8]> = t.data().try_into().ok();
    match bytes {
        Some(b) if t.shape().len() <= 1 && t.shape().iter().all(|&d| d == 1) => {
            Ok(i64::from_le_bytes(b))
        }
        _ => Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: vec![],
            found: t.shape().to_vec(),
        }),
    }
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

/// Loads parameters and buffers into `net` (built with the matching configuration). Strict:
/// a missing, mis-shaped, mistyped or unexpected tensor is an error and `net` is left
/// unchanged.
pub fn load_model(net: &mut Network, path: &Path) -> Result<(), NnError> {
    load_model_bytes(net, path, &read_file(path)?)
}

/// As [`load_model`] for the contents `bytes` of a checkpoint (`path` only names it in
/// errors).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_bytes(net: &mut Network, path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let st = parse(path, bytes)?;
    // Read and validate everything first, then assign.
    let mut params: Vec<Vec<f32>> = Vec::new();
    let mut bufs: Vec<(Option<Vec<f32>>, Option<i64>)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut err: Option<CheckpointError> = None;
    net.visit_params(&mut |name, p| {
        if err.is_none() {
            match f32_tensor(&st, path, name, &p.torch_shape) {
                Ok(v) => params.push(v),
                Err(e) => err = Some(e),
            }
            seen.push(name.to_string());
        }
    });
    net.visit_buffers(&mut |name, b| {
        if err.is_none() {
            let r = match b {
                BufferMut::F32(v) => {
                    f32_tensor(&st, path, name, &[v.len()]).map(|x| (Some(x), None))
                }
                BufferMut::I64(_) => i64_scalar(&st, path, name).map(|x| (None, Some(x))),
            };
            match r {
                Ok(v) => bufs.push(v),
                Err(e) => err = Some(e),
            }
            seen.push(name.to_string());
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    let mut extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !seen.iter().any(|s| s == n))
        .map(str::to_string)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(CheckpointError::Unexpected {
            path: path.to_path_buf(),
            names: extra,
        }
        .into());
    }
    let mut pi = params.into_iter();
    let mut set_err = None;
    net.visit_params(&mut |_, p| {
        if let Err(e) = p.set_from_torch(&pi.next().expect("one per parameter")) {
            set_err.get_or_insert(e);
        }
    });
    if let Some(e) = set_err {
        return Err(e);
    }
    let mut bi = bufs.into_iter();
    net.visit_buffers(&mut |_, b| match (b, bi.next().expect("one per buffer")) {
        (BufferMut::F32(v), (Some(x), _)) => *v = x,
        (BufferMut::I64(v), (_, Some(x))) => *v = x,
        _ => unreachable!("buffer kinds visited in the same order"),
    });
    Ok(())
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
        optimizer.push((n.clone(), f32_tensor(&st, path, &n, &[len])?));
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
