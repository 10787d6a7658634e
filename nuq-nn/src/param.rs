//! Trainable parameters, non-trainable buffers and their PyTorch layouts.

/// What a parameter is, for optimisers (weight-decay exclusion) and for later stages
/// (quantizing conv and linear weights, folding BatchNorm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// A convolution kernel.
    ConvWeight,
    /// A fully connected weight matrix.
    LinearWeight,
    /// A conv or linear bias.
    Bias,
    /// BatchNorm scale (γ, PyTorch `weight`).
    BnWeight,
    /// BatchNorm shift (β, PyTorch `bias`).
    BnBias,
    /// A learned quantizer clip (the real value of an activation quantizer's top level).
    QuantClip,
}

/// How a parameter's values are ordered in memory, relative to PyTorch's tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamLayout {
    /// Same order as the PyTorch tensor.
    Torch,
    /// A convolution kernel stored `[c_out][kh][kw][c_in]` (OHWI: one row per output channel in
    /// the `(ky, kx, ci)` order of an NHWC im2col row — nuq's one weight layout, kept by the
    /// quantizer, the integer model and the kernels); PyTorch stores `[c_out][c_in][kh][kw]`.
    ConvOhwi {
        /// Output channels.
        c_out: usize,
        /// Input channels of one row: `c_in / groups` of a grouped convolution (PyTorch's
        /// second weight dimension).
        c_in: usize,
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
    },
}

/// A trainable tensor with its gradient.
#[derive(Clone, Debug)]
pub struct Param {
    /// Values in the layout given by `layout`.
    pub value: Vec<f32>,
    /// Gradient of the loss, same layout; `backward` overwrites it (no accumulation).
    pub grad: Vec<f32>,
    /// What the parameter is.
    pub role: ParamRole,
    /// Memory order of `value` and `grad`.
    pub layout: ParamLayout,
    /// The PyTorch shape (used in checkpoints).
    pub torch_shape: Vec<usize>,
}

impl Param {
    /// A parameter stored in PyTorch order.
    pub fn new(value: Vec<f32>, role: ParamRole, torch_shape: Vec<usize>) -> Self {
        let grad = vec![0.0; value.len()];
        Self {
            value,
            grad,
            role,
            layout: ParamLayout::Torch,
            torch_shape,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether the parameter holds no values.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Whether the parameter is a BatchNorm affine parameter or a bias (the tensors that
    /// weight decay usually leaves alone).
    pub fn is_bn_or_bias(&self) -> bool {
        matches!(
            self.role,
            ParamRole::Bias | ParamRole::BnWeight | ParamRole::BnBias
        )
    }

    /// Values in PyTorch order.
    pub fn to_torch(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.value.len()];
        for (k, &v) in self.value.iter().enumerate() {
            out[self.layout.torch_index(k)] = v;
        }
        out
    }

    /// Sets the values from a tensor in PyTorch order; `src` must hold `self.len()` values.
    pub fn set_from_torch(&mut self, src: &[f32]) -> Result<(), crate::NnError> {
        if src.len() != self.value.len() {
            return Err(crate::NnError::SizeMismatch {
                what: format!(
                    "values of a parameter of PyTorch shape {:?}",
                    self.torch_shape
                ),
                expected: self.value.len(),
                found: src.len(),
            });
        }
        let layout = self.layout;
        for (k, v) in self.value.iter_mut().enumerate() {
            *v = src[layout.torch_index(k)];
        }
        Ok(())
    }
}

impl ParamLayout {
    /// Where the value at index `k` in memory stands in the PyTorch tensor: the one mapping
    /// [`Param::to_torch`] and [`Param::set_from_torch`] share.
    fn torch_index(self, k: usize) -> usize {
        match self {
            ParamLayout::Torch => k,
            ParamLayout::ConvOhwi { c_in, kh, kw, .. } => {
                let (o, t, i) = (k / (kh * kw * c_in), k / c_in % (kh * kw), k % c_in);
                (o * c_in + i) * kh * kw + t
            }
        }
    }
}

/// A mutable view of a non-trainable state tensor (BatchNorm running statistics).
#[derive(Debug)]
pub enum BufferMut<'a> {
    /// An `f32` vector (PyTorch shape `[len]`).
    F32(&'a mut Vec<f32>),
    /// An `i64` scalar (PyTorch shape `[]`), e.g. `num_batches_tracked`.
    I64(&'a mut i64),
}

/// Joins a parameter path prefix and a child name with a dot (PyTorch naming).
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_layout_round_trips_and_matches_torch_indexing() {
        let (c_out, c_in, kh, kw) = (3, 2, 2, 3);
        let n = c_out * c_in * kh * kw;
        let torch: Vec<f32> = (0..n).map(|v| v as f32).collect();
        let mut p = Param::new(
            vec![0.0; n],
            ParamRole::ConvWeight,
            vec![c_out, c_in, kh, kw],
        );
        p.layout = ParamLayout::ConvOhwi {
            c_out,
            c_in,
            kh,
            kw,
        };
        p.set_from_torch(&torch).unwrap();
        assert!(p.set_from_torch(&torch[1..]).is_err());
        // torch [o=2][i=1][y=1][x=2] lives at ohwi [o=2][y=1][x=2][i=1]
        let t_idx = ((2 * c_in + 1) * kh + 1) * kw + 2;
        let o_idx = ((2 * kh + 1) * kw + 2) * c_in + 1;
        assert_eq!(p.value[o_idx], torch[t_idx]);
        assert_eq!(p.to_torch(), torch);
    }

    #[test]
    fn names_join_with_dots() {
        assert_eq!(join_name("", "conv1"), "conv1");
        assert_eq!(join_name("layer1.0", "bn1"), "layer1.0.bn1");
        assert_eq!(join_name("fc", ""), "fc");
    }
}
