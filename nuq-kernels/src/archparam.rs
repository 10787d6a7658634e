//! Every tiling and tuning number of the kernels, in one place (as matrixmultiply's
//! `archparam`). Each only moves work between threads, caches and instructions: results are
//! exact integers and do not depend on any of them. Register tile sizes are not here: they
//! are the shape of each micro-kernel (the `MR` and `NR` of its `GemmKernel` impl in
//! `gemm/`).
//!
//! The numbers that are a share of a cache are functions of this core's L2
//! ([`l2_bytes`], read from CPUID once): the fractions were measured on 1 MiB L2s (AMD Zen 4
//! and Zen 5), where each reads as the constant it replaced; a 2 MiB L2 (Intel Sapphire and
//! Emerald Rapids) doubles them.
//!
//! The numbers that depend on the machine (the L2, the 4-bit tiles' int8 copy, the tiles per
//! thread and their least work) are read from the process's [`Tuning`], whose defaults are
//! the constants here; an application may install another one before the kernels first
//! run, to measure a number without rebuilding.

use crate::Tuning;

/// The least L2 the cache-sized numbers are taken of.
pub const L2_MIN_BYTES: usize = 256 << 10;

/// The largest L2 the cache-sized numbers are taken of: beyond it tiles would gain little
/// reuse and lose balance between threads.
pub const L2_MAX_BYTES: usize = 4 << 20;

/// One core's L2 as the cache-sized numbers below see it: the [`Tuning`]'s, by default
/// [`CacheSizes::detect`](crate::CacheSizes::detect)'s within [`L2_MIN_BYTES`] ..=
/// [`L2_MAX_BYTES`] (an odd report of a hypervisor must not give tiles of a few rows or of
/// a whole problem).
pub fn l2_bytes() -> usize {
    Tuning::current().l2_bytes
}

/// Rows a tile is a multiple of: the rows of the widest register tile (AVX-512: 8 rows ×
/// 32 columns), so that only a tile's last block runs a shorter kernel.
pub const ROW_ALIGN: usize = 8;

/// Activation bytes (`rows × k`) a tile aims at: a quarter of the L2 (256 KiB of a 1 MiB
/// one). Larger tiles reuse each weight panel over more rows; smaller ones keep the rows,
/// the tile's accumulators and the panel being read together in the L2.
pub fn tile_bytes() -> usize {
    l2_bytes() / 4
}

/// Tiles per thread a problem is split into, at least (the default of
/// [`Tuning::tiles_per_thread`]). More tiles balance uneven threads (a shared or noisy
/// machine); fewer spend less on scheduling and re-reading panels.
pub const TILES_PER_THREAD: usize = 4;

/// Multiply-accumulates a tile is given at least (the default of
/// [`Tuning::min_tile_macs`]; about 2 µs of one core at the VNNI rate): a small problem on
/// many threads runs as fewer tiles than [`TILES_PER_THREAD`] asks for, so that waking and
/// joining threads never costs more than the work they share (more threads must never make
/// a batch slower).
pub const MIN_TILE_MACS: usize = 1 << 19;

/// Most rows of a GEMM tile: the tile's output (`rows × 32` columns per panel) stays in
/// L1/L2 while the panel loop runs; longer tiles gain little reuse.
pub const GEMM_MAX_ROWS: usize = 128;

/// Most rows of a convolution tile. Its output is levels (a quarter of the accumulators'
/// bytes) written straight after the GEMM, so it affords twice the GEMM's rows.
pub const CONV_MAX_ROWS: usize = 256;

/// A convolution's row tiles are not split below this many rows to make more tiles; short
/// outputs split the weight panels instead (each thread then streams its share of the
/// weights, and every column tile reads all the rows), unless the weights are light
/// ([`row_split_max_weight_bytes`]).
pub const CONV_MIN_SPLIT_ROWS: usize = 32;

/// Weight bytes up to which a convolution's rows are split down to one register tile
/// (8 rows) before its weight panels are: half the L2 (512 KiB of a 1 MiB one). Every tile
/// then reads all the weights, which stay in L2, and each thread keeps the rows that the
/// previous layer's tiles left in its own cache. At batch 1 on two Zen 4 vCPUs whose caches
/// alternate between near and far, this read ResNet-18's 8×8 layers (295 KiB of 4-bit
/// weights) 4–5 % faster in the far state, while its 4×4 layers (0.6–1.2 MiB) ran up to 2×
/// slower with every thread streaming all of their weights.
pub fn row_split_max_weight_bytes() -> usize {
    l2_bytes() / 2
}

/// Output elements a task of the column tiles' final gather (staged blocks into the
/// `[pixel][channel]` output) copies at least: a copy is cheap, so tasks stay long enough to
/// be worth scheduling.
pub const GATHER_ELEMENTS: usize = 16 * 1024;

/// Output bytes from which the VNNI GEMMs (AVX-512, AVX-VNNI) store whole aligned lines
/// non-temporally: it saves the read-for-ownership of lines that are fully overwritten, but
/// an output that would have stayed in cache for its reader is then read back from memory.
pub const STREAM_OUTPUT_BYTES: usize = 4 << 20;

/// Weight bytes of an AVX-512 tile up to which it runs rows-outer (each 8-row activation
/// block meets every panel of the tile while it is in L1, the panels being re-read from L2):
/// 3/16 of the L2 (192 KiB of a 1 MiB one). Heavier tiles run panels-outer so that the
/// panel, not the rows, stays in L2.
pub fn rows_outer_max_weight_bytes() -> usize {
    l2_bytes() * 3 / 16
}

/// Activation bytes (the whole left operand) from which the AVX-VNNI GEMM prefetches each
/// next register block's rows while it runs the current one: the L2. Smaller operands are
/// in cache already, where the prefetches only take load slots from the kernel's
/// broadcasts. Set on the Zen 4 (its AVX-VNNI kernels in their EVEX encoding, 2 threads,
/// GMAC/s): prefetching always took `32768 × 64 × 576` from 252 to 346 but
/// `16 × 512 × 4608` from 429 to 402 and `1024 × 64 × 576` from 436 to 404 (`kernel-report`,
/// medians of 5 runs); from the L2 on, the best of 10 alternated runs: 257 → 353 and
/// `8192 × 128 × 1152` 337 → 399, the operands below it unchanged (426–449).
pub fn prefetch_rows_min_bytes() -> usize {
    l2_bytes()
}

/// What one more run of rows costs a convolution's tile beside its rows, in rows of the
/// register tile, when the tile groups its rows by their live taps (`conv::border`): each
/// run reads every panel's weights again. Set on the Zen 4 from ResNet-18's layer times
/// (one thread, µs for 0 / 1 / 2 / 3): the 4×4 layers at batch 1 194 / 154 / 165 / 166 (0
/// splits 16 rows into runs of one or two rows; 2 and 3 keep them whole, as without
/// borders: 168), at batch 4 518 / 503 / 511 / 566; the 8×8 layers 153 / 156 / 152 / 153
/// and 608 / 611 / 616 / 616.
pub const BORDER_RUN_ROWS: usize = 1;

/// How much more register work (a share of `1 / INPUT_GATHER_SLACK`) a tile's rows sorted
/// by their exact live taps may cost than the cheapest sort and still be gathered from the
/// unpadded input rather than from a padded copy of its rows: the copy costs about a pass
/// over the tile's input (1–2 % of ResNet-18 at batch 64 on the Zen 4). A 32×32 layer's
/// edge pixels in their own short runs cost about as much as their zero taps; a 4×4 or 8×8
/// layer's at batch 1 cost far more (each run re-reads the weights), and copy little.
pub const INPUT_GATHER_SLACK: usize = 16;

/// Rows from which an AVX-512 tile decodes 3-bit codebook panels once into int8 scratch
/// rather than in registers per row block: the in-register bit-plane merge costs about a
/// fifth of the multiplier's throughput, the scratch decode a pass over the panel.
pub const CB3_SCRATCH_MIN_ROWS: usize = 32;

/// Rows from which an AVX-512 tile of 4-bit codebook weights multiplies the layer's int8
/// copy (decoded once per layer and kept: twice the bytes) instead of looking each weight
/// vector up in registers, on CPUs where the lookup competes with the multiply-adds for a
/// port ([`lookup_shares_multiplier`]; the default of [`Tuning::cb4_int8_min_rows`]): two
/// lookups per 16 `vpdpbusd` cost such a core about a ninth of its multiply rate. Shorter
/// tiles read each weight for fewer rows, and the copy doubles what they read: forced on for
/// every tile of 32 rows or more, the Zen 4 ran ResNet-18 batch 64 4–9 % slower (its 4×4 and
/// 8×8 layers' weights read twice over); from 64 rows 2 % slower; from 128 rows as fast as
/// without it.
pub const CB4_INT8_MIN_ROWS: usize = 128;

/// Whether this CPU's codebook lookups (`vpermb`, `vpshufb` on `zmm`) issue on a port its
/// 512-bit `vpdpbusd` needs: Intel cores (both on port 5, beside port 0), read from the
/// CPUID vendor once. AMD Zen 4 and 5 run the lookups on pipes the multiply-adds leave free
/// (measured on Zen 4: the 4-bit GEMM within 1–2 % of int8 with the lookups in registers).
pub fn lookup_shares_multiplier() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static INTEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *INTEL.get_or_init(|| {
            raw_cpuid::CpuId::new()
                .get_vendor_info()
                .is_some_and(|v| v.as_str() == "GenuineIntel")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Timed rounds of each path in a [`PathProbe`](crate::probe::PathProbe) (after one that
/// warms up and compares): the best of several, so that one preempted run does not decide.
pub const PROBE_ROUNDS: usize = 5;

/// How much faster than the path it would replace a probed path must run to be chosen
/// ([`PathProbe::chosen`](crate::probe::PathProbe::chosen)): a few milliseconds of timing
/// do not tell apart paths within a few per cent, and the one it replaces is the path
/// proven on more machines.
pub const PROBE_MIN_SPEEDUP: f64 = 1.1;

/// Code bits up to which the AVX-512 requantization finds a code by binary search (a blend
/// tree that doubles per bit) rather than by counting every threshold.
pub const SEARCH_MAX_BITS: u8 = 4;

/// Elements per parallel task of the residual join (rows are grouped to about this many):
/// enough work per task to amortise scheduling, enough tasks to balance the threads.
pub const RESIDUAL_TASK_ELEMENTS: usize = 16 * 1024;

/// Output elements (pixels × channels) per parallel task of the depthwise convolution (whole
/// output rows are grouped to about this many): enough multiply-adds per task to amortise
/// scheduling, and a batch-1 layer still splits into tasks for every thread.
pub const DEPTHWISE_TASK_OUTPUTS: usize = 8 * 1024;

/// Output elements per parallel task of the batch max-pool (whole output rows are grouped to
/// about this many): a batch-1 layer still splits over two threads.
pub const POOL_TASK_ELEMENTS: usize = 8 * 1024;

/// 4-byte groups of the reduction up to which an AVX-512 GEMM keeps each weight panel in
/// registers (two vectors per group beside a 4-row tile's accumulators) and streams the
/// rows past it: an RGB layer (`k = 27`, gathered as 3 × 12 bytes with the channels padded
/// to 4: 9 groups) would otherwise spend as long on each 8-row call's setup and stores as on
/// its multiply-adds.
pub const SMALL_K_GROUPS: usize = 9;

/// Bytes of input a chunk of the direct `f32` convolution (`float_conv`) reads, about
/// (`rows · c_in · 4`, 256 to 4 096 output pixels): the chunk's input pixels and its table of
/// tap addresses stay in a 1 MiB L2 while every filter block and tap block passes over
/// them. The forward pass and the input gradient sum each output whole within its chunk,
/// but the weight gradient sums a chunk's pixels in registers and then adds them onto the
/// gradient, so this number fixes the order of its sums: a constant, not a share of this
/// machine's cache, so that training gives the same floats on every CPU.
pub const FLOAT_CHUNK_BYTES: usize = 512 << 10;

/// Filter bytes of one tap block of the direct `f32` convolution (`taps · c_in · 64 · 4`, at
/// least one tap): the block stays in L2 while a chunk's register tiles stream past it. A
/// layer with more taps sums in several blocks, each added onto the output, so this number
/// fixes the order of the forward pass's sums (results are deterministic for it): a
/// constant, not a share of this machine's cache, so that training gives the same floats on
/// every CPU.
pub const FLOAT_PANEL_BYTES: usize = 256 << 10;

/// How far ahead (in 4-byte reduction groups) the AVX-512 GEMM's first register tile of a
/// panel prefetches the panel's weights: 32 groups are 2 KiB of 4-bit weights (4 KiB of
/// int8), ~500 cycles of that tile's multiply-adds. A batch-1 layer's weights come from
/// L3 or memory (the model's do not fit in L2), where the hardware prefetcher alone left
/// the `m = 16, n = 512, k = 4608` 4-bit GEMM at 124–128 GMAC/s on one Zen 4 thread
/// (16–32 ahead: 157–178).
pub const WEIGHT_PREFETCH_GROUPS: usize = 32;
