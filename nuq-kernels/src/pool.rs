//! Integer pooling over NHWC tensors.
//!
//! Both pools work on whole channel rows (`[C]` slices), which the compiler vectorises on
//! every target; they are memory-bound, so one implementation serves every path.
//!
//! * [`max_pool_u8`]: window maximum over one image ([`Window`], padded positions never win:
//!   the result is always one of the input levels); [`max_pool_u8_batch`] over a batch,
//!   output rows spread over the threads.
//! * [`global_avg_pool_u8`]: the mean over `H·W` rounded to nearest with **ties up**,
//!   exactly in integers: `q = (Σ + ⌊HW/2⌋) / HW` (what the integer model defines).

use crate::error::check_len;
use crate::window::Window;
use crate::KernelError;
use rayon::prelude::*;

/// Max-pool of one image `input` (`[H][W][C]`) into `out` (`[OH][OW][C]`).
///
/// # Errors
/// [`KernelError::Unsupported`] for a bad geometry (a dilation other than 1 included),
/// [`KernelError::SliceTooShort`] for
/// short slices.
pub fn max_pool_u8(g: &Window, input: &[u8], out: &mut [u8]) -> Result<(), KernelError> {
    check_pool_geometry(g)?;
    let (oh, ow, c) = (g.out_height(), g.out_width(), g.channels);
    check_len("max-pool input", g.height * g.width * c, input.len())?;
    check_len("max-pool output", oh * ow * c, out.len())?;
    max_pool_rows(g, input, 0..oh, out);
    Ok(())
}

/// Max-pool of `images` images (`[N][H][W][C]`) into `out` (`[N][OH][OW][C]`), output rows
/// spread over the current rayon pool in blocks of about
/// [`POOL_TASK_ELEMENTS`](crate::archparam::POOL_TASK_ELEMENTS): a batch of one image is
/// pooled by every thread, each over the rows the previous layer's row tiles left in its
/// own cache.
///
/// # Errors
/// As [`max_pool_u8`].
pub fn max_pool_u8_batch(
    g: &Window,
    input: &[u8],
    images: usize,
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_pool_geometry(g)?;
    let (oh, ow, c) = (g.out_height(), g.out_width(), g.channels);
    let in_len = g.height * g.width * c;
    let row = ow * c;
    check_len("max-pool input", images * in_len, input.len())?;
    check_len("max-pool output", images * oh * row, out.len())?;
    if images == 0 || row == 0 {
        return Ok(());
    }
    let per_task = (crate::archparam::POOL_TASK_ELEMENTS / row).max(1);
    out[..images * oh * row]
        .par_chunks_mut(per_task * row)
        .enumerate()
        .for_each(|(t, block)| {
            // Rows `t · per_task ..` counted across the batch, image by image.
            let (mut r, mut at) = (t * per_task, 0);
            while at < block.len() {
                let (b, oy) = (r / oh, r % oh);
                let take = (oh - oy).min((block.len() - at) / row);
                let image = &input[b * in_len..(b + 1) * in_len];
                max_pool_rows(g, image, oy..oy + take, &mut block[at..at + take * row]);
                r += take;
                at += take * row;
            }
        });
    Ok(())
}

/// The geometry checks of the max-pool.
fn check_pool_geometry(g: &Window) -> Result<(), KernelError> {
    g.validate("max-pool kernel")?;
    if g.dilation != 1 {
        return Err(KernelError::Unsupported {
            what: "max-pool dilation",
            value: g.dilation as i64,
            allowed: "1",
        });
    }
    // Padded positions never win; every window must still cover an input position.
    if g.padding > g.kernel / 2 {
        return Err(KernelError::Unsupported {
            what: "max-pool padding",
            value: g.padding as i64,
            allowed: "at most half the kernel",
        });
    }
    Ok(())
}

/// Output rows `rows` of one checked image into `out` (those rows only).
fn max_pool_rows(g: &Window, input: &[u8], rows: std::ops::Range<usize>, out: &mut [u8]) {
    let (ow, c) = (g.out_width(), g.channels);
    let first = rows.start;
    for oy in rows {
        for ox in 0..ow {
            let dst = &mut out[((oy - first) * ow + ox) * c..][..c];
            dst.fill(0);
            // Window rows and columns inside the input (padded positions never win; every
            // window covers at least one input position since padding <= kernel / 2).
            let (y0, x0) = (oy * g.stride, ox * g.stride);
            let rows = y0.max(g.padding)..(y0 + g.kernel).min(g.height + g.padding);
            for iy in rows.map(|y| y - g.padding) {
                let cols = x0.max(g.padding)..(x0 + g.kernel).min(g.width + g.padding);
                for ix in cols.map(|x| x - g.padding) {
                    let src = &input[(iy * g.width + ix) * c..][..c];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = (*d).max(s);
                    }
                }
            }
        }
    }
}

/// Global average pool of `u8` levels: `out[b][c] = round(mean_{hw} input[b][hw][c])`,
/// ties up.
///
/// # Errors
/// [`KernelError::Unsupported`] for a zero dimension, [`KernelError::SliceTooShort`] for
/// short slices.
pub fn global_avg_pool_u8(
    input: &[u8],
    batch: usize,
    hw: usize,
    channels: usize,
    out: &mut [u8],
) -> Result<(), KernelError> {
    gap_checks(input.len(), batch, hw, channels, out.len())?;
    let mut sums = vec![0u64; channels];
    for b in 0..batch {
        sums.fill(0);
        for px in input[b * hw * channels..(b + 1) * hw * channels].chunks_exact(channels) {
            for (s, &v) in sums.iter_mut().zip(px) {
                *s += u64::from(v);
            }
        }
        for (o, &s) in out[b * channels..(b + 1) * channels].iter_mut().zip(&sums) {
            // (Σ + ⌊hw/2⌋) / hw is the mean rounded half up for sums of non-negative values.
            *o = ((s + hw as u64 / 2) / hw as u64) as u8;
        }
    }
    Ok(())
}

fn gap_checks(
    in_len: usize,
    batch: usize,
    hw: usize,
    channels: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    for (what, v) in [("batch", batch), ("hw", hw), ("channels", channels)] {
        if v == 0 {
            return Err(KernelError::Unsupported {
                what,
                value: 0,
                allowed: "at least 1",
            });
        }
    }
    check_len("global-average-pool input", batch * hw * channels, in_len)?;
    check_len("global-average-pool output", batch * channels, out_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_rounds_ties_up() {
        let mut out = [0u8; 2];
        global_avg_pool_u8(&[1, 0, 2, 255], 1, 2, 2, &mut out).unwrap();
        assert_eq!(out, [2, 128]);
        global_avg_pool_u8(&[1, 2, 2], 1, 3, 1, &mut out[..1]).unwrap();
        assert_eq!(out[0], 2); // 5/3 rounds to 2
        global_avg_pool_u8(&[1, 1, 2], 1, 3, 1, &mut out[..1]).unwrap();
        assert_eq!(out[0], 1); // 4/3 rounds to 1
    }
}
