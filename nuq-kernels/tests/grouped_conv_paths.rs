//! Grouped and depthwise convolutions on every kernel path and thread count against a
//! plain-loop grouped convolution: random shapes, strides, padding, dilation, per-channel padding
//! bytes, odd channel counts, channel multipliers above one, weight bit widths, both output
//! kinds and the fused residual join.

use nuq_core::{Direction, FixedPointMultiplier, MacThresholds};
use nuq_kernels::conv::{Conv, ConvOut, ConvScratch, Requantize};
use nuq_kernels::residual_threshold::{ResidualThresholds, Shortcut};
use nuq_kernels::Window;
use nuq_kernels::{KernelError, KernelPath, Weights};
use proptest::prelude::*;

mod common;
use common::lcg;

/// One grouped layer as plain data.
struct Layer {
    shape: Window,
    groups: usize,
    pad: Vec<u8>,
    c_out: usize,
    levels: Vec<i8>,
    indices: Vec<u8>,
    bias: Vec<i32>,
}

impl Layer {
    /// Weight row length, `kernel² · channels / groups`.
    fn k(&self) -> usize {
        self.shape.kernel * self.shape.kernel * self.shape.channels / self.groups
    }

    /// `acc + bias` of every output (`[image][oy][ox][c]`), straight from the definition.
    fn naive(&self, x: &[u8], images: usize) -> Vec<i64> {
        let s = self.shape;
        let (cg, ng, k) = (s.channels / self.groups, self.c_out / self.groups, self.k());
        let mut out = Vec::new();
        for b in 0..images {
            for oy in 0..s.out_height() {
                for ox in 0..s.out_width() {
                    for co in 0..self.c_out {
                        let g = co / ng;
                        let mut acc = i64::from(self.bias[co]);
                        for ky in 0..s.kernel {
                            for kx in 0..s.kernel {
                                for ci in 0..cg {
                                    let c = g * cg + ci;
                                    let y =
                                        (oy * s.stride + ky * s.dilation).checked_sub(s.padding);
                                    let xx =
                                        (ox * s.stride + kx * s.dilation).checked_sub(s.padding);
                                    let a = match (y, xx) {
                                        (Some(y), Some(xx)) if y < s.height && xx < s.width => {
                                            x[((b * s.height + y) * s.width + xx) * s.channels + c]
                                        }
                                        _ => self.pad[c],
                                    };
                                    let t = (ky * s.kernel + kx) * cg + ci;
                                    let i = self.indices[co * k + t];
                                    acc += i64::from(a) * i64::from(self.levels[usize::from(i)]);
                                }
                            }
                        }
                        out.push(acc);
                    }
                }
            }
        }
        out
    }

    fn conv(&self, bits: u8, output: Requantize<'_>) -> Conv {
        let w = Weights::pack(&self.indices, self.c_out, self.k(), bits, &self.levels).unwrap();
        Conv::grouped(self.shape, self.groups, &self.pad, w, &self.bias, output).unwrap()
    }
}

/// Ascending thresholds per channel within `±span`, a third of the channels falling.
fn thresholds(rng: &mut impl FnMut() -> u64, bits: u8, c_out: usize, span: i64) -> MacThresholds {
    let mut values = Vec::new();
    for _ in 0..c_out {
        let mut row: Vec<i32> = (0..(1 << bits) - 1)
            .map(|_| ((rng() as i64 % (2 * span + 1)) - span) as i32)
            .collect();
        row.sort_unstable();
        values.extend(row);
    }
    let dirs = (0..c_out).map(|_| match rng() % 3 {
        0 => Direction::Falling,
        _ => Direction::Rising,
    });
    MacThresholds::new(bits, values, dirs.collect()).unwrap()
}

/// One case: levels, `acc + bias` and a fused join on every path against the definition.
#[allow(clippy::too_many_arguments)]
fn case(
    shape: Window,
    groups: usize,
    mult: usize,
    images: usize,
    bits: u8,
    out_bits: u8,
    huge_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = lcg(seed);
    let c_out = groups * mult;
    let k = shape.kernel * shape.kernel * shape.channels / groups;
    let n_levels = 1 + rng() as usize % (1 << bits);
    let mut levels: Vec<i8> = (0..n_levels).map(|_| rng() as i8).collect();
    levels.sort_unstable();
    let layer = Layer {
        shape,
        groups,
        pad: (0..shape.channels).map(|_| rng() as u8).collect(),
        c_out,
        indices: (0..c_out * k)
            .map(|_| (rng() as usize % n_levels) as u8)
            .collect(),
        levels,
        bias: (0..c_out)
            .map(|_| match huge_bias {
                true => (rng() as i32).wrapping_mul(3),
                false => (rng() % 20_001) as i32 - 10_000,
            })
            .collect(),
    };
    let x: Vec<u8> = (0..images * shape.height * shape.width * shape.channels)
        .map(|_| rng() as u8)
        .collect();
    let want = layer.naive(&x, images);
    let mut scratch = ConvScratch::default();

    // Levels.
    let t = thresholds(&mut rng, out_bits, c_out, 4000 * k as i64);
    let out_levels: Vec<u8> = (0..1u16 << out_bits).map(|_| rng() as u8).collect();
    let out = Requantize::Levels {
        thresholds: &t,
        levels: &out_levels,
    };
    let conv = layer.conv(bits, out);
    let expect: Vec<u8> = want
        .iter()
        .enumerate()
        .map(|(j, &v)| out_levels[usize::from(t.code(j % c_out, v))])
        .collect();
    for path in KernelPath::available() {
        let mut got = vec![0xAAu8; want.len()];
        conv.run(path, &x, images, ConvOut::Levels(&mut got), &mut scratch)
            .unwrap();
        prop_assert_eq!(&got, &expect, "levels {}", path);
    }

    // acc + bias.
    let conv = layer.conv(bits, Requantize::Accumulator);
    let exact = want
        .iter()
        .map(|&v| i32::try_from(v))
        .collect::<Result<Vec<_>, _>>();
    for path in KernelPath::available() {
        let mut got = vec![0i32; want.len()];
        let r = conv.run(path, &x, images, ConvOut::Int32(&mut got), &mut scratch);
        match &exact {
            Ok(expect) => prop_assert_eq!((r, &got), (Ok(()), expect), "acc {}", path),
            Err(_) => prop_assert_eq!(r, Err(KernelError::BiasOverflow), "acc {}", path),
        }
    }

    // The fused join against acc + bias followed by the join.
    let align: Vec<FixedPointMultiplier> = (0..c_out)
        .map(|_| {
            FixedPointMultiplier::new((rng() % 4001) as i32 - 2000, (rng() % 8) as u8).unwrap()
        })
        .collect();
    let jt = thresholds(&mut rng, 2, c_out, 4000 * k as i64);
    let join = ResidualThresholds::new(1, &align, &jt, &[0, 3, 7, 12]).unwrap();
    let b: Vec<u8> = (0..want.len()).map(|_| rng() as u8).collect();
    let shortcut = Shortcut::Levels(&b);
    let unfused = exact.clone().map(|acc| {
        let mut o = vec![0u8; want.len()];
        join.apply(KernelPath::Scalar, &acc, shortcut, &mut o)
            .unwrap();
        o
    });
    for path in KernelPath::available() {
        let mut got = vec![0xAAu8; want.len()];
        let r = conv.run_join(path, &x, images, &join, shortcut, &mut got, &mut scratch);
        match &unfused {
            Ok(expect) => prop_assert_eq!((r, &got), (Ok(()), expect), "join {}", path),
            Err(_) => prop_assert_eq!(r, Err(KernelError::BiasOverflow), "join {}", path),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Depthwise (`groups == channels`) with channel multipliers 1 to 3.
    #[test]
    fn depthwise_matches_the_definition(
        images in 1usize..3, height in 1usize..9, width in 1usize..9, channels in 1usize..21,
        kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2, mult in 1usize..4,
        bits in prop::sample::select(vec![1u8, 2, 3, 4, 8]), out_bits in 1u8..5,
        huge_bias: bool, threads in 1usize..4, seed: u64, dilation in 1usize..3,
    ) {
        let shape = Window { height, width, channels, kernel, stride, padding, dilation };
        prop_assume!(height.min(width) + 2 * padding >= shape.span());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| case(shape, channels, mult, images, bits, out_bits, huge_bias, seed))?;
    }

    /// Grouped with several channels per group (and depthwise when the draw gives one).
    #[test]
    fn grouped_matches_the_definition(
        images in 1usize..3, height in 1usize..8, width in 1usize..8, groups in 1usize..5,
        per_group in 1usize..6, kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2,
        mult in 1usize..6, bits in prop::sample::select(vec![2u8, 4, 8]), out_bits in 1u8..4,
        huge_bias: bool, threads in 1usize..4, seed: u64, dilation in 1usize..3,
    ) {
        let channels = groups * per_group;
        let shape = Window { height, width, channels, kernel, stride, padding, dilation };
        prop_assume!(height.min(width) + 2 * padding >= shape.span());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| case(shape, groups, mult, images, bits, out_bits, huge_bias, seed))?;
    }
}

/// Wide depthwise and grouped layers (many channels: whole vectors plus a tail, several
/// row tasks per image) on two threads.
#[test]
fn wide_layers_match_the_definition() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (channels, groups, mult, stride, dilation) in [
        (67, 67, 1, 1, 1),
        (96, 96, 2, 2, 1),
        (64, 8, 4, 1, 1),
        (67, 67, 1, 1, 2),
        (64, 8, 4, 2, 3),
    ] {
        let shape = Window {
            height: 12,
            width: 11,
            channels,
            kernel: 3,
            stride,
            padding: 1,
            dilation,
        };
        pool.install(|| case(shape, groups, mult, 1, 4, 3, false, channels as u64))
            .unwrap();
    }
}

/// A group count that does not divide the input and output channels, and a weight row of
/// the ungrouped length, are refused.
#[test]
fn bad_groups_are_refused() {
    let shape = Window {
        height: 3,
        width: 3,
        channels: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    let acc = Requantize::Accumulator;
    let w = |n: usize, k: usize| Weights::pack(&vec![0; n * k], n, k, 2, &[0, 1]).unwrap();
    for (groups, n) in [(0, 4), (3, 6), (2, 3)] {
        let e = Conv::grouped(shape, groups, &[0; 4], w(n, 9), &vec![0; n], acc);
        assert!(
            matches!(
                e,
                Err(KernelError::Unsupported {
                    what: "channel groups",
                    ..
                })
            ),
            "{groups} {n}"
        );
    }
    let e = Conv::grouped(shape, 2, &[0; 4], w(4, 36), &[0; 4], acc);
    assert!(matches!(e, Err(KernelError::ShapeMismatch { .. })));
    let t = MacThresholds::new(1, vec![0; 3], vec![Direction::Rising; 3]).unwrap();
    let out = Requantize::Levels {
        thresholds: &t,
        levels: &[0, 1],
    };
    let e = Conv::grouped(shape, 4, &[0; 4], w(4, 9), &[0; 4], out);
    assert!(matches!(e, Err(KernelError::ShapeMismatch { .. })));
}
