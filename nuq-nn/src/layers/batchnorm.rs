//! BatchNorm2d with PyTorch semantics, optionally fused with the following ReLU or ReLU6.

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::param::{join_name, BufferMut, Param, ParamRole};
use crate::tensor::Tensor;

/// Rows per parallel block for the statistics passes (fixed, so that sums are reduced in the
/// same order whatever the thread count).
const BLOCK_ROWS: usize = 512;

/// The upper bound of ReLU6 (PyTorch's `nn.ReLU6`, `Clip(0, 6)` in ONNX).
pub const RELU6_MAX: f32 = 6.0;

/// Batch normalisation over N, H and W for each channel (PyTorch `BatchNorm2d`).
///
/// Training mode normalises with the batch mean and biased variance and updates
/// `running_mean`/`running_var` as `(1 − momentum)·running + momentum·batch` with the
/// *unbiased* batch variance, and increments `num_batches_tracked` — PyTorch's rules
/// (momentum 0.1, ε = 1e-5 by default). Evaluation mode uses the running statistics.
///
/// With `fused_relu`, the layer outputs `max(0, bn(x))` in the same pass (and back-propagates
/// through both); with `relu6` as well, `min(6, max(0, bn(x)))` (PyTorch's `ReLU6`, whose
/// gradient is zero at and beyond both kinks). The parameter names stay those of the
/// BatchNorm.
#[derive(Clone)]
pub struct BatchNorm2d {
    channels: usize,
    /// Scale γ (PyTorch `weight`).
    pub weight: Param,
    /// Shift β (PyTorch `bias`).
    pub bias: Param,
    /// Running mean (PyTorch `running_mean`).
    pub running_mean: Vec<f32>,
    /// Running variance (PyTorch `running_var`).
    pub running_var: Vec<f32>,
    /// Number of training batches seen (PyTorch `num_batches_tracked`).
    pub num_batches_tracked: i64,
    /// Running-statistics momentum.
    pub momentum: f32,
    /// Variance epsilon.
    pub eps: f32,
    /// Whether a ReLU follows in the same pass.
    pub fused_relu: bool,
    /// Whether the fused ReLU is a ReLU6 (capped at [`RELU6_MAX`]); ignored without
    /// `fused_relu`.
    pub relu6: bool,
    out: Tensor,
    dx: Tensor,
    /// Mean used by the last forward.
    mean: Vec<f32>,
    /// 1/sqrt(var + eps) used by the last forward.
    inv_std: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    last: Option<([usize; 4], Mode)>,
    partials: Vec<f64>,
}

impl BatchNorm2d {
    /// A BatchNorm with γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(channels: usize, fused_relu: bool) -> Self {
        Self {
            channels,
            weight: Param::new(vec![1.0; channels], ParamRole::BnWeight, vec![channels]),
            bias: Param::new(vec![0.0; channels], ParamRole::BnBias, vec![channels]),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            num_batches_tracked: 0,
            momentum: 0.1,
            eps: 1e-5,
            fused_relu,
            relu6: false,
            out: Tensor::default(),
            dx: Tensor::default(),
            mean: vec![0.0; channels],
            inv_std: vec![0.0; channels],
            scale: vec![0.0; channels],
            shift: vec![0.0; channels],
            last: None,
            partials: Vec::new(),
        }
    }

    /// A BatchNorm fused with the ReLU6 after it (see [`BatchNorm2d::new`]).
    pub fn with_relu6(channels: usize) -> Self {
        Self {
            relu6: true,
            ..Self::new(channels, true)
        }
    }

    /// The upper bound of the fused activation: [`RELU6_MAX`] for a ReLU6, else `+∞`.
    pub fn activation_cap(&self) -> f32 {
        if self.fused_relu && self.relu6 {
            RELU6_MAX
        } else {
            f32::INFINITY
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Per-channel sums over rows, computed in fixed blocks of `BLOCK_ROWS` rows: `f` fills
    /// two `f32` accumulators for the rows of one block (short enough for `f32`), and the
    /// blocks are added in order in `f64`. Returns `(Σ first, Σ second)`.
    fn blocked_sums(
        partials: &mut Vec<f64>,
        c: usize,
        rows: usize,
        f: impl Fn(std::ops::Range<usize>, &mut [f32], &mut [f32]) + Sync,
    ) -> (Vec<f64>, Vec<f64>) {
        let blocks = rows.div_ceil(BLOCK_ROWS).max(1);
        partials.clear();
        partials.resize(blocks * 2 * c, 0.0);
        partials
            .par_chunks_mut(2 * c)
            .enumerate()
            .for_each(|(b, acc)| {
                let mut s1 = vec![0.0f32; c];
                let mut s2 = vec![0.0f32; c];
                f(
                    b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(rows),
                    &mut s1,
                    &mut s2,
                );
                for (a, v) in acc.iter_mut().zip(s1.iter().chain(&s2)) {
                    *a = *v as f64;
                }
            });
        let mut t1 = vec![0.0f64; c];
        let mut t2 = vec![0.0f64; c];
        for acc in partials.chunks_exact(2 * c) {
            for i in 0..c {
                t1[i] += acc[i];
                t2[i] += acc[c + i];
            }
        }
        (t1, t2)
    }
}

impl Layer for BatchNorm2d {
    fn describe(&self) -> String {
        format!(
            "BatchNorm2d({}{})",
            self.channels,
            match (self.fused_relu, self.relu6) {
                (true, true) => ", ReLU6",
                (true, false) => ", ReLU",
                _ => "",
            }
        )
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        if input[3] != self.channels {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: format!("expected {} channels", self.channels),
            });
        }
        Ok(input)
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        self.output_shape(x.shape())?;
        let c = self.channels;
        let rows = x.rows();
        if mode == Mode::Train && rows < 2 {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: x.shape(),
                reason: "training mode needs more than one value per channel".into(),
            });
        }
        let xd = x.data();
        match mode {
            Mode::Train => {
                // Sums shifted by the first pixel's values keep E[x²] − E[x]² well
                // conditioned even when the mean is large against the spread.
                let shift = &xd[..c];
                let (sum, sumsq) =
                    Self::blocked_sums(&mut self.partials, c, rows, |range, s1, s2| {
                        for row in xd[range.start * c..range.end * c].chunks_exact(c) {
                            for (((a, b), &v), &sh) in
                                s1.iter_mut().zip(s2.iter_mut()).zip(row).zip(shift)
                            {
                                let d = v - sh;
                                *a += d;
                                *b += d * d;
                            }
                        }
                    });
                let m = rows as f64;
                let mom = self.momentum as f64;
                for i in 0..c {
                    let shifted_mean = sum[i] / m;
                    let var = (sumsq[i] / m - shifted_mean * shifted_mean).max(0.0);
                    let mean = shifted_mean + shift[i] as f64;
                    self.mean[i] = mean as f32;
                    self.inv_std[i] = (1.0 / (var + self.eps as f64).sqrt()) as f32;
                    let unbiased = var * m / (m - 1.0);
                    self.running_mean[i] =
                        ((1.0 - mom) * self.running_mean[i] as f64 + mom * mean) as f32;
                    self.running_var[i] =
                        ((1.0 - mom) * self.running_var[i] as f64 + mom * unbiased) as f32;
                }
                self.num_batches_tracked += 1;
            }
            Mode::Eval => {
                for i in 0..c {
                    self.mean[i] = self.running_mean[i];
                    self.inv_std[i] = 1.0 / (self.running_var[i] + self.eps).sqrt();
                }
            }
        }
        for i in 0..c {
            self.scale[i] = self.weight.value[i] * self.inv_std[i];
            self.shift[i] = self.bias.value[i] - self.mean[i] * self.scale[i];
        }
        self.out.reshape_uninit(x.shape());
        let (scale, shift, relu) = (&self.scale, &self.shift, self.fused_relu);
        // One monomorphised loop per activation, so the plain and ReLU loops carry no cap.
        fn affine(
            out: &mut [f32],
            x: &[f32],
            (scale, shift): (&[f32], &[f32]),
            act: impl Fn(f32) -> f32 + Sync,
        ) {
            let c = scale.len();
            out.par_chunks_mut(BLOCK_ROWS * c)
                .zip(x.par_chunks(BLOCK_ROWS * c))
                .for_each(|(o, xi)| {
                    for (orow, xrow) in o.chunks_exact_mut(c).zip(xi.chunks_exact(c)) {
                        for (((ov, &xv), &sc), &sh) in
                            orow.iter_mut().zip(xrow).zip(scale).zip(shift)
                        {
                            *ov = act(xv * sc + sh);
                        }
                    }
                })
        }
        let out = self.out.data_mut();
        let ss = (scale.as_slice(), shift.as_slice());
        match (relu, self.relu6) {
            (false, _) => affine(out, xd, ss, |y| y),
            (true, false) => affine(out, xd, ss, |y| y.max(0.0)),
            // `max` then `min` (not `clamp`): a NaN maps to 0, as the fused ReLU does.
            #[allow(clippy::manual_clamp)]
            (true, true) => affine(out, xd, ss, |y| y.max(0.0).min(RELU6_MAX)),
        }
        self.last = Some((x.shape(), mode));
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        let Some((shape, mode)) = self.last else {
            return Err(NnError::NoForward {
                layer: self.describe(),
            });
        };
        if shape != x.shape() {
            return Err(NnError::NoForward {
                layer: self.describe(),
            });
        }
        check_grad_shape(&self.describe(), shape, dy)?;
        let c = self.channels;
        let rows = x.rows();
        let (xd, dyd) = (x.data(), dy.data());
        let (mean, inv_std, relu) = (&self.mean, &self.inv_std, self.fused_relu);
        let cap = self.activation_cap();
        // The fused ReLU's mask, from the pre-activation `z = x·scale + shift` recomputed
        // with the forward pass's operations (the same bits): `y = min(max(z, 0), cap)` was
        // cut where `z ≤ 0`, `z` is NaN or `z ≥ cap`. Reading `x` again instead of the
        // stored output saves one of three streams in each pass.
        let (bn_scale, bn_shift) = (&self.scale, &self.shift);
        let cut = move |z: f32| relu & ((z <= 0.0) | z.is_nan() | (z >= cap));
        // Σ dy' and Σ dy'·x per channel (dy' = dy masked by the fused ReLU); then
        // Σ dy'·x̂ = σ⁻¹·(Σ dy'·x − μ·Σ dy').
        let (dbeta, sum_gx) = Self::blocked_sums(&mut self.partials, c, rows, |range, s1, s2| {
            let span = range.start * c..range.end * c;
            for (xr, gr) in xd[span.clone()]
                .chunks_exact(c)
                .zip(dyd[span].chunks_exact(c))
            {
                for (((((a, b), &xv), &gv), &bs), &bh) in s1
                    .iter_mut()
                    .zip(s2.iter_mut())
                    .zip(xr)
                    .zip(gr)
                    .zip(bn_scale)
                    .zip(bn_shift)
                {
                    let g = if cut(xv * bs + bh) { 0.0 } else { gv };
                    *a += g;
                    *b += g * xv;
                }
            }
        });
        let dgamma: Vec<f64> = (0..c)
            .map(|i| inv_std[i] as f64 * (sum_gx[i] - mean[i] as f64 * dbeta[i]))
            .collect();
        for i in 0..c {
            self.weight.grad[i] = dgamma[i] as f32;
            self.bias.grad[i] = dbeta[i] as f32;
        }
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(shape);
        let gamma = &self.weight.value;
        // Train: dx = γ·σ⁻¹·(dy' − Σdy'/m − x̂·Σ(dy'x̂)/m); eval: dx = γ·σ⁻¹·dy'.
        // dx = s·dy' + cx·x + c0 with s = γσ⁻¹ and, in training mode,
        // cx = −s·σ⁻¹·Σ(dy'x̂)/m, c0 = −s·Σdy'/m − cx·μ (zero in evaluation mode).
        let mut sc = vec![0.0f32; c];
        let mut cx = vec![0.0f32; c];
        let mut c0 = vec![0.0f32; c];
        for i in 0..c {
            let s_i = gamma[i] as f64 * inv_std[i] as f64;
            sc[i] = s_i as f32;
            if mode == Mode::Train {
                let m = rows as f64;
                let cx_i = -s_i * inv_std[i] as f64 * dgamma[i] / m;
                cx[i] = cx_i as f32;
                c0[i] = (-s_i * dbeta[i] / m - cx_i * mean[i] as f64) as f32;
            }
        }
        self.dx
            .data_mut()
            .par_chunks_mut(BLOCK_ROWS * c)
            .enumerate()
            .for_each(|(b, dxb)| {
                let base = b * BLOCK_ROWS * c;
                let span = base..base + dxb.len();
                for ((dr, xr), gr) in dxb
                    .chunks_exact_mut(c)
                    .zip(xd[span.clone()].chunks_exact(c))
                    .zip(dyd[span].chunks_exact(c))
                {
                    for (((((((d, &xv), &gv), &s_i), &cx_i), &c0_i), &bs), &bh) in dr
                        .iter_mut()
                        .zip(xr)
                        .zip(gr)
                        .zip(&sc)
                        .zip(&cx)
                        .zip(&c0)
                        .zip(bn_scale)
                        .zip(bn_shift)
                    {
                        let g = if cut(xv * bs + bh) { 0.0 } else { gv };
                        *d = s_i * g + cx_i * xv + c0_i;
                    }
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join_name(prefix, "weight"), &mut self.weight);
        f(&join_name(prefix, "bias"), &mut self.bias);
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        f(
            &join_name(prefix, "running_mean"),
            BufferMut::F32(&mut self.running_mean),
        );
        f(
            &join_name(prefix, "running_var"),
            BufferMut::F32(&mut self.running_var),
        );
        f(
            &join_name(prefix, "num_batches_tracked"),
            BufferMut::I64(&mut self.num_batches_tracked),
        );
    }
}
