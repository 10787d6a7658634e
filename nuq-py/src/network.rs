//! nuq's float networks and their quantization from Python: `Network` (a model of
//! `nuq_nn::models` with PyTorch names, loaded from a PyTorch `state_dict`) and
//! `QuantizedNetwork` (nuq's float twin: prepared weights, calibrated activation quantizers,
//! their tables by layer name, and the fold into the integer model).

use std::collections::HashMap;
use std::path::Path;

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use nuq_core::{Codebook, Grid};
use nuq_nn::quant::{InputNorm, QuantConfig, QuantizedNetwork as NnQuantized};
use nuq_nn::{checkpoint, onnx, Arch, Mode, ModelConfig, Network as NnNetwork, Tensor};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::arrays::{array, shape, slice};
use crate::codebooks::{act_from_dict, act_to_dict, family};
use crate::err;
use crate::integer::IntegerModel;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Network>()?;
    m.add_class::<QuantizedNetwork>()?;
    Ok(())
}

/// Network(arch, width=1.0, in_channels=3, classes=10, input_size=(32, 32), seed=0)
/// --
///
/// One of nuq's models (`resnet18`, `resnet20`, `vgg-small`, `resnet18-imagenet`,
/// `resnet34-imagenet`) with PyTorch (torchvision) tensor names, freshly initialised with
/// `seed`; `load_state_dict` loads PyTorch weights into it. `Network.from_onnx(path)` imports
/// a float CNN exported to ONNX instead (its `arch` is then `"onnx"`).
#[pyclass(unsendable, module = "nuq._nuq")]
pub struct Network {
    net: Option<NnNetwork>,
}

impl Network {
    fn get(&mut self) -> PyResult<&mut NnNetwork> {
        self.net
            .as_mut()
            .ok_or_else(|| err("this Network was consumed by quantize()"))
    }
}

/// The float32 numpy views of a `state_dict` as safetensors bytes.
fn safetensors_bytes(tensors: &HashMap<String, PyReadonlyArrayDyn<'_, f32>>) -> PyResult<Vec<u8>> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, a) in tensors {
        let bytes: Vec<u8> = slice(a, name)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        owned.push((name.clone(), a.shape().to_vec(), bytes));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(err)
        })
        .collect::<PyResult<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(err)
}

#[pymethods]
impl Network {
    #[new]
    #[pyo3(signature = (arch, width = 1.0, in_channels = 3, classes = 10, input_size = (32, 32), seed = 0))]
    fn new(
        arch: &str,
        width: f32,
        in_channels: usize,
        classes: usize,
        input_size: (usize, usize),
        seed: u64,
    ) -> PyResult<Self> {
        let arch: Arch = arch.parse().map_err(err)?;
        let config = ModelConfig {
            arch,
            width,
            in_channels,
            classes,
            input_size,
        };
        Ok(Self {
            net: Some(NnNetwork::new(config, seed).map_err(err)?),
        })
    }

    /// from_onnx(path)
    /// --
    ///
    /// Imports a float CNN from an ONNX file as `torch.onnx.export` writes it
    /// (`nuq_nn::onnx::import`, what `nuq quantize model.onnx` reads): convolutions (grouped
    /// and depthwise included), batch-norm, ReLU, ReLU6, pooling, linear layers and residual
    /// blocks. The network's input shape and class count are the file's (`input_size`,
    /// `in_channels`, `classes`); the file does not carry the input normalisation, so pass
    /// the `mean`/`std` the model was trained with to `quantize`. The result is used like a
    /// built-in network: `forward` on normalised NHWC images, `state_dict`,
    /// `load_state_dict` (with the imported layer names), `quantize`. A node nuq cannot
    /// express raises `NuqError` naming the node and its operator.
    ///
    /// ```python
    /// net = nuq.Network.from_onnx("mobilenet.onnx")
    /// h, w = net.input_size
    /// qn = net.quantize(4, "lloyd", mean=[0.286], std=[0.353])
    /// qn.calibrate(train_images[:256])          # normalised NHWC float32 [n, h, w, c]
    /// model = qn.to_integer()
    /// model.export_onnx("mobilenet_int.onnx")   # ONNX Runtime computes model.forward exactly
    /// ```
    #[staticmethod]
    fn from_onnx(path: std::path::PathBuf) -> PyResult<Self> {
        let imported = onnx::import(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(Self {
            net: Some(imported.network),
        })
    }

    /// The model's name (`resnet20`, …; `onnx` for an imported network).
    #[getter]
    fn arch(&mut self) -> PyResult<String> {
        Ok(self.get()?.config().arch.name().to_string())
    }

    /// The width multiplier (1 for an imported network).
    #[getter]
    fn width(&mut self) -> PyResult<f32> {
        Ok(self.get()?.config().width)
    }

    /// The number of input channels.
    #[getter]
    fn in_channels(&mut self) -> PyResult<usize> {
        Ok(self.get()?.config().in_channels)
    }

    /// The number of classes (logits per image).
    #[getter]
    fn classes(&mut self) -> PyResult<usize> {
        Ok(self.get()?.config().classes)
    }

    /// The input images' `(height, width)`.
    #[getter]
    fn input_size(&mut self) -> PyResult<(usize, usize)> {
        Ok(self.get()?.config().input_size)
    }

    /// load_state_dict(tensors)
    /// --
    ///
    /// Loads a PyTorch `state_dict` given as `{name: float32 numpy array}` (PyTorch layouts;
    /// `num_batches_tracked` may be left out) with nuq's checkpoint rules: every tensor of the
    /// model present, none left over, shapes exact (`nuq_nn::checkpoint`).
    fn load_state_dict(
        &mut self,
        tensors: HashMap<String, PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<()> {
        let bytes = safetensors_bytes(&tensors)?;
        checkpoint::load_model_bytes(self.get()?, Path::new("<state_dict>"), &bytes).map_err(err)
    }

    /// load(path)
    /// --
    ///
    /// Loads a safetensors checkpoint with PyTorch names (`nuq_nn::checkpoint::load_model`).
    fn load(&mut self, path: &str) -> PyResult<()> {
        checkpoint::load_model(self.get()?, Path::new(path)).map_err(err)
    }

    /// save(path)
    /// --
    ///
    /// Writes the network as a safetensors checkpoint with PyTorch names (what `nuq train`
    /// writes and `nuq quantize` reads; `nuq_nn::checkpoint::save_model`).
    fn save(&mut self, path: &str) -> PyResult<()> {
        checkpoint::save_model(self.get()?, Path::new(path)).map_err(err)
    }

    /// state_dict()
    /// --
    ///
    /// The network's tensors as `{name: numpy array}` under their PyTorch names and layouts
    /// (float32; `num_batches_tracked` as int64), as `nuq train` saves them.
    fn state_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let bytes = checkpoint::model_bytes(self.get()?).map_err(err)?;
        let st = SafeTensors::deserialize(&bytes).map_err(err)?;
        let d = PyDict::new(py);
        for (name, view) in st.tensors() {
            let data = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    let v: Vec<f32> = data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    d.set_item(name, array(py, v, view.shape())?)?;
                }
                Dtype::I64 => {
                    let v: Vec<i64> = data
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect();
                    d.set_item(name, array(py, v, view.shape())?)?;
                }
                other => return Err(err(format!("tensor {name}: unexpected dtype {other:?}"))),
            }
        }
        Ok(d)
    }

    /// forward(images)
    /// --
    ///
    /// Float logits `[n, classes]` of normalised NHWC float32 images `[n, h, w, c]`
    /// (inference mode: batch-norm running statistics).
    fn forward<'py>(
        &mut self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, numpy::PyArrayDyn<f32>>> {
        let x = nhwc(&images)?;
        logits(py, self.get()?, &x)
    }

    /// quantize(bits, family, mean, std, per_channel=True, edge_bits=8, act_bits=None, act_family=None, act_per_channel=False, weight_norm=False)
    /// --
    ///
    /// Prepares the network for quantization as `nuq quantize` does
    /// (`QuantizedNetwork::prepare`): every weight quantized in place, an activation quantizer
    /// after every ReLU (uncalibrated), the first convolution quantized on raw bytes with the
    /// input normalisation `mean`/`std` (per channel, pixels in [0, 1]). Consumes this object.
    /// `kquantile` weights are assigned to their nearest level (`nuq quantize --assign
    /// nearest`), the rule `nuq.torch` applies; the CLI's default assigns by quantile.
    #[pyo3(signature = (bits, family, mean, std, per_channel = true, edge_bits = 8, act_bits = None, act_family = None, act_per_channel = false, weight_norm = false))]
    #[allow(clippy::too_many_arguments)]
    fn quantize(
        &mut self,
        bits: u8,
        family: &str,
        mean: Vec<f32>,
        std: Vec<f32>,
        per_channel: bool,
        edge_bits: u8,
        act_bits: Option<u8>,
        act_family: Option<&str>,
        act_per_channel: bool,
        weight_norm: bool,
    ) -> PyResult<QuantizedNetwork> {
        let mut cfg = QuantConfig::new(bits, self::family(family)?);
        cfg.per_channel = per_channel;
        cfg.edge_bits = edge_bits;
        cfg.act_bits = act_bits.unwrap_or(bits);
        if let Some(f) = act_family {
            cfg.act_family = self::family(f)?;
        }
        cfg.act_per_channel = act_per_channel;
        cfg.weight_norm = weight_norm;
        // nuq.torch rounds weights to the nearest level on the torch side, so k-quantile
        // weights use nuq's nearest-level variant here: the twin and the fold then agree
        // exactly. (The by-quantile assignment, nuq's default on the CLI, re-fits its
        // boundaries from the masters every step and is not mirrored in torch yet.)
        cfg.kq_rule.assign = nuq_core::Assignment::Nearest;
        let norm = InputNorm::from_mean_std(&mean, &std).map_err(err)?;
        self.get()?;
        let net = self.net.take().expect("checked above");
        Ok(QuantizedNetwork {
            qn: NnQuantized::prepare(net, cfg, norm).map_err(err)?,
        })
    }
}

/// A normalised NHWC batch as nuq's tensor.
fn nhwc(images: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<Tensor> {
    let s = shape(images, 4, "images [n, h, w, c]")?;
    Tensor::from_vec([s[0], s[1], s[2], s[3]], slice(images, "images")?.to_vec()).map_err(err)
}

fn logits<'py>(
    py: Python<'py>,
    net: &mut NnNetwork,
    x: &Tensor,
) -> PyResult<Bound<'py, numpy::PyArrayDyn<f32>>> {
    let n = x.shape()[0];
    let out = net.forward(x, Mode::Eval).map_err(err)?.data().to_vec();
    let classes = out.len() / n.max(1);
    array(py, out, &[n, classes])
}

/// nuq's float twin of a network prepared for quantization (`Network.quantize`).
#[pyclass(unsendable, module = "nuq._nuq")]
pub struct QuantizedNetwork {
    qn: NnQuantized,
}

#[pymethods]
impl QuantizedNetwork {
    /// The input normalisation actually used: `(mean, std)` with each mean rounded to a byte
    /// (`zero_point / 255`), as the integer model sees its input.
    #[getter]
    fn input_norm(&self) -> (Vec<f32>, Vec<f32>) {
        (self.qn.input_norm.mean(), self.qn.input_norm.std.clone())
    }

    /// calibrate(images)
    /// --
    ///
    /// Fits every uncalibrated activation quantizer in one forward pass over normalised NHWC
    /// float32 images (`QuantizedNetwork::calibrate`).
    fn calibrate(&mut self, images: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        let x = nhwc(&images)?;
        self.qn.calibrate(&x).map_err(err)
    }

    /// forward(images)
    /// --
    ///
    /// Logits `[n, classes]` of the fake-quantized float twin on normalised NHWC images
    /// (inference mode).
    fn forward<'py>(
        &mut self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, numpy::PyArrayDyn<f32>>> {
        let x = nhwc(&images)?;
        logits(py, &mut self.qn.net, &x)
    }

    /// weight_layers()
    /// --
    ///
    /// The names of the quantized weight layers (`conv1`, `layer1.0.conv1`, `fc`, …).
    fn weight_layers(&self) -> Vec<String> {
        self.qn.weight_layers()
    }

    /// weight_quantizer(name)
    /// --
    ///
    /// Layer `name`'s weight quantizer: `{"bits", "levels": int32, "scales": float64 [rows],
    /// "input_factor": float64 [c_in] or None, "center": bool, "edge": bool}`. The twin uses
    /// `scales[r] × levels[nearest((w / factor − mean_r) / scales[r])] × factor` for master
    /// weight `w` of row `r` (`mean_r` the row mean when `center`, else 0).
    fn weight_quantizer<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let v = self.qn.weight_quantizer(name).map_err(err)?;
        let cb = &v.weights.table.codebook;
        let d = PyDict::new(py);
        d.set_item("bits", cb.bits())?;
        d.set_item("levels", array(py, cb.levels().to_vec(), &[cb.len()])?)?;
        let s = &v.weights.scales;
        d.set_item("scales", array(py, s.clone(), &[s.len()])?)?;
        match v.input_factor {
            Some(f) => d.set_item("input_factor", array(py, f.to_vec(), &[f.len()])?)?,
            None => d.set_item("input_factor", py.None())?,
        }
        d.set_item("center", v.center)?;
        d.set_item("edge", v.edge)?;
        Ok(d)
    }

    /// set_weight_quantizer(name, levels, scales)
    /// --
    ///
    /// Replaces layer `name`'s codebook (`levels` on the signed 8-bit grid) and per-row
    /// `scales`, and re-quantizes its master weights with them.
    fn set_weight_quantizer(
        &mut self,
        name: &str,
        levels: Vec<i32>,
        scales: Vec<f64>,
    ) -> PyResult<()> {
        let bits = self
            .qn
            .weight_quantizer(name)
            .map_err(err)?
            .weights
            .table
            .codebook
            .bits();
        let cb = Codebook::table(Grid::I8, bits, &levels).map_err(err)?;
        self.qn.set_weight_quantizer(name, cb, scales).map_err(err)
    }

    /// activation_names()
    /// --
    ///
    /// The activation quantizers' names in forward order (`bn1.act`, `layer1.0.bn1.act`,
    /// `layer1.0.act`, …).
    fn activation_names(&mut self) -> Vec<String> {
        self.qn.activation_names()
    }

    /// activation_quantizer(name)
    /// --
    ///
    /// Activation quantizer `name` as `fit_activation` returns one, or None while uncalibrated.
    fn activation_quantizer<'py>(
        &mut self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        match self.qn.activation_quantizer(name).map_err(err)? {
            Some(q) => Ok(Some(act_to_dict(py, &q)?)),
            None => Ok(None),
        }
    }

    /// set_activation_quantizer(name, quantizer)
    /// --
    ///
    /// Sets activation quantizer `name` from a dict as `fit_activation` returns.
    fn set_activation_quantizer(
        &mut self,
        name: &str,
        quantizer: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let q = act_from_dict(quantizer)?;
        self.qn.set_activation_quantizer(name, q).map_err(err)
    }

    /// to_integer()
    /// --
    ///
    /// Folds batch-norm, the scales and the thresholds into nuq's integer model
    /// (`QuantizedNetwork::to_integer`).
    fn to_integer(&self) -> PyResult<IntegerModel> {
        Ok(IntegerModel::new(self.qn.to_integer().map_err(err)?))
    }
}
