//! # nuq-py
//!
//! The Python bindings of nuq, built by maturin into the `nuq` wheel as the extension module
//! `nuq._nuq` (the pure-Python package `nuq` re-exports it and adds `nuq.torch`). Every
//! function calls nuq's own code — codebook fits of `nuq-core`, the quantizers, calibration
//! and fold of `nuq-nn`, the `.nuq` reader and writer — on numpy arrays, so a table computed
//! here is the table `nuq quantize` computes.
//!
//! | Python | nuq |
//! |---|---|
//! | `fit_codebook` | `Codebook::k_quantile` / `lloyd_max` / `apot` / `uniform` with a `Calibration` scale |
//! | `quantize_weights` | `nuq_nn::quant::quantize_weights` |
//! | `fit_activation` | `nuq_nn::quant::ActQuantizer::fit_nhwc` |
//! | `Network`, `QuantizedNetwork` | `nuq_nn::Network`, `nuq_nn::quant::QuantizedNetwork` (prepare, calibrate, tables, fold) |
//! | `Network.from_onnx` | `nuq_nn::onnx::import` (float ONNX CNNs, as `nuq quantize model.onnx` reads them) |
//! | `IntegerModel` | `nuq_nn::integer::IntegerModel` (`.nuq` read/write, integer-only inference) |
//! | `load_dataset` | `nuq_nn::data::load_mnist_like` / `load_cifar10` |
//!
//! Errors of nuq become `nuq.NuqError` (a `ValueError`) carrying nuq's message.

use pyo3::prelude::*;

mod arrays;
mod codebooks;
mod integer;
mod network;

pyo3::create_exception!(
    _nuq,
    NuqError,
    pyo3::exceptions::PyValueError,
    "An error reported by nuq (bad input, a fit that failed, an unreadable file)."
);

/// A Python `NuqError` from any displayable nuq error.
pub(crate) fn err(e: impl std::fmt::Display) -> PyErr {
    NuqError::new_err(e.to_string())
}

/// The extension module `nuq._nuq`.
#[pymodule]
fn _nuq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NuqError", m.py().get_type::<NuqError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    codebooks::register(m)?;
    network::register(m)?;
    integer::register(m)?;
    Ok(())
}
