//! Integer-only inference over an [`IntegerModel`] with the `nuq-kernels` GEMMs.
//!
//! Every operation in the forward pass is integer: im2col copies bytes, the GEMM multiplies
//! `u8` levels by `i8` weight levels into `i32`, requantization compares against integer
//! thresholds, pooling adds and divides integers, and alignment multiplies and shifts.

use nuq_kernels::{
    gemm_codebook, gemm_u8i8, CodebookScope, CodebookWeights, KernelPath, PackedWeights,
};

use crate::integer::model::{ConvOutput, IntegerModel, Node, TensorInfo, TensorKind, WeightTable};
use crate::NnError;

/// Weights in the kernels' packed layouts.
enum Packed {
    Codebook(CodebookWeights),
    Int8(PackedWeights),
}

impl Packed {
    fn new(w: &WeightTable, rows: usize, k: usize) -> Result<Packed, NnError> {
        let kerr = |e: nuq_kernels::KernelError| NnError::Config(format!("packing weights: {e}"));
        if (2..=4).contains(&w.bits) {
            // The kernels take exactly 2^bits levels: unused indices repeat the last level.
            let mut book = w.levels.clone();
            book.resize(1 << w.bits, *w.levels.last().unwrap_or(&0));
            CodebookWeights::pack(&w.indices, rows, k, w.bits, &book, CodebookScope::PerTensor)
                .map(Packed::Codebook)
                .map_err(kerr)
        } else {
            PackedWeights::from_rows(&w.decoded(), rows, k)
                .map(Packed::Int8)
                .map_err(kerr)
        }
    }

    fn gemm(
        &self,
        path: KernelPath,
        a: &[u8],
        lda: usize,
        m: usize,
        c: &mut [i32],
        ldc: usize,
    ) -> Result<(), NnError> {
        match self {
            Packed::Codebook(w) => gemm_codebook(path, a, lda, m, w, c, ldc),
            Packed::Int8(w) => gemm_u8i8(path, a, lda, m, w, c, ldc),
        }
        .map_err(|e| NnError::Config(format!("integer GEMM: {e}")))
    }
}

/// One tensor's values for a batch, as handed to a dump hook.
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    /// Activation levels, NHWC.
    Levels(&'a [u8]),
    /// Accumulators or logits, NHWC.
    Int32(&'a [i32]),
}

enum Buf {
    Levels(Vec<u8>),
    Int32(Vec<i32>),
}

impl Buf {
    fn data(&self) -> TensorData<'_> {
        match self {
            Buf::Levels(v) => TensorData::Levels(v),
            Buf::Int32(v) => TensorData::Int32(v),
        }
    }
}

/// Runs an [`IntegerModel`]: weights are packed once, buffers are reused across calls.
pub struct IntegerRunner<'m> {
    model: &'m IntegerModel,
    infos: Vec<TensorInfo>,
    packed: Vec<Option<Packed>>,
    path: KernelPath,
    bufs: Vec<Buf>,
    cols: Vec<u8>,
    acc: Vec<i32>,
    wide: Vec<i64>,
}

impl<'m> IntegerRunner<'m> {
    /// Validates the model and packs its weights for `path`.
    ///
    /// # Errors
    /// [`NnError::Config`] for an inconsistent model or an unavailable kernel path.
    pub fn new(model: &'m IntegerModel, path: KernelPath) -> Result<Self, NnError> {
        if !path.is_available() {
            return Err(NnError::Config(format!(
                "kernel path {} is not available on this CPU",
                path.name()
            )));
        }
        let infos = model.tensor_infos()?;
        let packed = model
            .nodes
            .iter()
            .map(|n| match n {
                Node::Conv(c) => {
                    Packed::new(&c.weights, c.c_out, c.kernel * c.kernel * c.c_in).map(Some)
                }
                Node::Linear(l) => Packed::new(&l.weights, l.out_features, l.in_features).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bufs = infos
            .iter()
            .map(|t| match t.kind {
                TensorKind::Levels => Buf::Levels(Vec::new()),
                _ => Buf::Int32(Vec::new()),
            })
            .collect();
        Ok(Self {
            model,
            infos,
            packed,
            path,
            bufs,
            cols: Vec::new(),
            acc: Vec::new(),
            wide: Vec::new(),
        })
    }

    /// Shape and kind of every tensor (`[0]` is the input).
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.infos.last().map_or(0, |t| t.c)
    }

    /// Logits (`n × classes`, int32) for `n` images of NHWC bytes.
    ///
    /// # Errors
    /// [`NnError::Shape`]-style config errors for a wrong input length, kernel errors
    /// (e.g. a possible accumulator overflow) as [`NnError::Config`].
    pub fn forward(&mut self, images: &[u8], n: usize) -> Result<&[i32], NnError> {
        self.forward_with(images, n, &mut |_, _, _| {})
    }

    /// Predicted class of each of `n` images (the first maximal logit).
    ///
    /// # Errors
    /// As [`IntegerRunner::forward`].
    pub fn predict(&mut self, images: &[u8], n: usize) -> Result<Vec<usize>, NnError> {
        let classes = self.classes();
        let logits = self.forward(images, n)?;
        Ok(logits
            .chunks_exact(classes)
            .map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best
            })
            .collect())
    }

    /// As [`IntegerRunner::forward`], calling `dump(node, info, data)` with every node's
    /// output for the whole batch as it is computed (golden test vectors for hardware).
    ///
    /// # Errors
    /// As [`IntegerRunner::forward`].
    pub fn forward_with(
        &mut self,
        images: &[u8],
        n: usize,
        dump: &mut dyn FnMut(usize, TensorInfo, TensorData<'_>),
    ) -> Result<&[i32], NnError> {
        let inp = self.infos[0];
        if images.len() != n * inp.len() {
            return Err(NnError::Config(format!(
                "integer model input: {} bytes for {n} images of {}×{}×{}, expected {}",
                images.len(),
                inp.h,
                inp.w,
                inp.c,
                n * inp.len()
            )));
        }
        if let Buf::Levels(v) = &mut self.bufs[0] {
            v.clear();
            v.extend_from_slice(images);
        }
        for i in 0..self.model.nodes.len() {
            self.run_node(i, n)?;
            dump(i, self.infos[i + 1], self.bufs[i + 1].data());
        }
        match self.bufs.last() {
            Some(Buf::Int32(v)) => Ok(v),
            _ => Err(NnError::Config(
                "integer model does not end in logits".into(),
            )),
        }
    }

    fn run_node(&mut self, i: usize, n: usize) -> Result<(), NnError> {
        let out_info = self.infos[i + 1];
        let (before, rest) = self.bufs.split_at_mut(i + 1);
        let out = &mut rest[0];
        match &self.model.nodes[i] {
            Node::Conv(c) => {
                let x_info = self.infos[c.input];
                let Buf::Levels(x) = &before[c.input] else {
                    unreachable!("validated: conv reads levels")
                };
                let k = c.kernel * c.kernel * c.c_in;
                let m = n * out_info.h * out_info.w;
                let pad: Vec<u8> = if c.input == 0 {
                    self.model.input.zero_point.clone()
                } else {
                    vec![0; c.c_in]
                };
                let direct = c.kernel == 1 && c.stride == 1 && c.padding == 0;
                if !direct {
                    im2col(
                        x,
                        n,
                        x_info,
                        c.kernel,
                        c.stride,
                        c.padding,
                        &pad,
                        out_info,
                        &mut self.cols,
                    );
                }
                let a: &[u8] = if direct { x } else { &self.cols };
                self.acc.resize(m * c.c_out, 0);
                let packed = self.packed[i].as_ref().expect("conv weights are packed");
                packed.gemm(self.path, a, k, m, &mut self.acc, c.c_out)?;
                match &c.output {
                    ConvOutput::Codes(r) => {
                        self.wide.clear();
                        self.wide
                            .extend(self.acc.chunks_exact(c.c_out).flat_map(|row| {
                                row.iter()
                                    .zip(&c.bias)
                                    .map(|(&a, &b)| i64::from(a) + i64::from(b))
                            }));
                        let Buf::Levels(o) = out else { unreachable!() };
                        o.resize(m * c.c_out, 0);
                        r.apply(&self.wide, c.c_out, o, None);
                    }
                    ConvOutput::Accumulator => {
                        let Buf::Int32(o) = out else { unreachable!() };
                        o.clear();
                        for row in self.acc.chunks_exact(c.c_out) {
                            for (&a, &b) in row.iter().zip(&c.bias) {
                                o.push(a.checked_add(b).ok_or_else(|| {
                                    NnError::Config(format!(
                                        "node {i}: accumulator + bias overflows int32"
                                    ))
                                })?);
                            }
                        }
                    }
                }
            }
            Node::Add(add) => {
                let Buf::Int32(a) = &before[add.a] else {
                    unreachable!("validated: add reads an accumulator")
                };
                let ch = out_info.c;
                self.wide.clear();
                let sh = add.a_shift;
                match &before[add.b] {
                    Buf::Int32(b) => {
                        self.wide
                            .extend(a.iter().zip(b).enumerate().map(|(j, (&x, &y))| {
                                (i64::from(x) << sh) + add.align[j % ch].apply(i64::from(y))
                            }))
                    }
                    Buf::Levels(b) => {
                        self.wide
                            .extend(a.iter().zip(b).enumerate().map(|(j, (&x, &y))| {
                                (i64::from(x) << sh) + add.align[j % ch].apply(i64::from(y))
                            }))
                    }
                }
                let Buf::Levels(o) = out else { unreachable!() };
                o.resize(self.wide.len(), 0);
                add.output.apply(&self.wide, ch, o, None);
            }
            Node::MaxPool(p) => {
                let x_info = self.infos[p.input];
                let Buf::Levels(x) = &before[p.input] else {
                    unreachable!()
                };
                let Buf::Levels(o) = out else { unreachable!() };
                o.clear();
                for img in x.chunks_exact(x_info.len()) {
                    for oy in 0..out_info.h {
                        for ox in 0..out_info.w {
                            for c in 0..x_info.c {
                                let mut best = 0u8;
                                for ky in 0..p.kernel {
                                    for kx in 0..p.kernel {
                                        let (y, xx) = (oy * p.stride + ky, ox * p.stride + kx);
                                        best = best.max(img[(y * x_info.w + xx) * x_info.c + c]);
                                    }
                                }
                                o.push(best);
                            }
                        }
                    }
                }
            }
            Node::GlobalAvgPool { input } => {
                let x_info = self.infos[*input];
                let Buf::Levels(x) = &before[*input] else {
                    unreachable!()
                };
                let Buf::Levels(o) = out else { unreachable!() };
                o.clear();
                let hw = (x_info.h * x_info.w) as u64;
                for img in x.chunks_exact(x_info.len()) {
                    for c in 0..x_info.c {
                        let sum: u64 = img
                            .iter()
                            .skip(c)
                            .step_by(x_info.c)
                            .map(|&v| u64::from(v))
                            .sum();
                        o.push(((sum + hw / 2) / hw) as u8);
                    }
                }
            }
            Node::Linear(l) => {
                let Buf::Levels(x) = &before[l.input] else {
                    unreachable!()
                };
                let Buf::Int32(o) = out else { unreachable!() };
                o.resize(n * l.out_features, 0);
                let packed = self.packed[i].as_ref().expect("linear weights are packed");
                packed.gemm(self.path, x, l.in_features, n, o, l.out_features)?;
                for row in o.chunks_exact_mut(l.out_features) {
                    for (v, &b) in row.iter_mut().zip(&l.bias) {
                        *v = v.checked_add(b).ok_or_else(|| {
                            NnError::Config(format!("node {i}: logit + bias overflows int32"))
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Unfolds NHWC `x` into rows of `kernel · kernel · c` bytes (order `ky, kx, c`), one per
/// output pixel, writing `pad[c]` outside the image.
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[u8],
    n: usize,
    xi: TensorInfo,
    kernel: usize,
    stride: usize,
    padding: usize,
    pad: &[u8],
    oi: TensorInfo,
    cols: &mut Vec<u8>,
) {
    let k = kernel * kernel * xi.c;
    cols.resize(n * oi.h * oi.w * k, 0);
    let mut row = 0;
    for img in x.chunks_exact(xi.len()).take(n) {
        for oy in 0..oi.h {
            for ox in 0..oi.w {
                let dst = &mut cols[row * k..(row + 1) * k];
                for ky in 0..kernel {
                    let y = (oy * stride + ky) as isize - padding as isize;
                    for kx in 0..kernel {
                        let xx = (ox * stride + kx) as isize - padding as isize;
                        let d = &mut dst[(ky * kernel + kx) * xi.c..][..xi.c];
                        if y < 0 || xx < 0 || y as usize >= xi.h || xx as usize >= xi.w {
                            d.copy_from_slice(pad);
                        } else {
                            let s = (y as usize * xi.w + xx as usize) * xi.c;
                            d.copy_from_slice(&img[s..s + xi.c]);
                        }
                    }
                }
                row += 1;
            }
        }
    }
}
