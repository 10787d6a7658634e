//! The drivers of the register tiles (x86-64): chunks of output pixels, their tables of tap
//! addresses, filter blocks and tap blocks, and the input gradient's phases.

use super::avx512;
use super::{ConvGeometry, Filter, GradFilter, BLOCK, TILE_ROWS};
use crate::archparam::{FLOAT_CHUNK_BYTES, FLOAT_PANEL_BYTES};

/// Output pixels per chunk: the chunk's input (about `rows · c_in` values) stays in L2 while
/// every filter block and tap block passes over it.
fn chunk_rows(c_in: usize) -> usize {
    (FLOAT_CHUNK_BYTES / (4 * c_in)).clamp(256, 4096)
}

/// The address table of output pixels `row0 .. row0 + rows`: entry `t · stride + r` points
/// to the `c_in` channels that tap `t` of pixel `row0 + r` reads, or to `zeros`; the
/// `TILE_ROWS` entries past each tap's last pixel point to `zeros` (a short tile reads them).
fn tap_table(
    g: &ConvGeometry,
    (oh, ow): (usize, usize),
    x: &[f32],
    zeros: &[f32],
    row0: usize,
    rows: usize,
    table: &mut Vec<*const f32>,
) -> usize {
    let stride = rows + TILE_ROWS;
    let (kh, kw) = g.kernel;
    table.clear();
    table.resize(kh * kw * stride, zeros.as_ptr());
    for r in 0..rows {
        let m = row0 + r;
        let (ox, rest) = (m % ow, m / ow);
        let (oy, img) = (rest % oh, rest / oh);
        let iy0 = (oy * g.stride.0) as isize - g.padding.0 as isize;
        let ix0 = (ox * g.stride.1) as isize - g.padding.1 as isize;
        for ky in 0..kh {
            let iy = iy0 + (ky * g.dilation.0) as isize;
            if iy < 0 || iy as usize >= g.h {
                continue;
            }
            for kx in 0..kw {
                let ix = ix0 + (kx * g.dilation.1) as isize;
                if ix < 0 || ix as usize >= g.w {
                    continue;
                }
                let at = ((img * g.h + iy as usize) * g.w + ix as usize) * g.c_in;
                table[(ky * kw + kx) * stride + r] = x[at..at + g.c_in].as_ptr();
            }
        }
    }
    stride
}

pub(super) fn forward(
    g: &ConvGeometry,
    out: (usize, usize),
    x: &[f32],
    filter: &Filter,
    row0: usize,
    y: &mut [f32],
) {
    let rows = y.len() / g.c_out;
    let zeros = vec![0.0f32; g.c_in];
    let taps = g.kernel.0 * g.kernel.1;
    let mut table = Vec::new();
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(g.c_in).min(rows - start);
        let stride = tap_table(g, out, x, &zeros, row0 + start, r, &mut table);
        let chunk = Chunk {
            table: &table,
            stride,
            rows: r,
            taps,
            cin: g.c_in,
        };
        chunk.run(
            filter,
            &mut y[start * g.c_out..(start + r) * g.c_out],
            |r| r * g.c_out,
        );
        start += r;
    }
}

/// The input gradient, phase by phase of each chunk of input pixels.
pub(super) fn input_grad(
    g: &ConvGeometry,
    (oh, ow): (usize, usize),
    dy: &[f32],
    filter: &GradFilter,
    row0: usize,
    dx: &mut [f32],
) {
    let rows = dx.len() / g.c_in;
    let zeros = vec![0.0f32; g.c_out];
    let (sh, sw) = g.stride;
    let mut table = Vec::new();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); sh * sw];
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(g.c_out).min(rows - start);
        for list in members.iter_mut() {
            list.clear();
        }
        for i in start..start + r {
            let m = row0 + i;
            let (ix, iy) = (m % g.w, (m / g.w) % g.h);
            members[(iy % sh) * sw + ix % sw].push(i);
        }
        for (phase, list) in filter.phases.iter().zip(&members) {
            if phase.taps.is_empty() {
                for &i in list {
                    dx[i * g.c_in..(i + 1) * g.c_in].fill(0.0);
                }
                continue;
            }
            if list.is_empty() {
                continue;
            }
            let stride = list.len() + TILE_ROWS;
            table.clear();
            table.resize(phase.taps.len() * stride, zeros.as_ptr());
            for (j, &i) in list.iter().enumerate() {
                let m = row0 + i;
                let (ix, rest) = (m % g.w, m / g.w);
                let (iy, img) = (rest % g.h, rest / g.h);
                for (t, &(ky, kx)) in phase.taps.iter().enumerate() {
                    // The phase makes both differences multiples of the stride.
                    let ny = (iy + g.padding.0) as isize - (ky * g.dilation.0) as isize;
                    let nx = (ix + g.padding.1) as isize - (kx * g.dilation.1) as isize;
                    if ny < 0 || nx < 0 {
                        continue;
                    }
                    let (oy, ox) = (ny as usize / sh, nx as usize / sw);
                    if oy < oh && ox < ow {
                        let at = ((img * oh + oy) * ow + ox) * g.c_out;
                        table[t * stride + j] = dy[at..at + g.c_out].as_ptr();
                    }
                }
            }
            let chunk = Chunk {
                table: &table,
                stride,
                rows: list.len(),
                taps: phase.taps.len(),
                cin: g.c_out,
            };
            chunk.run(&phase.filter, dx, |j| list[j] * g.c_in);
        }
        start += r;
    }
}

/// The register tiles of one chunk of output rows: its table of tap addresses (entry
/// `t · stride + r` for tap `t` of row `r`, each pointing to `cin` values; `TILE_ROWS`
/// entries past each tap's last row), and the sizes.
struct Chunk<'a> {
    table: &'a [*const f32],
    stride: usize,
    rows: usize,
    taps: usize,
    cin: usize,
}

impl Chunk<'_> {
    /// Output row `r` of the chunk (its `filter.c_out` lanes) at `y[at(r)..]`, overwritten
    /// with the sum over every tap and channel.
    fn run(&self, filter: &Filter, y: &mut [f32], at: impl Fn(usize) -> usize) {
        let (cin, k) = (self.cin, filter.k);
        assert!(
            self.table.len() >= self.taps * self.stride
                && self.stride >= self.rows + TILE_ROWS
                && k == self.taps * cin,
            "float_conv: a chunk's table or filter does not match its sizes"
        );
        let tb = (FLOAT_PANEL_BYTES / (4 * BLOCK * cin)).clamp(1, self.taps.max(1));
        for b in 0..filter.c_out.div_ceil(BLOCK) {
            let lanes = BLOCK.min(filter.c_out - b * BLOCK);
            let block = &filter.data[b * k * BLOCK..(b + 1) * k * BLOCK];
            let mut t0 = 0;
            while t0 < self.taps {
                let t1 = (t0 + tb).min(self.taps);
                let mut m = 0;
                while m < self.rows {
                    let np = TILE_ROWS.min(self.rows - m);
                    let base = y.as_mut_ptr();
                    // Rows past `np` repeat the last one: never stored.
                    let outs: [*mut f32; TILE_ROWS] = std::array::from_fn(|p| {
                        let o = at(m + p.min(np - 1)) + b * BLOCK;
                        assert!(o + lanes <= y.len(), "float_conv: output row out of range");
                        // SAFETY: `o + lanes ≤ y.len()` (asserted).
                        unsafe { base.add(o) }
                    });
                    let tab = self.table[t0 * self.stride + m..].as_ptr();
                    let wq = block[t0 * cin * BLOCK..].as_ptr();
                    // SAFETY: AVX-512F checked by `available()` before any chunk runs; entries
                    // `t · stride + m + p` for `t < t1 − t0 ≤ taps`, `p < 6` lie in the
                    // table (`m + p < rows + 6 ≤ stride`, asserted), each pointing to `cin`
                    // values; the block holds `(t1 − t0) · cin` rows from `t0 · cin` on
                    // (`k = taps · cin`, asserted); `outs` are `lanes` writable values of
                    // `y` (asserted), which no input aliases.
                    unsafe {
                        let (n, s, a) = (t1 - t0, self.stride, t0 > 0);
                        match lanes / 16 {
                            1 => avx512::forward_tile::<1>(tab, s, n, cin, wq, &outs, np, a),
                            2 => avx512::forward_tile::<2>(tab, s, n, cin, wq, &outs, np, a),
                            3 => avx512::forward_tile::<3>(tab, s, n, cin, wq, &outs, np, a),
                            _ => avx512::forward_tile::<4>(tab, s, n, cin, wq, &outs, np, a),
                        }
                    }
                    m += np;
                }
                t0 = t1;
            }
        }
    }
}

pub(super) fn weight_grad(
    g: &ConvGeometry,
    out: (usize, usize),
    x: &[f32],
    dy: &[f32],
    row0: usize,
    dwt: &mut [f32],
) {
    let rows = dy.len() / g.c_out;
    let zeros = vec![0.0f32; g.c_in];
    let taps = g.kernel.0 * g.kernel.1;
    let (cin, cout) = (g.c_in, g.c_out);
    let mut table = Vec::new();
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(cin).min(rows - start);
        let stride = tap_table(g, out, x, &zeros, row0 + start, r, &mut table);
        let dy_chunk = &dy[start * cout..(start + r) * cout];
        for b in 0..cout.div_ceil(BLOCK) {
            let lanes = BLOCK.min(cout - b * BLOCK);
            for t in 0..taps {
                let mut c = 0;
                while c < cin {
                    let q = TILE_ROWS.min(cin - c);
                    let base = dwt.as_mut_ptr();
                    let rows_of = |p: usize| {
                        // SAFETY: row `t · c_in + c + min(p, q − 1)` of `dwt` (`k` rows of
                        // `c_out`), lane `b · 64 + lanes ≤ c_out`.
                        unsafe { base.add((t * cin + c + p.min(q - 1)) * cout + b * BLOCK) }
                    };
                    let outs: [*mut f32; TILE_ROWS] = std::array::from_fn(rows_of);
                    let tab = table[t * stride..t * stride + r].as_ptr();
                    let dyb = dy_chunk[b * BLOCK..].as_ptr();
                    // SAFETY: AVX-512F checked by `available()`; the `r` table entries of tap
                    // `t` each point to `c_in ≥ c + q` values (read from offset `c`, below);
                    // `dy` rows `< r` hold `lanes` values from `b · 64`; `outs` are
                    // distinct rows of `dwt`, which no input aliases.
                    unsafe { weight_grad_dispatch(q, lanes / 16, tab, r, c, dyb, cout, &outs) };
                    c += q;
                }
            }
        }
        start += r;
    }
}

/// Runs the weight-gradient tile of `q` reduction indices and `nv` vectors, reading each
/// pixel's channels from offset `c`.
///
/// # Safety
/// As [`avx512::weight_grad_tile`], with every table entry pointing to at least `c + q`
/// values.
#[allow(clippy::too_many_arguments)]
unsafe fn weight_grad_dispatch(
    q: usize,
    nv: usize,
    tab: *const *const f32,
    count: usize,
    c: usize,
    dy: *const f32,
    dy_stride: usize,
    outs: &[*mut f32; TILE_ROWS],
) {
    macro_rules! tile {
        ($q:literal) => {{
            let o: &[*mut f32; $q] = outs[..$q].try_into().expect("q ≤ P rows");
            // SAFETY: the caller's contract.
            unsafe {
                match nv {
                    1 => avx512::weight_grad_tile::<$q, 1>(tab, count, c, dy, dy_stride, o),
                    2 => avx512::weight_grad_tile::<$q, 2>(tab, count, c, dy, dy_stride, o),
                    3 => avx512::weight_grad_tile::<$q, 3>(tab, count, c, dy, dy_stride, o),
                    _ => avx512::weight_grad_tile::<$q, 4>(tab, count, c, dy, dy_stride, o),
                }
            }
        }};
    }
    match q {
        1 => tile!(1),
        2 => tile!(2),
        3 => tile!(3),
        4 => tile!(4),
        5 => tile!(5),
        _ => tile!(6),
    }
}
