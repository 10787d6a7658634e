//! 2-D convolution: `nuq-kernels`' direct kernels where they run, else im2col and the `gemm`
//! crate.
//!
//! **Direct kernels.** Where [`float_conv::supports`] holds (the AVX-512 path; one channel
//! group; a kernel that is not plain pointwise; output channels a multiple of 16 — every 3×3
//! layer and strided projection of the CIFAR ResNets and VGG-Small) no column matrix is
//! formed: the forward pass and the weight gradient read the NHWC input where it lies, and
//! the input gradient (input channels a multiple of 16) runs as a convolution of `dY` per
//! phase of the stride. They sum in another order than the GEMM, so the two formulations
//! differ in the low bits; each is deterministic for a thread count. The rest of this page
//! describes the im2col formulation, which every other layer and CPU runs.
//!
//! With NHWC activations and the kernel stored `[c_out][kh][kw][c_in]` (OHWI, nuq's one weight
//! layout: row `o` is output channel `o` in the `(ky, kx, ci)` order of an im2col row), a
//! convolution over the whole batch is one product `Y[M, c_out] = col[M, K] · Wᵀ` with
//! `M = n·oh·ow` (batch folded into M) and `K = kh·kw·c_in`; the GEMM reads `W` through strides,
//! never a transposed copy. The backward pass is two more products on the same shapes:
//! `dWᵀ[K, c_out] = colᵀ · dY` (summed per thread, then reduced into the OHWI gradient) and
//! `dcol[M, K] = dY · W`, followed by col2im.
//!
//! The column matrix is never materialised for the whole batch: the batch is split into one
//! contiguous image range per rayon thread, and each thread walks its range in row chunks small
//! enough for the column buffer to stay in cache, running im2col (recomputed in backward rather
//! than stored), a single-threaded GEMM and col2im back to back. Weight gradients are summed per
//! thread and reduced in a fixed order, so results depend only on the seed and thread count.
//! A 1×1 stride-1 unpadded convolution uses its input directly as the column matrix.
//!
//! **Groups.** With `groups > 1` (PyTorch semantics; `groups == c_in` is depthwise) the kernel
//! rows are `K = kh·kw·c_in/groups` long and group `g` is its own convolution: output channels
//! `g·c_out/groups ..` read only input channels `g·c_in/groups ..`. Each row chunk runs one
//! im2col over the group's channel slice and one GEMM per group, writing the group's output
//! columns in place (the destination and `dY` are read through their row stride `c_out`);
//! the per-thread `dWᵀ[K, c_out]` keeps its shape, group `g` filling its own columns.
//!
//! **Dilation.** Kernel tap `(ky, kx)` of output `(oy, ox)` reads input
//! `(oy·sh + ky·dh − ph, ox·sw + kx·dw − pw)`; only im2col/col2im change (a kernel row is a
//! contiguous run only at horizontal dilation 1). With dilation 1 every read is the one earlier
//! versions made.

use gemm::Parallelism;
use nuq_kernels::float_conv::{self, ConvGeometry, Filter, GradFilter};
use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::matmul::{matmul, View};
use crate::param::{join_name, Param, ParamLayout, ParamRole};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Target size of one column-matrix chunk in values (1 MiB of `f32`). The backward pass holds
/// two such buffers per thread (the columns and their gradient); at 4 MiB they spilled out
/// of L2 into L3 and ResNet-18's 64- and 128-channel layers ran their backward 7–13 % slower
/// (`layer_times` example, Zen 4 with 1 MiB L2 per core; the forward pass saw no difference).
const CHUNK_VALUES: usize = 1 << 18;
/// Smallest chunk in rows: below ~512 rows the backward GEMMs of the 512-channel layers lose
/// a quarter of their speed (measured with the `gemm_shapes` example).
const MIN_CHUNK_ROWS: usize = 512;

/// Shape hyper-parameters of a [`Conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel `(height, width)`.
    pub kernel: (usize, usize),
    /// Stride `(vertical, horizontal)`.
    pub stride: (usize, usize),
    /// Zero padding `(top/bottom, left/right)`.
    pub padding: (usize, usize),
    /// Dilation `(vertical, horizontal)`: kernel tap `(ky, kx)` of output `(oy, ox)` reads
    /// input `(oy·s + ky·d − p, ox·s + kx·d − p)` (PyTorch `dilation`; 1 is a plain
    /// convolution). The kernel spans `d·(k − 1) + 1` input pixels.
    pub dilation: (usize, usize),
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Channel groups (PyTorch `groups`): `c_in` and `c_out` are both multiples of it, and
    /// output channel `o` sees input channels `(o / (c_out / groups)) · c_in / groups ..` of
    /// its group only; `groups == c_in` is a depthwise convolution. Weights are
    /// `[c_out][kh][kw][c_in / groups]`.
    pub groups: usize,
}

impl Conv2dConfig {
    /// A square `k×k` convolution with the given stride and padding, dilation 1, one group,
    /// without bias.
    pub fn square(c_in: usize, c_out: usize, k: usize, stride: usize, padding: usize) -> Self {
        Self {
            c_in,
            c_out,
            kernel: (k, k),
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (1, 1),
            bias: false,
            groups: 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    h: usize,
    w: usize,
    /// Input channels of the tensor.
    c: usize,
    /// Input channels of one group (`c / groups`).
    cg: usize,
    /// Channel groups.
    groups: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

impl Geom {
    /// Length of a kernel row (one group's im2col row).
    fn k(&self) -> usize {
        self.kh * self.kw * self.cg
    }

    fn pointwise(&self) -> bool {
        // A 1×1 kernel has a single tap: its dilation is irrelevant.
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// For output row `m`: its image, and the input row and column of kernel tap (0, 0)
    /// (negative inside the padding).
    #[inline]
    fn row_origin(&self, m: usize) -> (usize, isize, isize) {
        let ox = m % self.ow;
        let t = m / self.ow;
        let oy = t % self.oh;
        let img = t / self.oh;
        (
            img,
            (oy * self.sh) as isize - self.ph as isize,
            (ox * self.sw) as isize - self.pw as isize,
        )
    }
}

/// Copies rows `row0..row0 + rows` of the column matrix of `x` over the channel slice
/// `c0..c0 + cg` (one group's) into `col` (`rows × K`).
fn im2col(g: &Geom, x: &[f32], row0: usize, rows: usize, c0: usize, col: &mut [f32]) {
    let k = g.k();
    let (c, cg) = (g.c, g.cg);
    let run = g.kw * cg;
    for r in 0..rows {
        let (img, iy0, ix0) = g.row_origin(row0 + r);
        let dst = &mut col[r * k..(r + 1) * k];
        let img_base = img * g.h * g.w * c + c0;
        // A whole kernel row is one contiguous run only when the group is every channel and
        // the taps are adjacent.
        let full_x = cg == c && g.dw == 1 && ix0 >= 0 && ix0 as usize + g.kw <= g.w;
        for ky in 0..g.kh {
            let iy = iy0 + (ky * g.dh) as isize;
            let d = &mut dst[ky * run..(ky + 1) * run];
            if iy < 0 || iy as usize >= g.h {
                d.fill(0.0);
                continue;
            }
            let row_base = img_base + iy as usize * g.w * c;
            if full_x {
                let s = row_base + ix0 as usize * c;
                d.copy_from_slice(&x[s..s + run]);
            } else {
                for kx in 0..g.kw {
                    let ix = ix0 + (kx * g.dw) as isize;
                    let dd = &mut d[kx * cg..(kx + 1) * cg];
                    if ix < 0 || ix as usize >= g.w {
                        dd.fill(0.0);
                    } else {
                        let s = row_base + ix as usize * c;
                        dd.copy_from_slice(&x[s..s + cg]);
                    }
                }
            }
        }
    }
}

/// Adds rows `row0..row0 + rows` of `dcol` (one group's, channels `c0..c0 + cg`) back onto
/// the input gradient `dx`, which holds the images starting at `img0`.
fn col2im(
    g: &Geom,
    dcol: &[f32],
    row0: usize,
    rows: usize,
    c0: usize,
    img0: usize,
    dx: &mut [f32],
) {
    let k = g.k();
    let (c, cg) = (g.c, g.cg);
    let run = g.kw * cg;
    for r in 0..rows {
        let (img, iy0, ix0) = g.row_origin(row0 + r);
        let src = &dcol[r * k..(r + 1) * k];
        let img_base = (img - img0) * g.h * g.w * c + c0;
        let full_x = cg == c && g.dw == 1 && ix0 >= 0 && ix0 as usize + g.kw <= g.w;
        for ky in 0..g.kh {
            let iy = iy0 + (ky * g.dh) as isize;
            if iy < 0 || iy as usize >= g.h {
                continue;
            }
            let s = &src[ky * run..(ky + 1) * run];
            let row_base = img_base + iy as usize * g.w * c;
            if full_x {
                let o = row_base + ix0 as usize * c;
                for (d, v) in dx[o..o + run].iter_mut().zip(s) {
                    *d += v;
                }
            } else {
                for kx in 0..g.kw {
                    let ix = ix0 + (kx * g.dw) as isize;
                    if ix < 0 || ix as usize >= g.w {
                        continue;
                    }
                    let o = row_base + ix as usize * c;
                    for (d, v) in dx[o..o + cg].iter_mut().zip(&s[kx * cg..(kx + 1) * cg]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Default)]
struct Scratch {
    col: Vec<f32>,
    dcol: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f64>,
}

/// Splits `n` images into at most one contiguous range per thread: `(images per group, groups)`.
pub(crate) fn image_groups(n: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let g = threads.min(n).max(1);
    let per = n.div_ceil(g).max(1);
    (per, n.div_ceil(per).max(1))
}

/// A 2-D convolution layer (cross-correlation, as in PyTorch).
#[derive(Clone)]
pub struct Conv2d {
    cfg: Conv2dConfig,
    /// Kernel, stored `[c_out][kh][kw][c_in / groups]` (PyTorch name `weight`, shape
    /// `[c_out, c_in / groups, kh, kw]`; see [`ParamLayout::ConvOhwi`]).
    pub weight: Param,
    /// Optional bias (PyTorch name `bias`).
    pub bias: Option<Param>,
    out: Tensor,
    dx: Tensor,
    scratch: Vec<Scratch>,
    last_input: Option<[usize; 4]>,
}

impl Conv2d {
    /// A convolution with Kaiming-normal weights (fan-out, ReLU gain, as torchvision's ResNets)
    /// and a zero bias.
    ///
    /// The fan is PyTorch's for the weight tensor `[c_out, c_in / groups, kh, kw]`:
    /// `kaiming_normal_(mode="fan_out")` takes `fan_out = c_out · kh · kw` (its size 0 times
    /// the receptive field), whatever the groups, so the standard deviation is
    /// `√(2 / (c_out · kh · kw))` for a grouped or depthwise layer too (torchvision's
    /// MobileNets initialise their depthwise layers this way).
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for a zero size, stride or dilation, or groups that do not divide
    /// both channel counts.
    pub fn new(cfg: Conv2dConfig, rng: &mut Rng) -> Result<Self, NnError> {
        let (kh, kw) = cfg.kernel;
        if cfg.groups == 0
            || !cfg.c_in.is_multiple_of(cfg.groups)
            || !cfg.c_out.is_multiple_of(cfg.groups)
        {
            return Err(NnError::InvalidParameter {
                what: format!("Conv2d groups ({} → {} channels)", cfg.c_in, cfg.c_out),
                allowed: "a positive divisor of both channel counts",
                found: cfg.groups.to_string(),
            });
        }
        if cfg.c_in == 0
            || cfg.c_out == 0
            || kh == 0
            || kw == 0
            || cfg.stride.0 == 0
            || cfg.stride.1 == 0
            || cfg.dilation.0 == 0
            || cfg.dilation.1 == 0
        {
            return Err(NnError::InvalidParameter {
                what: "Conv2d channels, kernel, stride and dilation".into(),
                allowed: "positive",
                found: format!("{cfg:?}"),
            });
        }
        let (taps, ci, co) = (kh * kw, cfg.c_in / cfg.groups, cfg.c_out);
        let std = (2.0 / (co * taps) as f32).sqrt();
        // Drawn in `[kh][kw][c_in / groups][c_out]` order (the order of every earlier nuq
        // version, so a seed keeps giving the same network) and stored OHWI.
        let drawn: Vec<f32> = (0..taps * ci * co).map(|_| rng.normal() * std).collect();
        let mut value = vec![0.0; drawn.len()];
        for (j, &v) in drawn.iter().enumerate() {
            let (t_i, o) = (j / co, j % co);
            value[o * taps * ci + t_i] = v;
        }
        let mut weight = Param::new(value, ParamRole::ConvWeight, vec![co, ci, kh, kw]);
        weight.layout = ParamLayout::ConvOhwi {
            c_out: cfg.c_out,
            c_in: ci,
            kh,
            kw,
        };
        let bias = cfg
            .bias
            .then(|| Param::new(vec![0.0; cfg.c_out], ParamRole::Bias, vec![cfg.c_out]));
        Ok(Self {
            cfg,
            weight,
            bias,
            out: Tensor::default(),
            dx: Tensor::default(),
            scratch: Vec::new(),
            last_input: None,
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> Conv2dConfig {
        self.cfg
    }

    fn geom(&self, input: [usize; 4]) -> Result<Geom, NnError> {
        let [n, h, w, c] = input;
        let (kh, kw) = self.cfg.kernel;
        let (sh, sw) = self.cfg.stride;
        let (ph, pw) = self.cfg.padding;
        let (dh, dw) = self.cfg.dilation;
        // The input pixels one kernel window spans.
        let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        if c != self.cfg.c_in {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: format!("expected {} channels", self.cfg.c_in),
            });
        }
        if h + 2 * ph < eh || w + 2 * pw < ew {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: "padded input smaller than the (dilated) kernel".into(),
            });
        }
        Ok(Geom {
            n,
            h,
            w,
            c,
            cg: c / self.cfg.groups,
            groups: self.cfg.groups,
            oh: (h + 2 * ph - eh) / sh + 1,
            ow: (w + 2 * pw - ew) / sw + 1,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
        })
    }

    fn chunk_rows(k: usize, group_rows: usize) -> usize {
        (CHUNK_VALUES / k)
            .max(MIN_CHUNK_ROWS)
            .min(group_rows)
            .max(1)
    }

    /// The geometry of `nuq-kernels`' direct convolution where it runs this layer: one
    /// channel group, a kernel that is not a plain pointwise product (which needs no column
    /// matrix), output channels a multiple of 16, and a CPU it runs on
    /// ([`float_conv::supports`]).
    fn direct(&self, g: &Geom) -> Option<ConvGeometry> {
        if g.groups != 1 || g.pointwise() {
            return None;
        }
        let kg = ConvGeometry {
            n: g.n,
            h: g.h,
            w: g.w,
            c_in: g.c,
            c_out: self.cfg.c_out,
            kernel: (g.kh, g.kw),
            stride: (g.sh, g.sw),
            padding: (g.ph, g.pw),
            dilation: (g.dh, g.dw),
        };
        float_conv::supports(&kg).then_some(kg)
    }
}

impl Conv2d {
    /// Output rows `row_begin ..` (`out_g`) of the forward pass as im2col chunks times the
    /// weights (the `gemm` crate), group by group.
    fn forward_gemm(
        g: &Geom,
        xd: &[f32],
        w: &[f32],
        cout: usize,
        row_begin: usize,
        out_g: &mut [f32],
        s: &mut Scratch,
    ) {
        let k = g.k();
        let mg = cout / g.groups;
        let grows = out_g.len() / cout;
        let chunk = Self::chunk_rows(k, grows);
        if !g.pointwise() && s.col.len() < chunk * k {
            s.col.resize(chunk * k, 0.0);
        }
        let mut start = 0;
        while start < grows {
            let r = chunk.min(grows - start);
            let rows = row_begin + start;
            for grp in 0..g.groups {
                let (c0, o0) = (grp * g.cg, grp * mg);
                // Pointwise: the input rows themselves, read through their stride.
                let lhs = if g.pointwise() {
                    View::rows(&xd[rows * g.c + c0..(rows + r) * g.c], g.c)
                } else {
                    im2col(g, xd, rows, r, c0, &mut s.col[..r * k]);
                    View::rows(&s.col[..r * k], k)
                };
                matmul(
                    r,
                    mg,
                    k,
                    &mut out_g[start * cout + o0..(start + r) * cout],
                    cout,
                    false,
                    lhs,
                    View::transposed(&w[o0 * k..(o0 + mg) * k], k),
                    Parallelism::None,
                );
            }
            start += r;
        }
    }

    /// The weight gradient (`dw`: into `s.dw`, `dWᵀ[K, c_out]`) and/or the input gradient
    /// (`dx`: into `dx_g`, the images from `img0` on) of output rows `row_begin ..
    /// row_begin + grows`, as im2col chunks and `gemm` products with col2im, group by group.
    #[allow(clippy::too_many_arguments)]
    fn backward_gemm(
        g: &Geom,
        xd: &[f32],
        dyd: &[f32],
        w: &[f32],
        cout: usize,
        row_begin: usize,
        grows: usize,
        s: &mut Scratch,
        dx_g: &mut [f32],
        dw: bool,
        dx: bool,
        img0: usize,
    ) {
        let k = g.k();
        let mg = cout / g.groups;
        let chunk = Self::chunk_rows(k, grows);
        if !g.pointwise() {
            if dw && s.col.len() < chunk * k {
                s.col.resize(chunk * k, 0.0);
            }
            if dx && s.dcol.len() < chunk * k {
                s.dcol.resize(chunk * k, 0.0);
            }
            if dx {
                dx_g.fill(0.0);
            }
        }
        let mut start = 0;
        while start < grows {
            let r = chunk.min(grows - start);
            let rows = row_begin + start;
            for grp in 0..g.groups {
                let (c0, o0) = (grp * g.cg, grp * mg);
                // This group's columns of dY and rows of W.
                let dy_c = View::rows(&dyd[rows * cout + o0..(rows + r) * cout], cout);
                if dw {
                    let col = if g.pointwise() {
                        View::transposed(&xd[rows * g.c + c0..(rows + r) * g.c], g.c)
                    } else {
                        im2col(g, xd, rows, r, c0, &mut s.col[..r * k]);
                        View::transposed(&s.col[..r * k], k)
                    };
                    matmul(
                        k,
                        mg,
                        r,
                        &mut s.dw[o0..],
                        cout,
                        start > 0,
                        col,
                        dy_c,
                        Parallelism::None,
                    );
                }
                if dx {
                    let w_g = View::rows(&w[o0 * k..(o0 + mg) * k], k);
                    if g.pointwise() {
                        matmul(
                            r,
                            k,
                            mg,
                            &mut dx_g[start * g.c + c0..(start + r) * g.c],
                            g.c,
                            false,
                            dy_c,
                            w_g,
                            Parallelism::None,
                        );
                    } else {
                        matmul(
                            r,
                            k,
                            mg,
                            &mut s.dcol[..r * k],
                            k,
                            false,
                            dy_c,
                            w_g,
                            Parallelism::None,
                        );
                        col2im(g, &s.dcol[..r * k], rows, r, c0, img0, dx_g);
                    }
                }
            }
            start += r;
        }
    }
}

impl Conv2dConfig {
    /// The layer's name in messages ([`Layer::describe`]).
    fn label(&self) -> String {
        let c = self;
        format!(
            "Conv2d({}→{}, {}×{}, stride {:?}, padding {:?}{}{}{})",
            c.c_in,
            c.c_out,
            c.kernel.0,
            c.kernel.1,
            c.stride,
            c.padding,
            if c.dilation == (1, 1) {
                String::new()
            } else {
                format!(", dilation {:?}", c.dilation)
            },
            if c.groups == 1 {
                String::new()
            } else {
                format!(", groups {}", c.groups)
            },
            if c.bias { ", bias" } else { "" }
        )
    }
}

/// A direct-convolution error as the layer's error (the geometry was checked, so this marks
/// a broken invariant, reported rather than panicking); the name is formed only then.
fn kernel_err(cfg: Conv2dConfig) -> impl Fn(nuq_kernels::KernelError) -> NnError + Sync {
    move |source| NnError::Kernel {
        what: cfg.label(),
        source,
    }
}

impl Layer for Conv2d {
    fn describe(&self) -> String {
        self.cfg.label()
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        let g = self.geom(input)?;
        Ok([g.n, g.oh, g.ow, self.cfg.c_out])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        let g = self.geom(x.shape())?;
        let cout = self.cfg.c_out;
        self.out.reshape_uninit([g.n, g.oh, g.ow, cout]);
        self.last_input = Some(x.shape());
        if g.n == 0 {
            return Ok(&self.out);
        }
        let img_rows = g.oh * g.ow;
        let (per, groups) = image_groups(g.n);
        if self.scratch.len() < groups {
            self.scratch.resize_with(groups, Scratch::default);
        }
        let w = &self.weight.value;
        let direct = self.direct(&g);
        let err = kernel_err(self.cfg);
        let filter = match &direct {
            Some(kg) => Some(Filter::forward(kg, w).map_err(&err)?),
            None => None,
        };
        let bias = self.bias.as_ref().map(|b| &b.value[..]);
        let xd = x.data();
        let scratch = &mut self.scratch;
        self.out
            .data_mut()
            .par_chunks_mut(per * img_rows * cout)
            .zip(scratch.par_iter_mut())
            .enumerate()
            .try_for_each(|(gi, (out_g, s))| {
                let row_begin = gi * per * img_rows;
                if let (Some(kg), Some(f)) = (&direct, &filter) {
                    float_conv::forward(kg, xd, f, row_begin, out_g).map_err(&err)?;
                } else {
                    Self::forward_gemm(&g, xd, w, cout, row_begin, out_g, s);
                }
                if let Some(b) = bias {
                    for row in out_g.chunks_exact_mut(cout) {
                        for (o, bv) in row.iter_mut().zip(b) {
                            *o += bv;
                        }
                    }
                }
                Ok::<(), NnError>(())
            })?;
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        if self.last_input != Some(x.shape()) {
            return Err(NnError::NoForward {
                layer: self.describe(),
            });
        }
        let g = self.geom(x.shape())?;
        let cout = self.cfg.c_out;
        check_grad_shape(&self.describe(), [g.n, g.oh, g.ow, cout], dy)?;
        let k = g.k();
        let img_rows = g.oh * g.ow;
        let img_in = g.h * g.w * g.c;
        let (per, groups) = image_groups(g.n.max(1));
        if self.scratch.len() < groups {
            self.scratch.resize_with(groups, Scratch::default);
        }
        // The direct kernels: the weight gradient wherever they run the layer, the input
        // gradient where its lanes (the input channels) are a multiple of 16.
        let direct = self.direct(&g);
        let err = kernel_err(self.cfg);
        let direct_dx = match &direct {
            Some(kg) if need_input_grad && float_conv::supports_input_grad(kg) => {
                Some(GradFilter::new(kg, &self.weight.value).map_err(&err)?)
            }
            _ => None,
        };
        if need_input_grad {
            self.dx.reshape_uninit(x.shape());
        } else {
            self.dx.reshape_uninit([0, 0, 0, 0]);
        }
        let mut dx_parts: Vec<&mut [f32]> = if need_input_grad {
            self.dx.data_mut().chunks_mut(per * img_in).collect()
        } else {
            Vec::new()
        };
        dx_parts.resize_with(groups, Default::default);
        let w = &self.weight.value;
        let xd = x.data();
        let dyd = dy.data();
        let has_bias = self.bias.is_some();
        if g.n == 0 {
            self.weight.grad.fill(0.0);
            if let Some(b) = &mut self.bias {
                b.grad.fill(0.0);
            }
            return Ok(());
        }
        self.scratch[..groups]
            .par_iter_mut()
            .zip(dx_parts.into_par_iter())
            .enumerate()
            .try_for_each(|(gi, (s, dx_g))| {
                let row_begin = gi * per * img_rows;
                let grows = (per * img_rows).min(g.n * img_rows - row_begin);
                s.dw.resize(k * cout, 0.0);
                if let Some(kg) = &direct {
                    s.dw.fill(0.0);
                    let dy_g = &dyd[row_begin * cout..(row_begin + grows) * cout];
                    float_conv::weight_grad(kg, xd, dy_g, row_begin, &mut s.dw).map_err(&err)?;
                    if let Some(f) = &direct_dx {
                        float_conv::input_grad(kg, dyd, f, gi * per * g.h * g.w, dx_g)
                            .map_err(&err)?;
                    }
                }
                let gemm_dw = direct.is_none();
                let gemm_dx = need_input_grad && direct_dx.is_none();
                if gemm_dw || gemm_dx {
                    Self::backward_gemm(
                        &g,
                        xd,
                        dyd,
                        w,
                        cout,
                        row_begin,
                        grows,
                        s,
                        dx_g,
                        gemm_dw,
                        gemm_dx,
                        gi * per,
                    );
                }
                if has_bias {
                    s.db.clear();
                    s.db.resize(cout, 0.0);
                    for row in dyd[row_begin * cout..(row_begin + grows) * cout].chunks_exact(cout)
                    {
                        for (acc, v) in s.db.iter_mut().zip(row) {
                            *acc += *v as f64;
                        }
                    }
                }
                Ok::<(), NnError>(())
            })?;
        let scratch = &self.scratch[..groups];
        // Row `o` of the OHWI gradient is column `o` of every thread's `dWᵀ[K, c_out]`, summed
        // in thread order. Transposed `O_BLOCK` rows at a time: each `dWᵀ` row is then read
        // a cache line at a time, not a value per line.
        const O_BLOCK: usize = 16;
        self.weight
            .grad
            .par_chunks_mut(k * O_BLOCK)
            .enumerate()
            .for_each(|(b, dst)| {
                let (o0, ob) = (b * O_BLOCK, dst.len() / k);
                let mut sum = [0.0f32; O_BLOCK];
                for j in 0..k {
                    let at = j * cout + o0;
                    let sum = &mut sum[..ob];
                    sum.copy_from_slice(&scratch[0].dw[at..at + ob]);
                    for s in &scratch[1..] {
                        for (d, v) in sum.iter_mut().zip(&s.dw[at..at + ob]) {
                            *d += v;
                        }
                    }
                    for (i, v) in sum.iter().enumerate() {
                        dst[i * k + j] = *v;
                    }
                }
            });
        if let Some(b) = &mut self.bias {
            for (o, gb) in b.grad.iter_mut().enumerate() {
                *gb = scratch.iter().map(|s| s.db[o]).sum::<f64>() as f32;
            }
        }
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

    fn macs(&self, input: [usize; 4]) -> u64 {
        match self.geom(input) {
            Ok(g) => (g.oh * g.ow * g.k() * self.cfg.c_out) as u64,
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
/// The GEMM reads the OHWI kernel through strides: it must give the same bits as the
/// `[K, c_out]` copy earlier versions multiplied, so a seed trains the same network.
mod layout_check {
    use super::*;
    #[test]
    fn strided_ohwi_products_equal_hwio_copies_bitwise() {
        let mut rng = Rng::new(3);
        for &(r, k, cout) in &[
            (512usize, 576usize, 64usize),
            (700, 27, 16),
            (512, 1152, 128),
            (96, 4608, 512),
            (1024, 144, 16),
            (33, 64, 10),
        ] {
            let col: Vec<f32> = (0..r * k).map(|_| rng.normal()).collect();
            let dy: Vec<f32> = (0..r * cout).map(|_| rng.normal()).collect();
            let ohwi: Vec<f32> = (0..k * cout).map(|_| rng.normal()).collect();
            let mut hwio = vec![0.0; k * cout];
            for o in 0..cout {
                for j in 0..k {
                    hwio[j * cout + o] = ohwi[o * k + j];
                }
            }
            let mut a = vec![0.0; r * cout];
            let mut b = vec![0.0; r * cout];
            matmul(
                r,
                cout,
                k,
                &mut a,
                cout,
                false,
                View::rows(&col, k),
                View::rows(&hwio, cout),
                Parallelism::None,
            );
            matmul(
                r,
                cout,
                k,
                &mut b,
                cout,
                false,
                View::rows(&col, k),
                View::transposed(&ohwi, k),
                Parallelism::None,
            );
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "fwd {r} {k} {cout}"
            );
            let mut a = vec![0.0; r * k];
            let mut b = vec![0.0; r * k];
            matmul(
                r,
                k,
                cout,
                &mut a,
                k,
                false,
                View::rows(&dy, cout),
                View::transposed(&hwio, cout),
                Parallelism::None,
            );
            matmul(
                r,
                k,
                cout,
                &mut b,
                k,
                false,
                View::rows(&dy, cout),
                View::rows(&ohwi, k),
                Parallelism::None,
            );
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "dcol {r} {k} {cout}"
            );
        }
    }
}
