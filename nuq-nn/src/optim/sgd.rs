//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch semantics).

use rayon::prelude::*;

use crate::error::NnError;
use crate::models::Parameterized;
use crate::optim::{Optimizer, Slots, StateTensor};

/// Values per parallel task of the element-wise update.
const CHUNK: usize = 1 << 15;

/// How weight decay enters the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDecay {
    /// Added to the gradient, `g + λ·w` (PyTorch `SGD(weight_decay=λ)`).
    L2,
    /// Applied to the weights directly, `w ← w − lr·λ·w` (decoupled, as in AdamW).
    Decoupled,
}

/// SGD: `g = ∇ (+ λw for L2)`, `b = μ·b + g`, `d = g + μ·b` (Nesterov) or `b`,
/// `w ← w − lr·d` (and `w ← w − lr·λ·w` first when decoupled). Matches `torch.optim.SGD` with
/// dampening 0 (its first-step `b = g` equals `μ·0 + g`).
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Momentum μ (0 disables it).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay λ.
    pub weight_decay: f32,
    /// L2 or decoupled decay.
    pub decay_mode: WeightDecay,
    /// Whether BatchNorm parameters and biases are decayed too.
    pub decay_bn_and_bias: bool,
    slots: Slots,
    steps: u64,
}

impl Sgd {
    /// SGD with momentum μ, L2 weight decay λ applied to every parameter, no Nesterov.
    pub fn new(momentum: f32, weight_decay: f32) -> Self {
        Self {
            momentum,
            nesterov: false,
            weight_decay,
            decay_mode: WeightDecay::L2,
            decay_bn_and_bias: true,
            slots: Slots::default(),
            steps: 0,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut dyn Parameterized, lr: f32) -> Result<(), NnError> {
        let mut index = 0;
        let mut err = None;
        let (mu, nesterov, wd_all) = (self.momentum, self.nesterov, self.weight_decay);
        model.for_each_param(&mut |name, p| {
            if err.is_some() {
                return;
            }
            let wd = if self.decay_bn_and_bias || !p.is_bn_or_bias() {
                wd_all
            } else {
                0.0
            };
            let l2 = if self.decay_mode == WeightDecay::L2 {
                wd
            } else {
                0.0
            };
            let shrink = if self.decay_mode == WeightDecay::Decoupled {
                1.0 - lr * wd
            } else {
                1.0
            };
            if mu == 0.0 {
                p.value
                    .par_chunks_mut(CHUNK)
                    .zip(p.grad.par_chunks(CHUNK))
                    .for_each(|(ws, gs)| {
                        for (w, &g) in ws.iter_mut().zip(gs) {
                            let g = g + l2 * *w;
                            *w = *w * shrink - lr * g;
                        }
                    });
            } else {
                let bufs = match self.slots.get(index, name, p.value.len(), 1) {
                    Ok(b) => b,
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                };
                p.value
                    .par_chunks_mut(CHUNK)
                    .zip(p.grad.par_chunks(CHUNK))
                    .zip(bufs[0].par_chunks_mut(CHUNK))
                    .for_each(|((ws, gs), bs)| {
                        for ((w, &g), b) in ws.iter_mut().zip(gs).zip(bs) {
                            let g = g + l2 * *w;
                            *b = mu * *b + g;
                            let d = if nesterov { g + mu * *b } else { *b };
                            *w = *w * shrink - lr * d;
                        }
                    });
            }
            index += 1;
        });
        if let Some(e) = err {
            return Err(e);
        }
        self.steps += 1;
        Ok(())
    }

    fn state(&self) -> (Vec<StateTensor>, u64) {
        (self.slots.export(&["momentum_buffer"]), self.steps)
    }

    fn load_state(&mut self, tensors: Vec<StateTensor>, steps: u64) -> Result<(), NnError> {
        self.slots = Slots::import(&["momentum_buffer"], tensors)?;
        self.steps = steps;
        Ok(())
    }
}
