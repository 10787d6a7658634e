//! Integer-only inference over an [`IntegerModel`] with the `nuq-kernels` kernels.
//!
//! Every operation in the forward pass is integer: im2col copies bytes, the GEMM multiplies
//! `u8` levels by `i8` weight levels into `i32`, requantization compares against integer
//! thresholds, pooling adds and divides integers, and alignment multiplies and shifts.
//!
//! ## How it runs
//!
//! [`IntegerRunner::new`] compiles every node once for the kernels: a convolution becomes a
//! [`nuq_kernels::conv::Conv`] (packed weights, bias folded into its thresholds), the
//! classifier a 1×1 one over a 1×1 image, residual joins get 64-bit threshold tables
//! (counted in 32 bits whenever a vector of sums fits). A batch is one GEMM problem per
//! convolution (`m = batch · OH · OW` rows), which the kernel runs as tiles that unfold,
//! multiply and requantize their own block while it is in cache. Residual joins and
//! max-pooling run on the kernels' paths as well.
//! Tensor buffers belong to the runner and per-tile scratch to the worker threads; both grow
//! to the largest batch once and are reused, so steady-state calls do not allocate.
//!
//! A batch of at least [`SPLIT_MIN_IMAGES`] images per thread is instead split into one
//! share of whole images per thread, each share run through the whole network on a thread
//! of its own in chunks whose tensors stay in that core's L2 (the `split` module): no barrier
//! between nodes, no tensor in the shared cache.
//!
//! A residual join whose main branch is a convolution's `acc + bias` read by nothing else
//! runs fused into that convolution ([`Conv::run_join`]): the convolution is deferred to the
//! join's place in the graph and each tile joins its own block while it is in cache, so the
//! `i32` tensor is never written. Likewise a 2×2, stride-2 max-pool whose input is a
//! convolution's levels read by nothing else runs fused into that convolution
//! ([`Conv::run_pooled`], where [`Conv::pools`]: ascending levels, an even output): each tile
//! pools its accumulators and requantizes a quarter as many, and the full-size levels are
//! never written. [`IntegerRunner::forward_with`], whose hook sees every node's output, runs
//! the nodes one by one; the logits are the same either way.
//!
//! Every output element is computed by exactly one tile with exact integer arithmetic, so
//! logits are bit-identical across kernel paths, thread counts and batch splits.

use nuq_kernels::conv::{Conv, ConvOut, ConvScratch, Requantize};
use nuq_kernels::pool::{global_avg_pool_u8, max_pool_u8_batch};
use nuq_kernels::residual_threshold::{ResidualThresholds, Shortcut};
use nuq_kernels::Window;
use nuq_kernels::{KernelError, KernelPath, Weights};

use super::split::{Schedule, Split, SPLIT_MIN_IMAGES};
use crate::integer::model::{
    transpose_rows, ConvNode, ConvOutput, IntegerModel, LinearNode, Node, TensorInfo, TensorKind,
    WeightTable, DEFAULT_MEMORY_LIMIT,
};
use crate::NnError;

/// A node compiled for the runner (the classifier is a [`Conv`] too).
enum Op {
    Conv(Box<Conv>),
    Add(Box<ResidualThresholds>),
    MaxPool(Window),
    GlobalAvgPool,
}

/// One tensor's values for a batch, as handed to a dump hook.
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    /// Activation levels, NHWC.
    Levels(&'a [u8]),
    /// Accumulators or logits, NHWC.
    Int32(&'a [i32]),
}

/// The hook of [`IntegerRunner::forward_with`]: node, its tensor's shape, its values.
type DumpHook<'h> = dyn FnMut(usize, TensorInfo, TensorData<'_>) + 'h;

enum Buf {
    Levels(Vec<u8>),
    Int32(Vec<i32>),
}

impl Buf {
    /// The first `len` values.
    fn data(&self, len: usize) -> TensorData<'_> {
        match self {
            Buf::Levels(v) => TensorData::Levels(&v[..len]),
            Buf::Int32(v) => TensorData::Int32(&v[..len]),
        }
    }
}

/// Runs an [`IntegerModel`]: nodes are compiled once, buffers are reused across calls.
pub struct IntegerRunner<'m> {
    compiled: Compiled<'m>,
    /// The tensors of a batch run whole on the caller's pool.
    work: Workspace,
    /// The threads of a batch split into whole images (see [`IntegerRunner::forward`]).
    split: Split,
    /// Logits of a split batch.
    logits: Vec<i32>,
    /// Bytes of working memory a batch may need ([`IntegerModel::working_set_bytes`]).
    memory_limit: u64,
    /// Working memory of one image (the working set grows linearly with the batch).
    bytes_per_image: u64,
}

/// What the runner compiled from the model: read, never written, by every thread of a
/// forward pass.
pub(super) struct Compiled<'m> {
    model: &'m IntegerModel,
    infos: Vec<TensorInfo>,
    ops: Vec<Op>,
    /// Per node: the convolution node fused into this join (see the module docs).
    join_of: Vec<Option<usize>>,
    /// Per node: the convolution node fused into this max-pool (see the module docs).
    pool_of: Vec<Option<usize>>,
    /// Per node: a convolution that runs fused into a later join or max-pool.
    deferred: Vec<bool>,
    path: KernelPath,
}

/// One forward pass's tensors and convolution scratch (grown once, reused across calls).
pub(super) struct Workspace {
    bufs: Vec<Buf>,
    /// im2col matrix and accumulators of column-split convolutions.
    scratch: ConvScratch,
}

impl Workspace {
    /// Empty buffers for the tensors of `infos`.
    pub(super) fn new(infos: &[TensorInfo]) -> Self {
        let bufs = infos
            .iter()
            .map(|t| match t.kind {
                TensorKind::Levels => Buf::Levels(Vec::new()),
                _ => Buf::Int32(Vec::new()),
            })
            .collect();
        Self {
            bufs,
            scratch: ConvScratch::default(),
        }
    }
}

impl<'m> IntegerRunner<'m> {
    /// Validates the model, packs its weights for `path` and lays out its tables, with the
    /// default working-memory limit ([`DEFAULT_MEMORY_LIMIT`]).
    ///
    /// # Errors
    /// [`NnError::InvalidModel`] for an inconsistent model, [`NnError::Kernel`] for tables the kernels reject (e.g. an
    /// alignment shift above 62) or an unavailable kernel path; [`NnError::MemoryLimit`] when
    /// one image needs more working memory than the limit.
    pub fn new(model: &'m IntegerModel, path: KernelPath) -> Result<Self, NnError> {
        Self::with_memory_limit(model, path, DEFAULT_MEMORY_LIMIT)
    }

    /// As [`IntegerRunner::new`] with a working-memory limit of `limit` bytes: a model whose
    /// working set for one image exceeds it is refused here, and a batch whose working set
    /// exceeds it is refused by [`IntegerRunner::forward`] before anything is allocated.
    ///
    /// # Errors
    /// As [`IntegerRunner::new`].
    pub fn with_memory_limit(
        model: &'m IntegerModel,
        path: KernelPath,
        limit: u64,
    ) -> Result<Self, NnError> {
        path.ensure_available().map_err(|source| NnError::Kernel {
            what: "integer runner".into(),
            source,
        })?;
        let infos = model.tensor_infos()?;
        let bytes_per_image = model.check_memory(1, limit)?;
        let ops = model
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| compile(model, &infos, i, node))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = readers(model);
        let join_of = fusable_joins(model, &readers);
        let pool_of = fusable_pools(model, &readers, &ops);
        let mut deferred = vec![false; model.nodes.len()];
        for &conv in join_of.iter().chain(&pool_of).flatten() {
            deferred[conv] = true;
        }
        let work = Workspace::new(&infos);
        Ok(Self {
            compiled: Compiled {
                model,
                infos,
                ops,
                join_of,
                pool_of,
                deferred,
                path,
            },
            work,
            split: Split::default(),
            logits: Vec::new(),
            memory_limit: limit,
            bytes_per_image,
        })
    }

    /// The working-memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// Checks that a batch of `n` images fits the working-memory limit and returns the bytes
    /// it needs (call it before allocating the images themselves).
    ///
    /// # Errors
    /// [`NnError::MemoryLimit`].
    pub fn check_batch(&self, n: usize) -> Result<u64, NnError> {
        // Equal to `IntegerModel::check_memory(n, limit)`, without validating the model again.
        let needed = self.bytes_per_image.saturating_mul(n as u64);
        if needed > self.memory_limit {
            return Err(NnError::MemoryLimit {
                needed,
                limit: self.memory_limit,
                batch: n,
            });
        }
        Ok(needed)
    }

    /// Shape and kind of every tensor (`[0]` is the input).
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.compiled.infos
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.compiled.classes()
    }

    /// Logits (`n × classes`, int32) for `n` images of NHWC bytes (`n = 0` gives none).
    ///
    /// On a pool of `T ≥ 2` threads, a batch of at least [`SPLIT_MIN_IMAGES`] images per
    /// thread is split into `T` runs of whole images, each on a thread of its own (a
    /// one-thread pool the runner keeps) in chunks whose tensors stay in that core's cache;
    /// smaller batches run whole, every node's tiles spread over the pool. The logits are
    /// the same either way.
    ///
    /// # Errors
    /// [`NnError::SizeMismatch`] for a wrong input length; [`NnError::MemoryLimit`] for a batch
    /// above the working-memory limit; [`NnError::Kernel`] for kernel errors (e.g. a possible
    /// accumulator overflow); [`NnError::Overflow`] when a bias pushes a sum past `i32`.
    pub fn forward(&mut self, images: &[u8], n: usize) -> Result<&[i32], NnError> {
        self.compiled.check_input(images, n)?;
        if n == 0 {
            return Ok(&[]);
        }
        self.check_batch(n)?;
        let threads = rayon::current_num_threads();
        if matches!(self.schedule(n), Schedule::Split { .. }) && self.split.ready(threads) {
            let len = n * self.classes();
            grow(&mut self.logits, len);
            self.split
                .run(&self.compiled, images, n, &mut self.logits[..len])?;
            return Ok(&self.logits[..len]);
        }
        self.compiled.run(&mut self.work, images, n, None)
    }

    /// How [`IntegerRunner::forward`] runs a batch of `n` images on the current pool.
    ///
    /// ```
    /// use nuq_nn::integer::random::{random_model, RandomModelSpec};
    /// use nuq_nn::integer::{IntegerRunner, Schedule};
    /// use nuq_nn::Arch;
    /// let model = random_model(&RandomModelSpec::cifar(Arch::ResNet20, 4), 1)?;
    /// let runner = IntegerRunner::new(&model, nuq_kernels::KernelPath::best_available())?;
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// assert_eq!(pool.install(|| runner.schedule(1)), Schedule::Tiles);
    /// assert!(matches!(pool.install(|| runner.schedule(64)), Schedule::Split { shares: 2, .. }));
    /// # Ok::<(), nuq_nn::NnError>(())
    /// ```
    pub fn schedule(&self, n: usize) -> Schedule {
        let threads = rayon::current_num_threads();
        if threads >= 2 && n >= threads * SPLIT_MIN_IMAGES {
            Schedule::Split {
                shares: threads,
                chunk: self.compiled.split_chunk(),
            }
        } else {
            Schedule::Tiles
        }
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
    /// output for the whole batch as it is computed (golden test vectors for hardware). The
    /// batch runs whole, node by node.
    ///
    /// # Errors
    /// As [`IntegerRunner::forward`].
    pub fn forward_with(
        &mut self,
        images: &[u8],
        n: usize,
        dump: &mut dyn FnMut(usize, TensorInfo, TensorData<'_>),
    ) -> Result<&[i32], NnError> {
        self.compiled.check_input(images, n)?;
        if n == 0 {
            return Ok(&[]);
        }
        self.check_batch(n)?;
        self.compiled.run(&mut self.work, images, n, Some(dump))
    }
}

impl Compiled<'_> {
    /// Number of classes.
    pub(super) fn classes(&self) -> usize {
        self.infos.last().map_or(0, |t| t.c)
    }

    /// Shape and kind of every tensor (`[0]` is the input).
    pub(super) fn infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    /// Images per chunk of a split batch: as many as keep the largest tensor within
    /// [`split_chunk_bytes`](super::split_chunk_bytes), at least one.
    pub(super) fn split_chunk(&self) -> usize {
        (super::split_chunk_bytes() / self.largest_tensor_bytes().max(1)).max(1)
    }

    /// Bytes of one image.
    pub(super) fn image_len(&self) -> usize {
        self.infos[0].len()
    }

    /// Bytes of the largest tensor of one image that a forward pass writes (a fused
    /// convolution's accumulators never are).
    pub(super) fn largest_tensor_bytes(&self) -> usize {
        self.infos
            .iter()
            .enumerate()
            .filter(|&(t, _)| t == 0 || !self.deferred[t - 1])
            .map(|(_, t)| {
                t.len()
                    * match t.kind {
                        TensorKind::Levels => 1,
                        _ => 4,
                    }
            })
            .max()
            .unwrap_or(0)
    }

    /// Refuses an input that is not `n` whole images.
    fn check_input(&self, images: &[u8], n: usize) -> Result<(), NnError> {
        let inp = self.infos[0];
        if n.checked_mul(inp.len()) != Some(images.len()) {
            return Err(NnError::SizeMismatch {
                what: format!(
                    "integer model input: bytes of {n} images of {}×{}×{}",
                    inp.h, inp.w, inp.c
                ),
                expected: n.saturating_mul(inp.len()),
                found: images.len(),
            });
        }
        Ok(())
    }

    /// The forward pass of `n ≥ 1` checked images in `work`, on the current pool: node by
    /// node with a hook, else with fused joins.
    pub(super) fn run<'w>(
        &self,
        work: &'w mut Workspace,
        images: &[u8],
        n: usize,
        mut dump: Option<&mut DumpHook<'_>>,
    ) -> Result<&'w [i32], NnError> {
        if let Buf::Levels(v) = &mut work.bufs[0] {
            grow(v, images.len());
            v[..images.len()].copy_from_slice(images);
        }
        let fuse = dump.is_none();
        for i in 0..self.ops.len() {
            if fuse && self.deferred[i] {
                continue;
            }
            let info = self.infos[i + 1];
            match &mut work.bufs[i + 1] {
                Buf::Levels(v) => grow(v, n * info.len()),
                Buf::Int32(v) => grow(v, n * info.len()),
            }
            match (fuse, self.join_of[i], self.pool_of[i]) {
                (true, Some(conv), _) => self.run_fused(work, conv, i, n)?,
                (true, _, Some(conv)) => self.run_pooled(work, conv, i, n)?,
                _ => self.run_node(work, i, n)?,
            }
            if let Some(dump) = dump.as_mut() {
                dump(i, info, work.bufs[i + 1].data(n * info.len()));
            }
        }
        let len = n * self.classes();
        match work.bufs.last() {
            Some(Buf::Int32(v)) => Ok(&v[..len]),
            _ => Err(NnError::InvalidModel {
                node: self.ops.len().checked_sub(1),
                problem: crate::ModelProblem::NoClassifier,
            }),
        }
    }

    /// Convolution node `c` fused into join node `j` (the join's main branch is `c`'s
    /// output, which nothing else reads).
    fn run_fused(&self, work: &mut Workspace, c: usize, j: usize, n: usize) -> Result<(), NnError> {
        let out_len = n * self.infos[j + 1].len();
        let (before, rest) = work.bufs.split_at_mut(j + 1);
        let (conv, x) = self.deferred_conv(before, c, n);
        let (Op::Add(join), Node::Add(add)) = (&self.ops[j], &self.model.nodes[j]) else {
            unreachable!("fusable_joins pairs a convolution with a join")
        };
        let b = match &before[add.b] {
            Buf::Int32(b) => Shortcut::Int32(&b[..out_len]),
            Buf::Levels(b) => Shortcut::Levels(&b[..out_len]),
        };
        let Buf::Levels(o) = &mut rest[0] else {
            unreachable!("validated: add writes levels")
        };
        conv.run_join(
            self.path,
            x,
            n,
            join,
            b,
            &mut o[..out_len],
            &mut work.scratch,
        )
        .map_err(conv_err(c, &self.model.nodes[c]))
    }

    /// Deferred convolution node `c` and its input levels for `n` images (in `before`, the
    /// tensors up to the node it is fused into).
    fn deferred_conv<'b>(&self, before: &'b [Buf], c: usize, n: usize) -> (&Conv, &'b [u8]) {
        let (Op::Conv(conv), Node::Conv(ConvNode { input, .. })) =
            (&self.ops[c], &self.model.nodes[c])
        else {
            unreachable!("only convolutions are deferred")
        };
        let Buf::Levels(x) = &before[*input] else {
            unreachable!("validated: the node reads levels")
        };
        (conv, &x[..n * self.infos[*input].len()])
    }

    /// Convolution node `c` fused into max-pool node `p` (the pool's input is `c`'s levels,
    /// which nothing else reads).
    fn run_pooled(
        &self,
        work: &mut Workspace,
        c: usize,
        p: usize,
        n: usize,
    ) -> Result<(), NnError> {
        let out_len = n * self.infos[p + 1].len();
        let (before, rest) = work.bufs.split_at_mut(p + 1);
        let (conv, x) = self.deferred_conv(before, c, n);
        let Buf::Levels(o) = &mut rest[0] else {
            unreachable!("validated: max-pool writes levels")
        };
        conv.run_pooled(self.path, x, n, &mut o[..out_len], &mut work.scratch)
            .map_err(conv_err(c, &self.model.nodes[c]))
    }

    fn run_node(&self, work: &mut Workspace, i: usize, n: usize) -> Result<(), NnError> {
        let path = self.path;
        let out_info = self.infos[i + 1];
        let out_len = n * out_info.len();
        let (before, rest) = work.bufs.split_at_mut(i + 1);
        let out = &mut rest[0];
        let levels_in = |id: usize| -> &[u8] {
            match &before[id] {
                Buf::Levels(v) => &v[..n * self.infos[id].len()],
                Buf::Int32(_) => unreachable!("validated: the node reads levels"),
            }
        };
        match (&self.ops[i], &self.model.nodes[i]) {
            (
                Op::Conv(conv),
                Node::Conv(ConvNode { input, .. }) | Node::Linear(LinearNode { input, .. }),
            ) => {
                let x = levels_in(*input);
                let dst = match out {
                    Buf::Levels(o) => ConvOut::Levels(&mut o[..out_len]),
                    Buf::Int32(o) => ConvOut::Int32(&mut o[..out_len]),
                };
                conv.run(path, x, n, dst, &mut work.scratch)
                    .map_err(conv_err(i, &self.model.nodes[i]))
            }
            (Op::Add(rt), Node::Add(add)) => {
                let Buf::Int32(a) = &before[add.a] else {
                    unreachable!("validated: add reads an accumulator")
                };
                let b = match &before[add.b] {
                    Buf::Int32(b) => Shortcut::Int32(&b[..out_len]),
                    Buf::Levels(b) => Shortcut::Levels(&b[..out_len]),
                };
                let Buf::Levels(o) = out else {
                    unreachable!("validated: add writes levels")
                };
                rt.apply(path, &a[..out_len], b, &mut o[..out_len])
                    .map_err(kernel_err("residual join"))
            }
            (Op::MaxPool(g), Node::MaxPool(p)) => {
                let x = levels_in(p.input);
                let Buf::Levels(o) = out else {
                    unreachable!("validated: max-pool writes levels")
                };
                max_pool_u8_batch(g, x, n, &mut o[..out_len]).map_err(kernel_err("max-pool"))
            }
            (Op::GlobalAvgPool, Node::GlobalAvgPool { input }) => {
                let x_info = self.infos[*input];
                let x = levels_in(*input);
                let Buf::Levels(o) = out else {
                    unreachable!("validated: pooling writes levels")
                };
                let (hw, ch) = (x_info.h * x_info.w, x_info.c);
                global_avg_pool_u8(&x[..n * hw * ch], n, hw, ch, &mut o[..out_len])
                    .map_err(kernel_err("global average pool"))
            }
            _ => unreachable!("ops are compiled from the nodes in order"),
        }
    }
}

/// How many nodes read each tensor (`[t]` for tensor `t`; the input is tensor 0).
fn readers(model: &IntegerModel) -> Vec<usize> {
    let nodes = &model.nodes;
    let mut readers = vec![0usize; nodes.len() + 1];
    for node in nodes {
        let inputs: &[usize] = match node {
            Node::Conv(c) => &[c.input],
            Node::Linear(l) => &[l.input],
            Node::Add(a) => &[a.a, a.b],
            Node::MaxPool(p) => &[p.input],
            Node::GlobalAvgPool { input } => &[*input],
        };
        for &t in inputs {
            if let Some(r) = readers.get_mut(t) {
                *r += 1;
            }
        }
    }
    readers
}

/// Per node, the convolution node fused into it: a 2×2, stride-2 max-pool without padding
/// whose input is the levels of a convolution that nothing else reads and that
/// [`Conv::pools`].
fn fusable_pools(model: &IntegerModel, readers: &[usize], ops: &[Op]) -> Vec<Option<usize>> {
    model
        .nodes
        .iter()
        .map(|node| {
            let Node::MaxPool(p) = node else { return None };
            let conv = p.input.checked_sub(1)?;
            // `pools` holds only for a convolution that writes levels.
            let pools = matches!(ops.get(conv), Some(Op::Conv(c)) if c.pools());
            (pools && (p.kernel, p.stride, p.padding) == (2, 2, 0) && readers[p.input] == 1)
                .then_some(conv)
        })
        .collect()
}

/// Per node, the convolution node fused into it: a join whose main branch is the `acc +
/// bias` of a convolution that nothing else reads (nor is the model's output).
fn fusable_joins(model: &IntegerModel, readers: &[usize]) -> Vec<Option<usize>> {
    let nodes = &model.nodes;
    nodes
        .iter()
        .map(|node| {
            let Node::Add(add) = node else { return None };
            let conv = add.a.checked_sub(1)?;
            let is_acc_conv = matches!(
                nodes.get(conv),
                Some(Node::Conv(ConvNode {
                    output: ConvOutput::Accumulator,
                    ..
                }))
            );
            (is_acc_conv && add.b != add.a && readers[add.a] == 1 && add.a < nodes.len())
                .then_some(conv)
        })
        .collect()
}

/// Compiles node `i`.
fn compile(
    model: &IntegerModel,
    infos: &[TensorInfo],
    i: usize,
    node: &Node,
) -> Result<Op, NnError> {
    Ok(match node {
        Node::Conv(c) => {
            let x = infos[c.input];
            let shape = Window {
                height: x.h,
                width: x.w,
                channels: c.c_in,
                kernel: c.kernel,
                stride: c.stride,
                padding: c.padding,
                dilation: c.dilation,
            };
            let pad = if c.input == 0 {
                model.input.zero_point.clone()
            } else {
                vec![0; c.c_in]
            };
            let lut = match &c.output {
                ConvOutput::Codes(r) => r.lut(),
                ConvOutput::Accumulator => Vec::new(),
            };
            let output = match &c.output {
                ConvOutput::Codes(r) => Requantize::Levels {
                    thresholds: &r.thresholds,
                    levels: &lut,
                },
                ConvOutput::Accumulator => Requantize::Accumulator,
            };
            conv(
                i,
                node,
                (shape, c.groups),
                &pad,
                &c.weights,
                &c.bias,
                output,
            )?
        }
        Node::Add(a) => {
            let r = &a.output;
            Op::Add(Box::new(
                ResidualThresholds::new(a.a_shift, &a.align, &r.thresholds, &r.lut()).map_err(
                    |source| NnError::Kernel {
                        what: format!("integer model node {i}: residual join"),
                        source,
                    },
                )?,
            ))
        }
        Node::MaxPool(p) => {
            let x = infos[p.input];
            Op::MaxPool(Window {
                height: x.h,
                width: x.w,
                channels: x.c,
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
                dilation: 1,
            })
        }
        Node::GlobalAvgPool { .. } => Op::GlobalAvgPool,
        Node::Linear(l) => {
            // The classifier is a 1×1 convolution over a 1×1 image of the NHWC-flattened
            // input; its rows hold the features in `[c][h][w]` order, packed as `[h][w][c]`.
            let x = infos[l.input];
            let mut nhwc = l.weights.clone();
            nhwc.indices = transpose_rows(&l.weights.indices, x.c, x.h * x.w);
            let shape = Window {
                height: 1,
                width: 1,
                channels: l.in_features,
                kernel: 1,
                stride: 1,
                padding: 0,
                dilation: 1,
            };
            let pad = vec![0; l.in_features];
            conv(
                i,
                node,
                (shape, 1),
                &pad,
                &nhwc,
                &l.bias,
                Requantize::Accumulator,
            )?
        }
    })
}

/// Node `i` as the kernels' convolution of `shape` in `groups` channel groups, one output
/// channel per bias (the model's validation ties weights, bias, thresholds and groups to
/// the channel counts). A bias that pushes a
/// sum past `i32` is the model's [`NnError::Overflow`], other kernel errors
/// [`NnError::Kernel`].
fn conv(
    i: usize,
    node: &Node,
    (shape, groups): (Window, usize),
    pad: &[u8],
    w: &WeightTable,
    bias: &[i32],
    output: Requantize<'_>,
) -> Result<Op, NnError> {
    let err = conv_err(i, node);
    let k = shape.k() / groups.max(1);
    let weights = Weights::pack(&w.indices, bias.len(), k, w.bits(), &w.lut()).map_err(&err)?;
    let conv = Conv::grouped(shape, groups, pad, weights, bias, output).map_err(&err)?;
    Ok(Op::Conv(Box::new(conv)))
}

/// Errors of node `i`'s convolution (or classifier), see [`conv`].
fn conv_err(i: usize, node: &Node) -> impl Fn(KernelError) -> NnError {
    let (op, sum) = match node {
        Node::Linear(_) => ("classifier", "logit + bias"),
        _ => ("convolution", "accumulator + bias"),
    };
    move |source| match source {
        KernelError::BiasOverflow => NnError::Overflow { node: i, what: sum },
        source => NnError::Kernel {
            what: format!("node {i}: {op}"),
            source,
        },
    }
}

fn kernel_err(what: &str) -> impl Fn(KernelError) -> NnError + '_ {
    move |source| NnError::Kernel {
        what: what.to_string(),
        source,
    }
}

/// Grows `v` to at least `len` elements (never shrinks: buffers are reused).
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}
