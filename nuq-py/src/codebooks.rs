//! Codebooks, scales and the two quantizers on numpy arrays: `fit_codebook`,
//! `quantize_weights`, `fit_activation` and the code functions the float twin applies.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use nuq_core::{Calibration, Codebook, EmpiricalDistribution, Grid, LloydMaxOptions, Polarity};
use nuq_nn::quant::{parse_family, quantize_weights as nn_quantize_weights, ActQuantizer, Family};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{array, shape, slice};
use crate::err;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit_codebook, m)?)?;
    m.add_function(wrap_pyfunction!(calibrate_scale, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_weights, m)?)?;
    m.add_function(wrap_pyfunction!(fit_activation, m)?)?;
    m.add_function(wrap_pyfunction!(activation_codes, m)?)?;
    m.add_function(wrap_pyfunction!(nearest_indices, m)?)?;
    Ok(())
}

/// The family named `name` (`kquantile`, `lloyd`, `apot`, `uniform`, or `k-quantile` /
/// `lloyd-max`).
pub(crate) fn family(name: &str) -> PyResult<Family> {
    parse_family(name).map_err(err)
}

fn grid(signed: bool) -> Grid {
    if signed {
        Grid::I8
    } else {
        Grid::U8
    }
}

fn polarity(signed: bool) -> Polarity {
    if signed {
        Polarity::Signed
    } else {
        Polarity::Unsigned
    }
}

/// fit_codebook(values, family, bits, signed=True)
/// --
///
/// Fits a `bits`-bit codebook of `family` on the 8-bit grid (signed `-127..=127` or unsigned
/// `0..=255`) to `values` (any shape, float32) and returns `{"levels": int32 array, "scale":
/// float, "family": str}` with `real ≈ scale × level`. `kquantile` and `lloyd` are fitted to
/// the data (nuq-core's `Codebook::k_quantile` / `Codebook::lloyd_max`, which choose the
/// scale too); `apot` and `uniform` are fixed level sets with the MSE-optimal scale.
#[pyfunction]
#[pyo3(signature = (values, family, bits, signed = true))]
fn fit_codebook<'py>(
    py: Python<'py>,
    values: PyReadonlyArrayDyn<'py, f32>,
    family: &str,
    bits: u8,
    signed: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let f = self::family(family)?;
    let xs = slice(&values, "values")?;
    let (cb, scale) = match f {
        Family::KQuantile | Family::LloydMax => {
            let d = EmpiricalDistribution::from_values(xs).map_err(err)?;
            let fit = if f == Family::KQuantile {
                Codebook::k_quantile(grid(signed), bits, &d)
            } else {
                Codebook::lloyd_max(grid(signed), bits, &d, &LloydMaxOptions::default())
            }
            .map_err(err)?;
            (fit.codebook, f64::from(fit.scale.get()))
        }
        _ => {
            let cb = if f == Family::Apot {
                Codebook::apot(grid(signed), bits, polarity(signed))
            } else {
                Codebook::uniform(grid(signed), bits, polarity(signed))
            }
            .map_err(err)?;
            let s = Calibration::MseOptimal.scale(xs, &cb).map_err(err)?;
            (cb, f64::from(s.get()))
        }
    };
    let d = PyDict::new(py);
    d.set_item("levels", array(py, cb.levels().to_vec(), &[cb.len()])?)?;
    d.set_item("scale", scale)?;
    d.set_item("family", nuq_nn::quant::family_name(f))?;
    Ok(d)
}

/// calibrate_scale(values, levels, method="mse", signed=True)
/// --
///
/// The scale of a codebook with integer `levels` (on the 8-bit grid) for `values`, by
/// nuq-core's `Calibration`: `"mse"` (MSE-optimal), `"maxabs"`, or `"percentile:P"` (P in
/// (0, 100]).
#[pyfunction]
#[pyo3(signature = (values, levels, method = "mse", signed = true))]
fn calibrate_scale(
    values: PyReadonlyArrayDyn<'_, f32>,
    levels: Vec<i32>,
    method: &str,
    signed: bool,
) -> PyResult<f64> {
    let bits = (usize::BITS - levels.len().saturating_sub(1).leading_zeros()).max(1) as u8;
    let cb = Codebook::explicit(grid(signed), bits, &levels).map_err(err)?;
    let cal = match method {
        "mse" => Calibration::MseOptimal,
        "maxabs" => Calibration::MaxAbs,
        m => match m.strip_prefix("percentile:").map(str::parse::<f32>) {
            Some(Ok(p)) => Calibration::Percentile(p),
            _ => {
                return Err(err(format!(
                    "calibration method: expected mse, maxabs or percentile:P, found {m:?}"
                )))
            }
        },
    };
    let s = cal.scale(slice(&values, "values")?, &cb).map_err(err)?;
    Ok(f64::from(s.get()))
}

/// quantize_weights(weights, bits, family, per_channel=True)
/// --
///
/// nuq's weight quantizer (`nuq_nn::quant::quantize_weights`) on a row-major `[rows, k]`
/// float32 matrix (one row per output channel; a convolution's rows in nuq's OHWI order
/// `[c_out, kh·kw·c_in]`). Returns `{"levels": int32, "scales": float64 [rows],
/// "indices": uint8 [rows, k], "bits": int}`: `w[r, j] ≈ scales[r] × levels[indices[r, j]]`.
/// 8-bit weights use the uniform grid whatever the family.
#[pyfunction]
#[pyo3(signature = (weights, bits, family, per_channel = true))]
fn quantize_weights<'py>(
    py: Python<'py>,
    weights: PyReadonlyArrayDyn<'py, f32>,
    bits: u8,
    family: &str,
    per_channel: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let s = shape(&weights, 2, "weights")?;
    let q = nn_quantize_weights(
        "weights",
        slice(&weights, "weights")?,
        s[0],
        bits,
        self::family(family)?,
        per_channel,
    )
    .map_err(err)?;
    let d = PyDict::new(py);
    let levels = q.table.codebook.levels().to_vec();
    d.set_item("levels", array(py, levels.clone(), &[levels.len()])?)?;
    d.set_item("scales", array(py, q.scales.clone(), &[q.scales.len()])?)?;
    d.set_item("indices", array(py, q.table.indices.clone(), &s)?)?;
    d.set_item("bits", q.table.codebook.bits())?;
    Ok(d)
}

/// An activation quantizer as a Python dict.
pub(crate) fn act_to_dict<'py>(py: Python<'py>, q: &ActQuantizer) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let per = q.codebook.len() - 1;
    d.set_item("bits", q.bits())?;
    d.set_item(
        "thresholds",
        array(py, q.thresholds.clone(), &[q.groups(), per])?,
    )?;
    d.set_item(
        "levels",
        array(py, q.codebook.levels().to_vec(), &[q.codebook.len()])?,
    )?;
    d.set_item("scale", q.scale)?;
    Ok(d)
}

/// An activation quantizer from a dict made by [`act_to_dict`].
pub(crate) fn act_from_dict(d: &Bound<'_, PyDict>) -> PyResult<ActQuantizer> {
    let get = |k: &str| {
        d.get_item(k)?
            .ok_or_else(|| err(format!("activation quantizer: missing key {k:?}")))
    };
    let bits: u8 = get("bits")?.extract()?;
    let levels: Vec<i32> = get("levels")?.extract()?;
    let thresholds: PyReadonlyArrayDyn<'_, f64> = get("thresholds")?.extract()?;
    let scale: f64 = get("scale")?.extract()?;
    let codebook = Codebook::table(Grid::U8, bits, &levels).map_err(err)?;
    let thresholds = slice(&thresholds, "thresholds")?.to_vec();
    let per = codebook.len() - 1;
    if codebook.len() != 1 << bits || thresholds.is_empty() || thresholds.len() % per.max(1) != 0 {
        return Err(err(format!(
            "activation quantizer: expected 2^{bits} levels and groups of {per} thresholds, found {} levels and {} thresholds",
            codebook.len(),
            thresholds.len()
        )));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(err(format!(
            "activation quantizer: scale must be finite and positive, found {scale}"
        )));
    }
    Ok(ActQuantizer {
        thresholds,
        codebook,
        scale,
    })
}

/// fit_activation(samples, family, bits, per_channel=False)
/// --
///
/// nuq's activation quantizer (`ActQuantizer::fit_nhwc`) fitted to post-ReLU samples in
/// channel-last order (`samples[..., c]`; pass an NCHW tensor as `x.permute(0, 2, 3, 1)`, so
/// the thinning of large sets keeps the same pixels nuq keeps). Returns `{"bits",
/// "thresholds": float64 [groups, 2^bits − 1], "levels": int32 [2^bits], "scale"}`: the code
/// of `x` is `#{j : x >= thresholds[g, j]}`, its value `scale × levels[code]`. `per_channel`
/// fits one threshold group per channel (k-quantile only).
#[pyfunction]
#[pyo3(signature = (samples, family, bits, per_channel = false))]
fn fit_activation<'py>(
    py: Python<'py>,
    samples: PyReadonlyArrayDyn<'py, f32>,
    family: &str,
    bits: u8,
    per_channel: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let channels = samples.shape().last().copied().unwrap_or(1).max(1);
    let q = ActQuantizer::fit_nhwc(
        self::family(family)?,
        bits,
        slice(&samples, "samples")?,
        channels,
        per_channel,
    )
    .map_err(err)?;
    act_to_dict(py, &q)
}

/// activation_codes(quantizer, x)
/// --
///
/// The codes nuq's activation quantizer (a dict from `fit_activation`) gives the channel-last
/// float32 values `x` (`ActQuantizer::code_in`, channel `i % C` for the last axis `C`), as a
/// uint8 array of `x`'s shape: the reference the float twin's torch ops are tested against.
#[pyfunction]
fn activation_codes<'py>(
    py: Python<'py>,
    quantizer: &Bound<'py, PyDict>,
    x: PyReadonlyArrayDyn<'py, f32>,
) -> PyResult<Bound<'py, numpy::PyArrayDyn<u8>>> {
    let q = act_from_dict(quantizer)?;
    let shape = x.shape().to_vec();
    let c = shape.last().copied().unwrap_or(1).max(1);
    let codes: Vec<u8> = slice(&x, "x")?
        .iter()
        .enumerate()
        .map(|(i, &v)| q.code_in(v, i % c))
        .collect();
    array(py, codes, &shape)
}

/// nearest_indices(levels, u)
/// --
///
/// The index of the level nearest to each float64 `u` (grid units) by nuq-core's
/// `Codebook::nearest_f64` (ties go up; beyond the outer levels, clamped), as uint8: the
/// reference for the float twin's weight rounding.
#[pyfunction]
fn nearest_indices<'py>(
    py: Python<'py>,
    levels: Vec<i32>,
    u: PyReadonlyArrayDyn<'py, f64>,
) -> PyResult<Bound<'py, numpy::PyArrayDyn<u8>>> {
    let bits = (usize::BITS - levels.len().saturating_sub(1).leading_zeros()).max(1) as u8;
    let cb = Codebook::table(Grid::signed(16).map_err(err)?, bits, &levels).map_err(err)?;
    let shape = u.shape().to_vec();
    let idx = slice(&u, "u")?.iter().map(|&v| cb.nearest_f64(v)).collect();
    array(py, idx, &shape)
}
