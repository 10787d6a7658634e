//! Decoding stored tensors into what a [`Network`](crate::Network) holds: any float dtype to
//! `f32`, and a batch count (`num_batches_tracked`) from any integer or float dtype.

use half::{bf16, f16};
use nuq_core::Real;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::error::{CheckpointError, ShapeMismatch};

/// The element types [`to_f32`] converts, as error messages name them.
pub(super) const FLOAT_DTYPES: &str = "a float type (F32, F16, BF16 or F64)";

/// Little-endian elements of `data` as `T`, converted to `f32` (exact for `f16`/`bf16`; `f32`
/// itself is only copied out of the possibly unaligned file bytes).
fn decode<T: Real, const N: usize>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<f32> {
    data.chunks_exact(N)
        .map(|b| {
            let mut a = [0u8; N];
            a.copy_from_slice(b);
            from(a).as_()
        })
        .collect()
}

/// The values of tensor `name` as `f32`: `F32` as stored, `F16`/`BF16` exactly, `F64` rounded to
/// nearest.
///
/// # Errors
/// [`CheckpointError::Dtype`] for any other element type, [`CheckpointError::Range`] for a
/// finite `F64` value beyond `f32`'s range (non-finite values pass as they are, like `F32`).
pub(super) fn to_f32(
    path: &std::path::Path,
    name: &str,
    t: &TensorView<'_>,
) -> Result<Vec<f32>, CheckpointError> {
    let data = t.data();
    match t.dtype() {
        Dtype::F32 => Ok(decode(data, f32::from_le_bytes)),
        Dtype::F16 => Ok(decode(data, f16::from_le_bytes)),
        Dtype::BF16 => Ok(decode(data, bf16::from_le_bytes)),
        Dtype::F64 => {
            let v = decode(data, f64::from_le_bytes);
            // Rounding made a finite value infinite: refuse it, naming the first.
            let overflow = v
                .iter()
                .enumerate()
                .filter(|(_, x)| x.is_infinite())
                .find_map(|(index, _)| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&data[index * 8..index * 8 + 8]);
                    let value = f64::from_le_bytes(b);
                    value.is_finite().then_some((index, value))
                });
            match overflow {
                Some((index, value)) => Err(CheckpointError::Range {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    index,
                    value,
                }),
                None => Ok(v),
            }
        }
        other => Err(CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: FLOAT_DTYPES.into(),
            found: format!("{other:?}"),
        }),
    }
}

/// Whether `shape` holds one value as a scalar: `[]` or `[1]`.
pub(super) fn is_scalar(shape: &[usize]) -> bool {
    shape.len() <= 1 && shape.iter().all(|&d| d == 1)
}

/// The batch count held by the scalar tensor `name`, stored as any integer type or as any
/// float type holding a whole number (PyTorch keeps it as `int64`; exporters that cast the
/// whole `state_dict` to a float type store it as float).
///
/// # Errors
/// [`CheckpointError::Shape`] for a tensor of more than one value, [`CheckpointError::Dtype`]
/// for a type that is neither integer nor float, [`CheckpointError::Count`] for a value that
/// is not a whole number in the `i64` range.
pub(super) fn count(
    path: &std::path::Path,
    name: &str,
    t: &TensorView<'_>,
) -> Result<i64, CheckpointError> {
    if !is_scalar(t.shape()) {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            mismatches: vec![ShapeMismatch {
                name: name.to_string(),
                expected: vec![],
                found: t.shape().to_vec(),
            }],
        });
    }
    let data = t.data();
    let bytes = |n: usize| -> [u8; 8] {
        let mut b = [0u8; 8];
        let n = n.min(data.len());
        b[..n].copy_from_slice(&data[..n]);
        b
    };
    let bad = |value: String| CheckpointError::Count {
        path: path.to_path_buf(),
        name: name.to_string(),
        value,
    };
    const TWO_63: f64 = (1u64 << 63) as f64;
    let whole = |v: f64| -> Result<i64, CheckpointError> {
        // 2^63 is exactly representable; every whole f64 in [-2^63, 2^63) fits i64.
        if v.is_finite() && v.fract() == 0.0 && (-TWO_63..TWO_63).contains(&v) {
            Ok(v as i64)
        } else {
            Err(bad(if v.abs() < 1e15 {
                v.to_string()
            } else {
                format!("{v:e}")
            }))
        }
    };
    let [b0, b1, b2, b3, b4, b5, b6, b7] = bytes(8);
    match t.dtype() {
        Dtype::I64 => Ok(i64::from_le_bytes(bytes(8))),
        Dtype::I32 => Ok(i32::from_le_bytes([b0, b1, b2, b3]).into()),
        Dtype::I16 => Ok(i16::from_le_bytes([b0, b1]).into()),
        Dtype::I8 => Ok(i8::from_le_bytes([b0]).into()),
        Dtype::U64 => {
            let v = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
            i64::try_from(v).map_err(|_| bad(v.to_string()))
        }
        Dtype::U32 => Ok(u32::from_le_bytes([b0, b1, b2, b3]).into()),
        Dtype::U16 => Ok(u16::from_le_bytes([b0, b1]).into()),
        Dtype::U8 => Ok(b0.into()),
        Dtype::F64 => whole(f64::from_le_bytes(bytes(8))),
        Dtype::F32 => whole(f32::from_le_bytes([b0, b1, b2, b3]).into()),
        Dtype::F16 => whole(f16::from_le_bytes([b0, b1]).into()),
        Dtype::BF16 => whole(bf16::from_le_bytes([b0, b1]).into()),
        other => Err(CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: "an integer or float scalar".into(),
            found: format!("{other:?}"),
        }),
    }
}
