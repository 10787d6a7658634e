//! Fully connected layer.

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::matmul::{matmul, whole_pool, View};
use crate::param::{join_name, Param, ParamRole};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// `y = x·Wᵀ + b` on inputs of shape `[n, 1, 1, in]`; `W` is stored `[out][in]` as in PyTorch.
#[derive(Clone)]
pub struct Linear {
    inputs: usize,
    outputs: usize,
    /// Weight `[out, in]` (PyTorch `weight`).
    pub weight: Param,
    /// Bias `[out]` (PyTorch `bias`).
    pub bias: Option<Param>,
    out: Tensor,
    dx: Tensor,
}

/// Most weights one [`Linear`] layer may have (2^28, 1 GiB of `f32`): sizes computed from a
/// checkpoint's metadata cannot make it allocate without bound.
pub const MAX_LINEAR_WEIGHTS: u64 = 1 << 28;

impl Linear {
    /// A linear layer with PyTorch's default initialisation, U(−1/√in, 1/√in) for weight and bias.
    pub fn new(inputs: usize, outputs: usize, bias: bool, rng: &mut Rng) -> Result<Self, NnError> {
        if inputs == 0 || outputs == 0 {
            return Err(NnError::InvalidParameter {
                what: "Linear inputs → outputs".into(),
                allowed: "positive",
                found: format!("{inputs}→{outputs}"),
            });
        }
        if inputs as u128 * outputs as u128 > u128::from(MAX_LINEAR_WEIGHTS) {
            return Err(NnError::TooLarge {
                what: "Linear layer".into(),
                detail: format!(
                    "{inputs}→{outputs} weights exceed the limit of {MAX_LINEAR_WEIGHTS}"
                ),
            });
        }
        let bound = 1.0 / (inputs as f32).sqrt();
        let weight = Param::new(
            (0..inputs * outputs)
                .map(|_| rng.uniform(-bound, bound))
                .collect(),
            ParamRole::LinearWeight,
            vec![outputs, inputs],
        );
        let bias = bias.then(|| {
            Param::new(
                (0..outputs).map(|_| rng.uniform(-bound, bound)).collect(),
                ParamRole::Bias,
                vec![outputs],
            )
        });
        Ok(Self {
            inputs,
            outputs,
            weight,
            bias,
            out: Tensor::default(),
            dx: Tensor::default(),
        })
    }
}

impl Layer for Linear {
    fn describe(&self) -> String {
        format!("Linear({}→{})", self.inputs, self.outputs)
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        if input[1] != 1 || input[2] != 1 || input[3] != self.inputs {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: format!("expected [n, 1, 1, {}] (flatten first)", self.inputs),
            });
        }
        Ok([input[0], 1, 1, self.outputs])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        let os = self.output_shape(x.shape())?;
        let n = x.n();
        self.out.reshape_uninit(os);
        matmul(
            n,
            self.outputs,
            self.inputs,
            self.out.data_mut(),
            self.outputs,
            false,
            View::rows(x.data(), self.inputs),
            View::transposed(&self.weight.value, self.inputs),
            whole_pool(),
        );
        if let Some(b) = &self.bias {
            for row in self.out.data_mut().chunks_exact_mut(self.outputs) {
                for (o, bv) in row.iter_mut().zip(&b.value) {
                    *o += bv;
                }
            }
        }
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        let os = self.output_shape(x.shape())?;
        check_grad_shape(&self.describe(), os, dy)?;
        let n = x.n();
        matmul(
            self.outputs,
            self.inputs,
            n,
            &mut self.weight.grad,
            self.inputs,
            false,
            View::transposed(dy.data(), self.outputs),
            View::rows(x.data(), self.inputs),
            whole_pool(),
        );
        if let Some(b) = &mut self.bias {
            for (o, g) in b.grad.iter_mut().enumerate() {
                *g = (0..n)
                    .map(|i| dy.data()[i * self.outputs + o] as f64)
                    .sum::<f64>() as f32;
            }
        }
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        matmul(
            n,
            self.inputs,
            self.outputs,
            self.dx.data_mut(),
            self.inputs,
            false,
            View::rows(dy.data(), self.outputs),
            View::rows(&self.weight.value, self.inputs),
            whole_pool(),
        );
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join_name(prefix, "weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&join_name(prefix, "bias"), b);
        }
    }

    fn macs(&self, _input: [usize; 4]) -> u64 {
        (self.inputs * self.outputs) as u64
    }
}
