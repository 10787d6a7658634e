//! numpy arrays in and out: contiguous views checked against the shapes nuq expects.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::err;

/// The elements of a C-contiguous array, or an error naming `what`.
pub(crate) fn slice<'a, T: numpy::Element>(
    a: &'a PyReadonlyArrayDyn<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| err(format!("{what}: expected a C-contiguous array")))
}

/// A new numpy array of `shape` holding `data`.
pub(crate) fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    data: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    numpy::PyArray1::from_vec(py, data)
        .reshape(numpy::ndarray::IxDyn(shape))
        .map_err(err)
}

/// The shape of `a`, checked to have `dims` dimensions.
pub(crate) fn shape<T: numpy::Element>(
    a: &PyReadonlyArrayDyn<'_, T>,
    dims: usize,
    what: &str,
) -> PyResult<Vec<usize>> {
    let s = a.shape().to_vec();
    if s.len() != dims {
        return Err(err(format!(
            "{what}: expected {dims} dimensions, found shape {s:?}"
        )));
    }
    Ok(s)
}
