//! Convolution, requantization and residual add: every path against the scalar reference
//! (and convolution against a direct nested-loop definition), bit for bit.

use nuq_kernels::conv::{Conv2d, ConvGeometry};
use nuq_kernels::fixed_point::{
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul, FixedPointMultiplier,
    Requantizer,
};
use nuq_kernels::residual::residual_add;
use nuq_kernels::threshold::Thresholds;
use nuq_kernels::{CodebookScope, CodebookWeights, KernelPath, PackedWeights};
use proptest::prelude::*;

fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 17
    }
}

/// Direct definition of the NHWC convolution with OHWI weights.
fn direct_conv(g: &ConvGeometry, x: &[i32], w: &[i32], pad: i32) -> Vec<i32> {
    let (oh, ow) = (g.out_height(), g.out_width());
    let mut out = vec![0; g.output_len()];
    for b in 0..g.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..g.out_channels {
                    let mut s = 0;
                    for ky in 0..g.kernel {
                        for kx in 0..g.kernel {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                            for ci in 0..g.in_channels {
                                let v = if iy < 0
                                    || ix < 0
                                    || iy >= g.height as isize
                                    || ix >= g.width as isize
                                {
                                    pad
                                } else {
                                    x[((b * g.height + iy as usize) * g.width + ix as usize)
                                        * g.in_channels
                                        + ci]
                                };
                                s += v * w
                                    [((co * g.kernel + ky) * g.kernel + kx) * g.in_channels + ci];
                            }
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * g.out_channels + co] = s;
                }
            }
        }
    }
    out
}

fn conv_geometry() -> impl Strategy<Value = ConvGeometry> {
    (
        1usize..3,
        1usize..9,
        1usize..9,
        prop::sample::select(vec![1usize, 3, 5, 16, 17]),
        prop::sample::select(vec![1usize, 7, 32, 33]),
        prop::sample::select(vec![
            (3usize, 1usize, 1usize),
            (3, 2, 1),
            (1, 1, 0),
            (1, 2, 0),
        ]),
    )
        .prop_map(
            |(batch, height, width, cin, cout, (kernel, stride, pad))| ConvGeometry {
                batch,
                height,
                width,
                in_channels: cin,
                out_channels: cout,
                kernel,
                stride,
                pad,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn conv_matches_direct_definition(g in conv_geometry(), pad_value: u8, seed: u64) {
        let mut rng = lcg(seed);
        let x: Vec<u8> = (0..g.input_len()).map(|_| rng() as u8).collect();
        let w: Vec<i8> = (0..g.out_channels * g.k()).map(|_| rng() as u8 as i8).collect();
        let want = direct_conv(
            &g,
            &x.iter().map(|&v| i32::from(v)).collect::<Vec<_>>(),
            &w.iter().map(|&v| i32::from(v)).collect::<Vec<_>>(),
            i32::from(pad_value),
        );
        let pw = PackedWeights::from_rows(&w, g.out_channels, g.k()).unwrap();
        let mut conv = Conv2d::new(g).unwrap();
        for path in KernelPath::available() {
            let mut out = vec![0; g.output_len()];
            conv.forward_u8(path, &x, pad_value, &pw, &mut out).unwrap();
            prop_assert_eq!(&out, &want, "u8 path {}", path);
        }
        // Signed activations, padding reads 0.
        let xs: Vec<i8> = x.iter().map(|&v| v as i8).collect();
        let want_s = direct_conv(
            &g,
            &xs.iter().map(|&v| i32::from(v)).collect::<Vec<_>>(),
            &w.iter().map(|&v| i32::from(v)).collect::<Vec<_>>(),
            0,
        );
        for path in KernelPath::available() {
            let mut out = vec![0; g.output_len()];
            conv.forward_i8(path, &xs, &pw, &mut out).unwrap();
            prop_assert_eq!(&out, &want_s, "i8 path {}", path);
        }
        // 4-bit codebook weights.
        let book: Vec<i8> = (0..16).map(|_| rng() as u8 as i8).collect();
        let idx: Vec<u8> = (0..g.out_channels * g.k()).map(|_| (rng() % 16) as u8).collect();
        let cw = CodebookWeights::pack(&idx, g.out_channels, g.k(), 4, &book, CodebookScope::PerTensor).unwrap();
        let wl: Vec<i32> = idx.iter().map(|&i| i32::from(book[usize::from(i)])).collect();
        let want_cb = direct_conv(&g, &x.iter().map(|&v| i32::from(v)).collect::<Vec<_>>(), &wl, i32::from(pad_value));
        for path in KernelPath::available() {
            let mut out = vec![0; g.output_len()];
            conv.forward_codebook(path, &x, pad_value, &cw, &mut out).unwrap();
            prop_assert_eq!(&out, &want_cb, "codebook path {}", path);
        }
    }

    #[test]
    fn thresholds_match_scalar(rows in 1usize..6, channels in 1usize..40, seed: u64) {
        // Every allowed width, in every case.
        for bits in 1u8..=8 {
            let mut rng = lcg(seed);
            let count = (1usize << bits) - 1;
            let mut table = Vec::new();
            let descending: Vec<bool> = (0..channels).map(|_| rng().is_multiple_of(2)).collect();
            for &desc in &descending {
                let mut row: Vec<i32> = (0..count).map(|_| (rng() % 2001) as i32 - 1000).collect();
                row.sort_unstable();
                if desc {
                    row.reverse();
                }
                table.extend(row);
            }
            let t = Thresholds::new(bits, channels, &table, &descending).unwrap();
            // Accumulators near the thresholds, equal to them, and at the i32 extremes.
            let acc: Vec<i32> = (0..rows * channels)
                .map(|i| match rng() % 5 {
                    0 => table[(i % channels) * count + (rng() as usize % count)],
                    1 => if rng().is_multiple_of(2) { i32::MIN } else { i32::MAX },
                    _ => (rng() % 2201) as i32 - 1100,
                })
                .collect();
            let mut want = vec![0u8; acc.len()];
            t.apply(KernelPath::Scalar, &acc, &mut want).unwrap();
            for (i, &v) in acc.iter().enumerate() {
                prop_assert_eq!(want[i], t.quantize_one(i % channels, v));
                prop_assert!(usize::from(want[i]) <= count);
            }
            for path in KernelPath::available() {
                let mut got = vec![0u8; acc.len()];
                t.apply(path, &acc, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "path {}", path);
            }
        }
    }

    #[test]
    fn requantizer_matches_scalar(
        channels in 1usize..40, rows in 1usize..4, per_channel: bool, zp in -300i32..300, seed: u64,
    ) {
        let mut rng = lcg(seed);
        let n_params = if per_channel { channels } else { 1 };
        let mults: Vec<FixedPointMultiplier> = (0..n_params)
            .map(|_| FixedPointMultiplier {
                multiplier: (1 << 30) + (rng() % (1 << 30)) as i32,
                shift: (rng() % 40) as i32 - 31,
            })
            .map(|m| FixedPointMultiplier { shift: m.shift.min(30), ..m })
            .collect();
        let bias: Vec<i32> = (0..n_params).map(|_| (rng() % 100_001) as i32 - 50_000).collect();
        let r = Requantizer::new(&mults, &bias, zp, 3, 250).unwrap();
        let acc: Vec<i32> = (0..rows * channels)
            .map(|_| match rng() % 4 {
                0 => [i32::MIN, i32::MAX, 0, -1][(rng() % 4) as usize],
                _ => (rng() as u32) as i32,
            })
            .collect();
        let mut want = vec![0u8; acc.len()];
        r.apply(KernelPath::Scalar, &acc, channels, &mut want).unwrap();
        for path in KernelPath::available() {
            let mut got = vec![0u8; acc.len()];
            r.apply(path, &acc, channels, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "path {}", path);
        }
    }

    #[test]
    fn residual_matches_scalar(len in 1usize..70, sa in -31i32..=30, sb in -31i32..=30, seed: u64) {
        let mut rng = lcg(seed);
        let ma = FixedPointMultiplier { multiplier: (1 << 30) + (rng() % (1 << 30)) as i32, shift: sa };
        let mb = FixedPointMultiplier { multiplier: (rng() % (1 << 31)) as i32, shift: sb };
        let a: Vec<i32> = (0..len).map(|_| (rng() as u32) as i32).collect();
        let b: Vec<i32> = (0..len).map(|i| if i % 7 == 0 { i32::MIN } else { (rng() as u32) as i32 }).collect();
        let mut want = vec![0; len];
        residual_add(KernelPath::Scalar, &a, ma, &b, mb, &mut want).unwrap();
        for i in 0..len {
            prop_assert_eq!(want[i], ma.apply(a[i]).saturating_add(mb.apply(b[i])));
        }
        for path in KernelPath::available() {
            let mut got = vec![0; len];
            residual_add(path, &a, ma, &b, mb, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "path {}", path);
        }
    }

    #[test]
    fn fixed_point_matches_exact_rational(a: i32, b: i32, e in 0u32..=31) {
        // floor(a·b / 2^31 + 1/2) (ties towards +∞), in exact 128-bit arithmetic.
        let p = i128::from(a) * i128::from(b);
        let want = (2 * p + (1i128 << 31)).div_euclid(1i128 << 32);
        let want = want.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
        prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), want);
        let d = 1i128 << e;
        let q = (2 * i128::from(a).abs() + d) / (2 * d);
        let want = if a < 0 { -q } else { q } as i32;
        prop_assert_eq!(rounding_divide_by_pot(a, e), want);
    }
}

#[test]
fn conv_rejects_mismatched_weights() {
    let g = ConvGeometry {
        batch: 1,
        height: 4,
        width: 4,
        in_channels: 3,
        out_channels: 8,
        kernel: 3,
        stride: 1,
        pad: 1,
    };
    let mut conv = Conv2d::new(g).unwrap();
    let pw = PackedWeights::from_rows(&[0; 8 * 26], 8, 26).unwrap();
    let mut out = vec![0; g.output_len()];
    assert!(conv
        .forward_u8(KernelPath::Scalar, &[0; 48], 0, &pw, &mut out)
        .is_err());
    assert!(Conv2d::new(ConvGeometry { pad: 3, ..g }).is_err());
}
