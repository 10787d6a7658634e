//! Integer pooling over NHWC tensors.
//!
//! Both pools work on whole channel rows (`[C]` slices), which the compiler vectorises on
//! every target; they are memory-bound, so one implementation serves every path.
//!
//! * [`max_pool_u8`]: window maximum; window positions in the padding are skipped (never
//!   treated as 0), so the result is always one of the input levels.
//! * [`global_avg_pool_u8`]: the mean over `H·W` rounded to nearest with **ties up**,
//!   exactly in integers: `q = (Σ + ⌊HW/2⌋) / HW` (what the integer model defines).

use crate::KernelError;

/// Shape of a max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Images.
    pub batch: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// Square window side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side (`< kernel`).
    pub pad: usize,
}

impl PoolGeometry {
    /// Output height.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.pad - self.kernel) / self.stride + 1
    }

    fn validate(&self) -> Result<(), KernelError> {
        for (what, v) in [
            ("batch", self.batch),
            ("height", self.height),
            ("width", self.width),
            ("channels", self.channels),
            ("kernel", self.kernel),
            ("stride", self.stride),
        ] {
            if v == 0 {
                return Err(KernelError::Unsupported {
                    what,
                    value: 0,
                    allowed: "at least 1",
                });
            }
        }
        if self.pad >= self.kernel
            || self.height + 2 * self.pad < self.kernel
            || self.width + 2 * self.pad < self.kernel
        {
            return Err(KernelError::Unsupported {
                what: "pad",
                value: self.pad as i64,
                allowed: "less than the kernel, with the kernel inside the padded input",
            });
        }
        Ok(())
    }
}

fn check_len(what: &'static str, found: usize, expected: usize) -> Result<(), KernelError> {
    if found < expected {
        Err(KernelError::SliceTooShort {
            what,
            expected,
            found,
        })
    } else {
        Ok(())
    }
}

/// Max-pool of `input` (`[batch][H][W][C]`) into `out` (`[batch][OH][OW][C]`).
///
/// # Errors
/// [`KernelError::Unsupported`] for a bad geometry, [`KernelError::SliceTooShort`] for
/// short slices.
pub fn max_pool_u8(g: &PoolGeometry, input: &[u8], out: &mut [u8]) -> Result<(), KernelError> {
    g.validate()?;
    let (oh, ow, c) = (g.out_height(), g.out_width(), g.channels);
    check_len(
        "max-pool input",
        input.len(),
        g.batch * g.height * g.width * c,
    )?;
    check_len("max-pool output", out.len(), g.batch * oh * ow * c)?;
    for b in 0..g.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                let dst = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                dst.fill(0);
                for ky in 0..g.kernel {
                    let Some(iy) = (oy * g.stride + ky)
                        .checked_sub(g.pad)
                        .filter(|&y| y < g.height)
                    else {
                        continue;
                    };
                    for kx in 0..g.kernel {
                        let Some(ix) = (ox * g.stride + kx)
                            .checked_sub(g.pad)
                            .filter(|&x| x < g.width)
                        else {
                            continue;
                        };
                        let src = &input[((b * g.height + iy) * g.width + ix) * c..][..c];
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d = (*d).max(s);
                        }
                    }
                }
            }
        }
    }
    Ok(())
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
    check_len("global-average-pool input", in_len, batch * hw * channels)?;
    check_len("global-average-pool output", out_len, batch * channels)
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

    #[test]
    fn max_pool_skips_padding() {
        let g = PoolGeometry {
            batch: 1,
            height: 2,
            width: 2,
            channels: 1,
            kernel: 3,
            stride: 2,
            pad: 1,
        };
        let mut out = [9u8; 1];
        max_pool_u8(&g, &[3, 1, 4, 2], &mut out).unwrap();
        assert_eq!(out, [4]);
        let g2 = PoolGeometry {
            kernel: 2,
            pad: 2,
            ..g
        };
        assert!(max_pool_u8(&g2, &[0; 4], &mut out).is_err());
    }
}
