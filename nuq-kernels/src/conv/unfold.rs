//! The im2col plan: where a convolution reads from, and the unfolding of a range of output
//! pixels into a caller's buffer (NHWC, taps in `(ky, kx, c)` order — the weights' order —
//! with a per-channel padding byte); tap `(ky, kx)` reads `dilation·(ky, kx)` from the
//! window's corner.

use crate::window::Window;

impl Window {
    /// Whether the input already is the im2col matrix (1×1, stride 1, no padding).
    pub(crate) fn direct(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Row stride of the unfolded matrix: `k` rounded up to whole 4-byte groups, so that
    /// the GEMM reads every group whole (the bytes past `k` are zero).
    pub(crate) fn unfold_stride(&self) -> usize {
        self.k().next_multiple_of(4)
    }

    /// Writes the rows of output pixels `first .. first + rows` (pixels counted across the
    /// batch) of the im2col matrix of `x` into `dst` (row stride
    /// [`unfold_stride`](Self::unfold_stride), zeros past `k`); taps outside the image read
    /// `pad` (one byte per channel).
    pub(crate) fn unfold(&self, x: &[u8], pad: &[u8], first: usize, rows: usize, dst: &mut [u8]) {
        let (c, k, kernel) = (self.channels, self.k(), self.kernel);
        let ld = self.unfold_stride();
        let (oh, ow) = (self.out_height(), self.out_width());
        let per_image = oh * ow;
        let img_len = self.height * self.width * c;
        // The first row's pixel, then stepped along: no division per row.
        let (mut b, rest) = (first / per_image, first % per_image);
        let (mut oy, mut ox) = (rest / ow, rest % ow);
        let run = kernel * c;
        for row in dst[..rows * ld].chunks_exact_mut(ld) {
            let (row, zeros) = row.split_at_mut(k);
            zeros.fill(0);
            let img = &x[b * img_len..(b + 1) * img_len];
            let x0 = (ox * self.stride) as isize - self.padding as isize;
            let d = self.dilation;
            // With adjacent (dilation-1) taps inside the image, a kernel row is one
            // contiguous run.
            let inside_x = d == 1 && x0 >= 0 && x0 as usize + kernel <= self.width;
            for ky in 0..kernel {
                let seg = &mut row[ky * run..(ky + 1) * run];
                let iy = (oy * self.stride + ky * d) as isize - self.padding as isize;
                if iy < 0 || iy as usize >= self.height {
                    for tap in seg.chunks_exact_mut(c) {
                        tap.copy_from_slice(pad);
                    }
                    continue;
                }
                let line = &img[iy as usize * self.width * c..(iy as usize + 1) * self.width * c];
                if inside_x {
                    let s = x0 as usize * c;
                    copy_run(seg, &line[s..s + run]);
                    continue;
                }
                for (kx, tap) in seg.chunks_exact_mut(c).enumerate() {
                    let ix = x0 + (kx * d) as isize;
                    if ix < 0 || ix as usize >= self.width {
                        tap.copy_from_slice(pad);
                    } else {
                        let s = ix as usize * c;
                        tap.copy_from_slice(&line[s..s + c]);
                    }
                }
            }
            ox += 1;
            if ox == ow {
                ox = 0;
                oy += 1;
                if oy == oh {
                    oy = 0;
                    b += 1;
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, with the short runs of an image's first convolution (a 3×3
/// or 7×7 kernel row over 1 or 3 channels) copied by fixed-size moves the compiler inlines
/// instead of a `memmove` call per kernel row.
#[inline]
fn copy_run(dst: &mut [u8], src: &[u8]) {
    fn fixed<const N: usize>(dst: &mut [u8], src: &[u8]) {
        let d: &mut [u8; N] = dst.try_into().expect("a run of N bytes");
        d.copy_from_slice(&src[..N]);
    }
    match dst.len() {
        3 => fixed::<3>(dst, src),
        7 => fixed::<7>(dst, src),
        9 => fixed::<9>(dst, src),
        21 => fixed::<21>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}
