//! nuq's integer model from Python: reading and writing `.nuq` files and integer-only
//! inference on uint8 image batches; and the dataset readers nuq's command line uses.

use std::collections::BTreeMap;
use std::path::Path;

use numpy::PyReadonlyArrayDyn;
use nuq_fpga_fmt::{Model, NuqFile};
use nuq_kernels::KernelPath;
use nuq_nn::data::{load_cifar10, load_mnist_like, Split};
use nuq_nn::integer::{from_file_model, IntegerModel as NnModel, IntegerRunner};
use nuq_nn::pipeline::write_model;
use pyo3::prelude::*;

use crate::arrays::{array, shape, slice};
use crate::codebooks::family;
use crate::err;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IntegerModel>()?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    Ok(())
}

/// Images per runner call (fewer when the runner's memory limit asks for it).
const BATCH: usize = 500;

/// nuq's integer model: integer weights, MAC thresholds and fixed-point factors; inference
/// uses integers only. Made by `QuantizedNetwork.to_integer()` or read by `IntegerModel.load`.
#[pyclass(unsendable, module = "nuq._nuq")]
pub struct IntegerModel {
    model: NnModel,
}

impl IntegerModel {
    pub(crate) fn new(model: NnModel) -> Self {
        Self { model }
    }

    /// Logits of `n` NHWC uint8 images, batch by batch.
    fn run(&self, images: &[u8], n: usize) -> PyResult<Vec<i32>> {
        let mut runner =
            IntegerRunner::new(&self.model, KernelPath::best_available()).map_err(err)?;
        let mut b = BATCH;
        while runner.check_batch(b).is_err() && b > 1 {
            b /= 2;
        }
        let len = images.len() / n.max(1);
        let mut out = Vec::with_capacity(n * runner.classes());
        for chunk in images.chunks(b * len.max(1)) {
            let m = chunk.len() / len.max(1);
            out.extend_from_slice(runner.forward(chunk, m).map_err(err)?);
        }
        Ok(out)
    }

    fn check_images<'a>(
        &self,
        images: &'a PyReadonlyArrayDyn<'_, u8>,
    ) -> PyResult<(&'a [u8], usize)> {
        let s = shape(images, 4, "images [n, h, w, c]")?;
        let i = &self.model.input;
        if (s[1], s[2], s[3]) != (i.height, i.width, i.channels) {
            return Err(err(format!(
                "images: expected [n, {}, {}, {}] (NHWC uint8), found {s:?}",
                i.height, i.width, i.channels
            )));
        }
        Ok((slice(images, "images")?, s[0]))
    }
}

#[pymethods]
impl IntegerModel {
    /// load(path)
    /// --
    ///
    /// Reads and validates a `.nuq` file (header, checksums, sections, graph) and maps it to
    /// the integer model it describes.
    #[staticmethod]
    fn load(path: &str) -> PyResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| err(format!("{path}: {e}")))?;
        let file = NuqFile::parse(&bytes).map_err(|e| err(format!("{path}: {e}")))?;
        let model = from_file_model(&Model::from_file(&file))
            .map_err(|e| err(format!("{path}: not an integer model nuq can run: {e}")))?;
        Ok(Self { model })
    }

    /// save(path, family, metadata=None)
    /// --
    ///
    /// Writes the model as a `.nuq` file (`family` names the codebook family stored in the
    /// file; `metadata` string pairs are stored too) and returns its size in bytes.
    #[pyo3(signature = (path, family, metadata = None))]
    fn save(
        &self,
        path: &str,
        family: &str,
        metadata: Option<BTreeMap<String, String>>,
    ) -> PyResult<u64> {
        write_model(
            Path::new(path),
            &self.model,
            self::family(family)?,
            metadata.unwrap_or_default(),
        )
        .map_err(err)
    }

    /// export_onnx(path, flavour="onnx", batch=None)
    /// --
    ///
    /// Writes the model as an ONNX graph (`nuq export --onnx` / `--qonnx`). `flavour`
    /// `"onnx"`: standard integer operators that ONNX Runtime runs exactly, input `image`
    /// uint8 `[N, C, H, W]`, output `logits` int32. `"qonnx"`: float containers with one
    /// `MultiThreshold` per requantizer for the qonnx package and FINN, `logits` float64,
    /// a fixed batch (default 1). Returns the report: `nodes`, `exact` (whether every
    /// worst-case accumulator fits the arithmetic used) and `layers`, a list of
    /// `(node, op, bound, limit)`.
    #[pyo3(signature = (path, flavour = "onnx", batch = None))]
    fn export_onnx<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        flavour: &str,
        batch: Option<usize>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        use nuq_nn::onnx::{export_file, ExportOptions, Flavour};
        let flavour: Flavour = flavour.parse().map_err(err)?;
        let r = export_file(
            Path::new(path),
            &self.model,
            &ExportOptions { flavour, batch },
        )
        .map_err(err)?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("flavour", flavour.name())?;
        d.set_item("nodes", r.nodes)?;
        d.set_item("batch", r.batch)?;
        d.set_item("exact", r.exact)?;
        let layers: Vec<(usize, &str, u64, u64)> = r
            .layers
            .iter()
            .map(|l| (l.node, l.op, l.bound, l.limit))
            .collect();
        d.set_item("layers", layers)?;
        Ok(d)
    }

    /// forward(images)
    /// --
    ///
    /// Integer logits `[n, classes]` (int32) of NHWC uint8 images `[n, h, w, c]`; the real
    /// logit is `logit_scale ×` this.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
    ) -> PyResult<Bound<'py, numpy::PyArrayDyn<i32>>> {
        let (x, n) = self.check_images(&images)?;
        let out = self.run(x, n)?;
        let classes = out.len() / n.max(1);
        array(py, out, &[n, classes])
    }

    /// predict(images)
    /// --
    ///
    /// The predicted class of each NHWC uint8 image (the first largest logit), int64 `[n]`.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
    ) -> PyResult<Bound<'py, numpy::PyArrayDyn<i64>>> {
        let (x, n) = self.check_images(&images)?;
        let out = self.run(x, n)?;
        let classes = (out.len() / n.max(1)).max(1);
        let pred = out
            .chunks_exact(classes)
            .map(|row| nuq_nn::pipeline::argmax(row) as i64)
            .collect();
        array(py, pred, &[n])
    }

    /// Real value of one logit unit (informative).
    #[getter]
    fn logit_scale(&self) -> f32 {
        self.model.logit_scale.get()
    }

    /// The input shape `(height, width, channels)`.
    #[getter]
    fn input_shape(&self) -> (usize, usize, usize) {
        let i = &self.model.input;
        (i.height, i.width, i.channels)
    }

    /// The input zero points (one byte value per channel, as a list of ints).
    #[getter]
    fn zero_point(&self) -> Vec<u32> {
        self.model
            .input
            .zero_point
            .iter()
            .map(|&z| u32::from(z))
            .collect()
    }

    /// Number of classes.
    #[getter]
    fn classes(&self) -> PyResult<usize> {
        self.model.classes().map_err(err)
    }

    /// Multiply-accumulates per image.
    #[getter]
    fn macs_per_image(&self) -> PyResult<u64> {
        self.model.macs_per_image().map_err(err)
    }
}

/// A dataset's images and labels as numpy arrays.
type Images<'py> = (
    Bound<'py, numpy::PyArrayDyn<u8>>,
    Bound<'py, numpy::PyArrayDyn<i64>>,
);

/// load_dataset(dir, split, kind="mnist")
/// --
///
/// A dataset as nuq's command line reads it: `kind` `"mnist"` (IDX files, e.g.
/// Fashion-MNIST; gzipped or not) or `"cifar10"` (binary batches), `split` `"train"` or
/// `"test"`. Returns `(images uint8 [n, h, w, c], labels int64 [n])`.
#[pyfunction]
#[pyo3(signature = (dir, split, kind = "mnist"))]
fn load_dataset<'py>(py: Python<'py>, dir: &str, split: &str, kind: &str) -> PyResult<Images<'py>> {
    let split = match split {
        "train" => Split::Train,
        "test" => Split::Test,
        s => return Err(err(format!("split: expected train or test, found {s:?}"))),
    };
    let d = match kind {
        "mnist" => load_mnist_like(Path::new(dir), split).map_err(err)?,
        "cifar10" => load_cifar10(Path::new(dir), split).map_err(err)?,
        k => return Err(err(format!("kind: expected mnist or cifar10, found {k:?}"))),
    };
    let n = d.labels.len();
    let labels = d.labels.iter().map(|&l| i64::from(l)).collect();
    Ok((
        array(py, d.images, &[n, d.height, d.width, d.channels])?,
        array(py, labels, &[n])?,
    ))
}
