//! The direct `f32` convolution against its definition: forward, input gradient (every stride) and
//! weight gradient, on random geometries (dilated, strided, padded, short output blocks),
//! with results independent of how the pixels are split between calls.

use nuq_kernels::float_conv::{self, ConvGeometry, Filter, GradFilter};
use nuq_kernels::KernelError;
use proptest::prelude::*;

/// Deterministic values in `[-1, 1)`.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Every term `(output index, input index, weight index)` of the convolution.
fn for_each_term(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = g.output().unwrap();
    let (kh, kw) = g.kernel;
    for img in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let m = (img * oh + oy) * ow + ox;
                for ky in 0..kh {
                    let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.padding.0 as isize;
                    for kx in 0..kw {
                        let ix =
                            (ox * g.stride.1 + kx * g.dilation.1) as isize - g.padding.1 as isize;
                        if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                            continue;
                        }
                        let pix = (img * g.h + iy as usize) * g.w + ix as usize;
                        for o in 0..g.c_out {
                            for c in 0..g.c_in {
                                f(
                                    m * g.c_out + o,
                                    pix * g.c_in + c,
                                    o * g.k() + (ky * kw + kx) * g.c_in + c,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `|a − b| ≤ 1e-5 · (1 + scale)` element by element, where `scale` is the sum of the
/// magnitudes of the element's terms.
fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = 1e-5 * (1.0 + s);
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{what}[{i}]: {g} against {w} (tolerance {tol})"
        );
    }
}

fn geometry() -> impl Strategy<Value = ConvGeometry> {
    (
        (1usize..3, 1usize..9, 1usize..9, 1usize..20, 1usize..6),
        (1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 1usize..3, 1usize..3),
    )
        .prop_map(
            |((n, h, w, c_in, co), (kh, kw, sh, sw), (ph, pw, dh, dw))| ConvGeometry {
                n,
                h,
                w,
                c_in,
                c_out: 16 * co,
                kernel: (kh, kw),
                stride: (sh, sw),
                padding: (ph, pw),
                dilation: (dh, dw),
            },
        )
        .prop_filter("the window fits", |g| g.output().is_some())
}

fn check_forward(g: &ConvGeometry, seed: u64) {
    let (oh, ow) = g.output().unwrap();
    let x = values(g.n * g.h * g.w * g.c_in, seed);
    let w = values(g.c_out * g.k(), seed + 1);
    let rows = g.n * oh * ow;
    let (mut want, mut scale) = (vec![0.0f64; rows * g.c_out], vec![0.0f64; rows * g.c_out]);
    for_each_term(g, |o, i, j| {
        want[o] += x[i] as f64 * w[j] as f64;
        scale[o] += (x[i] as f64 * w[j] as f64).abs();
    });
    let filter = Filter::forward(g, &w).unwrap();
    let mut y = vec![f32::NAN; rows * g.c_out];
    float_conv::forward(g, &x, &filter, 0, &mut y).unwrap();
    assert_close("forward", &y, &want, &scale);
    // Any split of the pixels gives the same bits.
    let cut = rows / 3;
    let mut parts = vec![f32::NAN; rows * g.c_out];
    let (a, b) = parts.split_at_mut(cut * g.c_out);
    float_conv::forward(g, &x, &filter, 0, a).unwrap();
    float_conv::forward(g, &x, &filter, cut, b).unwrap();
    assert_eq!(
        parts.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

fn check_weight_grad(g: &ConvGeometry, seed: u64) {
    let (oh, ow) = g.output().unwrap();
    let x = values(g.n * g.h * g.w * g.c_in, seed);
    let rows = g.n * oh * ow;
    let dy = values(rows * g.c_out, seed + 2);
    let start = values(g.k() * g.c_out, seed + 3);
    let (mut want, mut scale) = (vec![0.0f64; g.k() * g.c_out], vec![0.0f64; g.k() * g.c_out]);
    for (i, v) in start.iter().enumerate() {
        want[i] = *v as f64;
        scale[i] = v.abs() as f64;
    }
    for_each_term(g, |o, i, j| {
        // dWᵀ[j' = (tap, c)][o] with o = output channel.
        let (oc, kj) = (o % g.c_out, j % g.k());
        let at = kj * g.c_out + oc;
        want[at] += x[i] as f64 * dy[o] as f64;
        scale[at] += (x[i] as f64 * dy[o] as f64).abs();
    });
    // Two calls over a split of the pixels accumulate onto `start`.
    let mut dwt = start.clone();
    let cut = rows / 2;
    float_conv::weight_grad(g, &x, &dy[..cut * g.c_out], 0, &mut dwt).unwrap();
    float_conv::weight_grad(g, &x, &dy[cut * g.c_out..], cut, &mut dwt).unwrap();
    assert_close("weight gradient", &dwt, &want, &scale);
}

fn check_input_grad(g: &ConvGeometry, seed: u64) {
    let (oh, ow) = g.output().unwrap();
    let w = values(g.c_out * g.k(), seed + 1);
    let dy = values(g.n * oh * ow * g.c_out, seed + 2);
    let len = g.n * g.h * g.w * g.c_in;
    let (mut want, mut scale) = (vec![0.0f64; len], vec![0.0f64; len]);
    for_each_term(g, |o, i, j| {
        want[i] += dy[o] as f64 * w[j] as f64;
        scale[i] += (dy[o] as f64 * w[j] as f64).abs();
    });
    let filter = GradFilter::new(g, &w).unwrap();
    let mut dx = vec![f32::NAN; len];
    float_conv::input_grad(g, &dy, &filter, 0, &mut dx).unwrap();
    assert_close("input gradient", &dx, &want, &scale);
    // Any split of the pixels gives the same bits.
    let cut = g.n * g.h * g.w / 3;
    let mut parts = vec![f32::NAN; len];
    let (a, b) = parts.split_at_mut(cut * g.c_in);
    float_conv::input_grad(g, &dy, &filter, 0, a).unwrap();
    float_conv::input_grad(g, &dy, &filter, cut, b).unwrap();
    assert_eq!(
        parts.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn forward_is_the_convolution(g in geometry(), seed in any::<u64>()) {
        if float_conv::available() {
            check_forward(&g, seed);
        }
    }

    #[test]
    fn weight_grad_is_the_convolutions_weight_gradient(g in geometry(), seed in any::<u64>()) {
        if float_conv::available() {
            check_weight_grad(&g, seed);
        }
    }

    #[test]
    fn input_grad_is_the_convolutions_input_gradient(
        g in geometry(),
        ci in 1usize..3,
        seed in any::<u64>(),
    ) {
        // Input channels a multiple of 16 (the gradient's lanes); strides 1 and 2, with
        // pixels that no tap reaches when the stride exceeds the dilated kernel.
        let g = ConvGeometry { c_in: 16 * ci, ..g };
        if float_conv::supports_input_grad(&g) {
            check_input_grad(&g, seed);
        }
    }
}

/// Layers large enough for several chunks of pixels and several tap blocks (a 3×3 filter of
/// 300 input channels is 675 KiB per block of 64 outputs).
#[test]
fn chunks_and_tap_blocks_sum_every_term() {
    if !float_conv::available() {
        return;
    }
    let wide = ConvGeometry::square(1, 6, 300, 64, 3, 1, 1);
    check_forward(&wide, 7);
    check_weight_grad(&wide, 8);
    let long = ConvGeometry::square(3, 24, 16, 32, 3, 1, 1); // 1 728 pixels
    check_forward(&long, 9);
    check_weight_grad(&long, 10);
    check_input_grad(&ConvGeometry { c_in: 32, ..long }, 11);
    let strided = ConvGeometry::square(2, 20, 48, 128, 3, 2, 1);
    check_forward(&strided, 12);
    check_weight_grad(&strided, 13);
    check_input_grad(&strided, 14);
    // A 1×1 stride-2 projection: three of four phases get zeros.
    check_input_grad(&ConvGeometry::square(2, 9, 32, 64, 1, 2, 0), 15);
    // 300 output channels per pixel: several tap blocks in the gradient's phases.
    check_input_grad(&ConvGeometry::square(1, 7, 16, 320, 3, 2, 1), 16);
}

#[test]
fn refusals_are_errors() {
    let g = ConvGeometry::square(1, 4, 3, 10, 3, 1, 1);
    assert!(!float_conv::supports(&g));
    assert!(matches!(
        Filter::forward(&g, &[0.0; 270]),
        Err(KernelError::Unsupported {
            what: "output channels",
            ..
        })
    ));
    let g = ConvGeometry::square(1, 4, 3, 16, 3, 1, 1);
    assert!(matches!(
        Filter::forward(&g, &[0.0; 10]),
        Err(KernelError::ShapeMismatch { .. })
    ));
    // The input gradient's lanes are the 3 input channels.
    assert!(!float_conv::supports_input_grad(&g));
    assert!(matches!(
        GradFilter::new(&g, &[0.0; 16 * 27]),
        Err(KernelError::Unsupported { .. })
    ));
    let too_big = ConvGeometry::square(1, 2, 3, 16, 5, 1, 0);
    assert_eq!(too_big.output(), None);
    if float_conv::available() {
        let filter = Filter::forward(&g, &[0.0; 16 * 27]).unwrap();
        let x = [0.0f32; 48];
        // 16 pixels of output; asking for pixel 16 on is out of range.
        let mut y = vec![0.0f32; 16];
        assert!(matches!(
            float_conv::forward(&g, &x, &filter, 16, &mut y),
            Err(KernelError::SliceTooShort { .. })
        ));
        assert!(float_conv::forward(&g, &x[..47], &filter, 0, &mut y).is_err());
        assert!(float_conv::forward(&g, &x, &filter, 0, &mut y[..15]).is_err());
        let mut dwt = vec![0.0f32; 27 * 16];
        assert!(float_conv::weight_grad(&g, &x, &y, 0, &mut dwt[1..]).is_err());
        // A gradient filter packed for another geometry.
        let g16 = ConvGeometry::square(1, 4, 16, 16, 3, 1, 1);
        let other = ConvGeometry::square(1, 4, 16, 32, 3, 1, 1);
        let filter = GradFilter::new(&other, &[0.0; 32 * 144]).unwrap();
        let dy = [0.0f32; 256];
        let mut dx = [0.0f32; 256];
        assert!(matches!(
            float_conv::input_grad(&g16, &dy, &filter, 0, &mut dx),
            Err(KernelError::ShapeMismatch {
                what: "filter geometry: output channels",
                expected: 16,
                found: 32
            })
        ));
    }
}
