//! The fused convolution on every kernel path against a naive direct convolution, for
//! random shapes, strides, padding, weight and output bit widths and thread counts (so both
//! row tiles and the column tiles of short outputs run), including biases that push the
//! folded thresholds past `i32` (clamped) and layers whose accumulator bound keeps the
//! 64-bit requantization.

use nuq_core::{Direction, FixedPointMultiplier, MacThresholds};
use nuq_kernels::conv::{Conv, ConvOut, ConvScratch, Requantize};
use nuq_kernels::residual_threshold::{ResidualThresholds, Shortcut};
use nuq_kernels::Window;
use nuq_kernels::{KernelError, KernelPath, Weights};
use proptest::prelude::*;

mod common;
use common::lcg;

/// One layer as plain data, as a caller hands it over; `requant: None` is `acc + bias`.
struct Layer {
    shape: Window,
    pad: Vec<u8>,
    c_out: usize,
    bits: u8,
    levels: Vec<i8>,
    indices: Vec<u8>,
    bias: Vec<i32>,
    requant: Option<(MacThresholds, Vec<u8>)>,
}

impl Layer {
    /// `acc + bias` of every output (`[image][oy][ox][c]`), straight from the definition.
    fn naive(&self, x: &[u8], images: usize) -> Vec<i64> {
        let s = self.shape;
        let mut out = Vec::new();
        for b in 0..images {
            for oy in 0..s.out_height() {
                for ox in 0..s.out_width() {
                    for co in 0..self.c_out {
                        let mut acc = i64::from(self.bias[co]);
                        for (t, &i) in self.indices[co * s.k()..][..s.k()].iter().enumerate() {
                            let (ky, kx, ci) = (
                                t / s.channels / s.kernel,
                                t / s.channels % s.kernel,
                                t % s.channels,
                            );
                            let y = (oy * s.stride + ky * s.dilation)
                                .checked_sub(s.padding)
                                .filter(|&y| y < s.height);
                            let xx = (ox * s.stride + kx * s.dilation)
                                .checked_sub(s.padding)
                                .filter(|&v| v < s.width);
                            let a = match (y, xx) {
                                (Some(y), Some(xx)) => {
                                    x[((b * s.height + y) * s.width + xx) * s.channels + ci]
                                }
                                _ => self.pad[ci],
                            };
                            acc += i64::from(a) * i64::from(self.levels[usize::from(i)]);
                        }
                        out.push(acc);
                    }
                }
            }
        }
        out
    }

    /// The convolution of `x` on every path against [`Layer::naive`].
    fn check(&self, x: &[u8], images: usize) -> Result<(), TestCaseError> {
        let w = Weights::pack(
            &self.indices,
            self.c_out,
            self.shape.k(),
            self.bits,
            &self.levels,
        )
        .unwrap();
        let out = match &self.requant {
            Some((thresholds, levels)) => Requantize::Levels { thresholds, levels },
            None => Requantize::Accumulator,
        };
        let conv = Conv::new(self.shape, &self.pad, w, &self.bias, out).unwrap();
        let want = self.naive(x, images);
        let mut scratch = ConvScratch::default();
        for path in KernelPath::available() {
            if let Some((t, l)) = &self.requant {
                let expect: Vec<u8> = want
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| l[usize::from(t.code(j % self.c_out, v))])
                    .collect();
                let mut got = vec![0xAAu8; want.len()];
                conv.run(path, x, images, ConvOut::Levels(&mut got), &mut scratch)
                    .unwrap();
                prop_assert_eq!(&got, &expect, "{}", path);
                continue;
            }
            let mut got = vec![0i32; want.len()];
            let r = conv.run(path, x, images, ConvOut::Int32(&mut got), &mut scratch);
            match want
                .iter()
                .map(|&v| i32::try_from(v))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(expect) => prop_assert_eq!((r, &got), (Ok(()), &expect), "{}", path),
                Err(_) => prop_assert_eq!(r, Err(KernelError::BiasOverflow), "{}", path),
            }
        }
        Ok(())
    }
}

/// Thresholds per channel drawn from `sums` (`[row][c_out]`) of that channel, each the sum
/// itself or one off it, a few at the ends of `i32`; a third of the channels falling.
fn thresholds_at(
    rng: &mut impl FnMut() -> u64,
    bits: u8,
    c_out: usize,
    sums: &[i64],
) -> MacThresholds {
    let rows = sums.len() / c_out;
    threshold_table(rng, bits, c_out, 16, &mut |rng, c| {
        let s = sums[(rng() as usize % rows) * c_out + c] + (rng() % 3) as i64 - 1;
        s.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    })
}

/// Ascending thresholds per channel, mostly within `±span`, some at the ends of `i32`
/// (which the bias fold clamps); a third of the channels falling.
fn thresholds(rng: &mut impl FnMut() -> u64, bits: u8, c_out: usize, span: i64) -> MacThresholds {
    threshold_table(rng, bits, c_out, 8, &mut |rng, _| {
        ((rng() as i64 % (2 * span + 1)) - span) as i32
    })
}

/// A table of `2^bits − 1` ascending thresholds per channel: one in `one_in` at each end of
/// `i32`, the others from `pick(rng, channel)`; a third of the channels falling.
fn threshold_table<R: FnMut() -> u64>(
    rng: &mut R,
    bits: u8,
    c_out: usize,
    one_in: u64,
    pick: &mut dyn FnMut(&mut R, usize) -> i32,
) -> MacThresholds {
    let mut values = Vec::new();
    for c in 0..c_out {
        let mut row: Vec<i32> = (0..(1 << bits) - 1)
            .map(|_| match rng() % one_in {
                0 => i32::MIN + (rng() % 3) as i32,
                1 => i32::MAX - (rng() % 3) as i32,
                _ => pick(rng, c),
            })
            .collect();
        row.sort_unstable();
        values.extend(row);
    }
    let dirs = (0..c_out).map(|_| {
        if rng().is_multiple_of(3) {
            Direction::Falling
        } else {
            Direction::Rising
        }
    });
    MacThresholds::new(bits, values, dirs.collect()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_conv_matches_the_direct_convolution(
        images in 1usize..4, height in 1usize..10, width in 1usize..10, channels in 1usize..7,
        kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2, c_out in 1usize..80,
        bits in prop::sample::select(vec![1u8, 2, 3, 4, 8]), out_bits in 0u8..5,
        huge_bias: bool, threads in 1usize..4, seed: u64, dilation in 1usize..3, zero_pad: bool,
    ) {
        let shape = Window { height, width, channels, kernel, stride, padding, dilation };
        prop_assume!(height.min(width) + 2 * padding >= shape.span());
        let mut rng = lcg(seed);
        let k = shape.k();
        let n_levels = 1 + rng() as usize % (1 << bits);
        let mut levels: Vec<i8> = (0..n_levels).map(|_| rng() as i8).collect();
        levels.sort_unstable();
        let bias = |r: u64| if huge_bias { (r as i32).wrapping_mul(3) } else { (r % 20_001) as i32 - 10_000 };
        // A zero padding byte lets the tiles skip the border taps.
        let pad = (0..channels).map(|_| if zero_pad { 0 } else { rng() as u8 }).collect();
        let layer = Layer {
            shape,
            pad,
            c_out,
            bits,
            indices: (0..c_out * k).map(|_| (rng() as usize % n_levels) as u8).collect(),
            levels,
            bias: (0..c_out).map(|_| bias(rng())).collect(),
            requant: (out_bits > 0).then(|| {
                let t = thresholds(&mut rng, out_bits, c_out, 4000 * k as i64);
                let mut l: Vec<u8> = (0..1 << out_bits).map(|_| rng() as u8).collect();
                l.sort_unstable();
                (t, l)
            }),
        };
        let x: Vec<u8> = (0..images * height * width * channels).map(|_| rng() as u8).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| layer.check(&x, images))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The convolution fused with a residual join gives, on every path and thread count (row
    /// and column tiles), what the convolution's `acc + bias` followed by the join gives.
    #[test]
    fn fused_join_matches_conv_then_join(
        images in 1usize..3, height in 1usize..9, width in 1usize..9, channels in 1usize..7,
        kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2, c_out in 1usize..80,
        bits in prop::sample::select(vec![2u8, 3, 4, 8]), out_bits in 1u8..5,
        a_shift in 0u8..4, levels_in: bool, huge_bias: bool, threads in 1usize..4, seed: u64,
        dilation in 1usize..3, zero_pad: bool,
    ) {
        let shape = Window { height, width, channels, kernel, stride, padding, dilation };
        prop_assume!(height.min(width) + 2 * padding >= shape.span());
        let case = JoinCase { out_bits, a_shift, levels_in, huge_bias, zero_pad };
        join_case(shape, images, c_out, bits, &case, threads, seed)?;
    }
}

/// The join of a [`join_case`]: `out_bits`-bit levels out, the main branch shifted by
/// `a_shift`, a shortcut of levels (`levels_in`) or accumulators, a bias that may leave
/// `i32` (`huge_bias`), and a zero padding byte (`zero_pad`) or random ones.
struct JoinCase {
    out_bits: u8,
    a_shift: u8,
    levels_in: bool,
    huge_bias: bool,
    zero_pad: bool,
}

/// One case of the fused join: the convolution of `shape` into `c_out` channels with
/// `bits`-bit weights, joined as `case` says with a random shortcut, on every path against
/// the convolution's `acc + bias` followed by the scalar join, on `threads` threads.
fn join_case(
    shape: Window,
    images: usize,
    c_out: usize,
    bits: u8,
    case: &JoinCase,
    threads: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let &JoinCase {
        out_bits,
        a_shift,
        levels_in,
        huge_bias,
        zero_pad,
    } = case;
    let Window {
        height,
        width,
        channels,
        ..
    } = shape;
    let mut rng = lcg(seed);
    let k = shape.k();
    let n_levels = 1 + rng() as usize % (1 << bits);
    let mut levels: Vec<i8> = (0..n_levels).map(|_| rng() as i8).collect();
    levels.sort_unstable();
    let indices: Vec<u8> = (0..c_out * k)
        .map(|_| (rng() as usize % n_levels) as u8)
        .collect();
    let bias: Vec<i32> = (0..c_out)
        .map(|_| {
            if huge_bias {
                (rng() as i32).wrapping_mul(3)
            } else {
                (rng() % 20_001) as i32 - 10_000
            }
        })
        .collect();
    let w = Weights::pack(&indices, c_out, k, bits, &levels).unwrap();
    let pad: Vec<u8> = (0..channels)
        .map(|_| if zero_pad { 0 } else { rng() as u8 })
        .collect();
    let conv = Conv::new(shape, &pad, w, &bias, Requantize::Accumulator).unwrap();
    // Small factors, and full-width mantissas at any shift (the kernels' 32-bit alignment
    // of levels shortcuts takes two forms by shift, and falls back to 64 bits where a sum
    // could leave `i32`).
    let align: Vec<FixedPointMultiplier> = (0..c_out)
        .map(|_| {
            if rng().is_multiple_of(2) {
                FixedPointMultiplier::new((rng() % 4001) as i32 - 2000, (rng() % 12) as u8)
            } else {
                FixedPointMultiplier::new(rng() as i32, 9 + (rng() % 40) as u8)
            }
            .unwrap()
        })
        .collect();
    let x: Vec<u8> = (0..images * height * width * channels)
        .map(|_| rng() as u8)
        .collect();
    let len = images * shape.out_height() * shape.out_width() * c_out;
    let b8: Vec<u8> = (0..len).map(|_| rng() as u8).collect();
    let b32: Vec<i32> = (0..len)
        .map(|_| (rng() % 200_001) as i32 - 100_000)
        .collect();
    let b = if levels_in {
        Shortcut::Levels(&b8)
    } else {
        Shortcut::Int32(&b32)
    };
    // Mostly thresholds at the sums themselves and one off them, so that a sum one unit
    // wrong changes a code; else random ones.
    let mut acc = vec![0i32; len];
    let scalar = conv.run(
        KernelPath::Scalar,
        &x,
        images,
        ConvOut::Int32(&mut acc),
        &mut ConvScratch::default(),
    );
    let t = if scalar.is_ok() && !rng().is_multiple_of(4) {
        let sums: Vec<i64> = (0..len)
            .map(|i| {
                let y = match b {
                    Shortcut::Int32(v) => i64::from(v[i]),
                    Shortcut::Levels(v) => i64::from(v[i]),
                };
                (i64::from(acc[i]) << a_shift) + align[i % c_out].apply(y)
            })
            .collect();
        thresholds_at(&mut rng, out_bits, c_out, &sums)
    } else {
        thresholds(&mut rng, out_bits, c_out, 4000 * k as i64)
    };
    let out_levels: Vec<u8> = (0..1 << out_bits).map(|_| rng() as u8).collect();
    let join = ResidualThresholds::new(a_shift, &align, &t, &out_levels).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| -> Result<(), TestCaseError> {
        let mut scratch = ConvScratch::default();
        let mut acc = vec![0i32; len];
        let unfused = conv
            .run(
                KernelPath::Scalar,
                &x,
                images,
                ConvOut::Int32(&mut acc),
                &mut scratch,
            )
            .map(|()| {
                let mut want = vec![0u8; len];
                join.apply(KernelPath::Scalar, &acc, b, &mut want).unwrap();
                want
            });
        for path in KernelPath::available() {
            let mut got = vec![0xAAu8; len];
            let r = conv.run_join(path, &x, images, &join, b, &mut got, &mut scratch);
            prop_assert_eq!(r.map(|()| got), unfused.clone(), "{}", path);
        }
        Ok(())
    })
}

/// Short outputs with enough work to be split across threads run as column tiles (one
/// im2col matrix or padded input, tiles of weight panels, staged blocks gathered): requantized,
/// `acc + bias` and fused-join outputs against the definitions.
#[test]
fn column_tiles_match_the_definitions() {
    for (threads, c_out, out_bits) in [(2, 96, 4), (3, 100, 0), (4, 130, 2)] {
        let shape = Window {
            height: 4,
            width: 4,
            channels: 128,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let mut rng = lcg(threads as u64);
        let k = shape.k();
        let levels: Vec<i8> = (-8..8).map(|v| (v * 9) as i8).collect();
        // A zero padding byte (the border taps skipped) or not.
        let pad_byte = if out_bits == 4 { 0 } else { 3 };
        let layer = Layer {
            shape,
            pad: vec![pad_byte; 128],
            c_out,
            bits: 4,
            indices: (0..c_out * k).map(|_| (rng() % 16) as u8).collect(),
            levels,
            bias: (0..c_out)
                .map(|_| (rng() % 20_001) as i32 - 10_000)
                .collect(),
            requant: (out_bits > 0).then(|| {
                let t = thresholds(&mut rng, out_bits, c_out, 300_000);
                ((t), (0..1u8 << out_bits).map(|v| v * 3).collect())
            }),
        };
        let x: Vec<u8> = (0..16 * 128).map(|_| rng() as u8).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| layer.check(&x, 1)).unwrap();
        for zero_pad in [false, true] {
            let case = JoinCase {
                out_bits: 3,
                a_shift: 1,
                levels_in: threads == 2,
                huge_bias: false,
                zero_pad,
            };
            pool.install(|| join_case(shape, 1, c_out, 4, &case, threads, 5))
                .unwrap();
        }
    }
}

/// A layer of `shape` into `c_out` channels with `bits`-bit weights (levels 13 apart),
/// 3-bit thresholds for even `case`s (else `acc + bias`), random biases and padding bytes
/// (zeros where `zero_pad`), drawn from `rng`.
fn grid_layer(
    shape: Window,
    c_out: usize,
    bits: u8,
    case: u64,
    zero_pad: bool,
    rng: &mut impl FnMut() -> u64,
) -> Layer {
    let n_levels = 1usize << bits.min(4);
    let requant = case.is_multiple_of(2).then(|| {
        let t = thresholds(rng, 3, c_out, 50_000);
        (t, (0..8u8).map(|v| v * 5).collect())
    });
    Layer {
        shape,
        pad: (0..shape.channels)
            .map(|_| if zero_pad { 0 } else { rng() as u8 })
            .collect(),
        c_out,
        bits,
        indices: (0..c_out * shape.k())
            .map(|_| (rng() as usize % n_levels) as u8)
            .collect(),
        levels: (0..n_levels).map(|v| (v as i8).wrapping_mul(13)).collect(),
        bias: (0..c_out)
            .map(|_| (rng() % 20_001) as i32 - 10_000)
            .collect(),
        requant,
    }
}

/// Layers gather their rows from a padded copy of the input (each tile its own rows, pixels
/// padded to whole 4-byte groups of channels) on the VNNI paths (no unfolded matrix): every
/// stride, padding and kernel size, int8 and 4-bit weights, requantized and `acc + bias`
/// outputs and fused joins, against the definitions.
#[test]
fn gathered_rows_match_the_definitions() {
    let mut case = 0u64;
    for (channels, kernel, stride, padding, dilation) in [
        (64, 3, 1, 1, 1),
        (8, 3, 2, 1, 1),
        (4, 3, 1, 0, 1),
        (32, 1, 2, 0, 1),
        (12, 2, 2, 1, 1),
        // RGB: channels padded to 4 in the gathered copy.
        (3, 3, 1, 1, 1),
        (3, 3, 2, 1, 1),
        // Dilated: the VNNI paths unfold these rather than gather.
        (64, 3, 1, 2, 2),
        (8, 3, 2, 1, 2),
    ] {
        for bits in [4u8, 8] {
            case += 1;
            let shape = Window {
                height: 7,
                width: 6,
                channels,
                kernel,
                stride,
                padding,
                dilation,
            };
            let mut rng = lcg(case);
            let c_out = 40;
            let layer = grid_layer(shape, c_out, bits, case, false, &mut rng);
            // Five images on three threads: tiles that start and end inside images and
            // span image borders, each padding its own rows.
            let x: Vec<u8> = (0..5 * 7 * 6 * channels).map(|_| rng() as u8).collect();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            pool.install(|| layer.check(&x, 5)).unwrap();
            let join = JoinCase {
                out_bits: 2,
                a_shift: 1,
                levels_in: case.is_multiple_of(3),
                huge_bias: false,
                zero_pad: false,
            };
            pool.install(|| join_case(shape, 2, c_out, bits, &join, 2, case))
                .unwrap();
        }
    }
}

/// Thresholds that leave the `i32` range once the bias is folded in, with the folded `i32`
/// requantization (300 input channels) and with a layer whose accumulator bound
/// (`k · max|w| · 255`) exceeds `i32::MAX`, which keeps the 64-bit one (70 000 channels).
#[test]
fn wide_bound_and_extreme_thresholds_stay_exact() {
    for channels in [300, 70_000] {
        let mut rng = lcg(3);
        for bias in [-1_500_000_000, 0, 1_500_000_000] {
            let (lo, hi) = (i32::MIN, i32::MAX);
            let t = [-2000, 0, 2000, lo, lo + 5, hi, -1000, 10, hi - bias.max(0)];
            let dirs = vec![Direction::Rising, Direction::Rising, Direction::Falling];
            let shape = Window {
                height: 1,
                width: 2,
                channels,
                kernel: 1,
                stride: 1,
                padding: 0,
                dilation: 1,
            };
            let layer = Layer {
                shape,
                pad: vec![0; channels],
                c_out: 3,
                bits: 8,
                levels: (-127i8..=127).collect(),
                indices: (0..3 * channels).map(|_| (rng() % 255) as u8).collect(),
                bias: vec![bias, bias, -bias],
                requant: Some((
                    MacThresholds::new(2, t.to_vec(), dirs).unwrap(),
                    vec![0, 3, 9, 40],
                )),
            };
            // Small levels keep the GEMM's actual-value bound within i32.
            let x: Vec<u8> = (0..2 * 2 * channels).map(|_| (rng() % 12) as u8).collect();
            layer.check(&x, 2).unwrap();
        }
    }
}

#[test]
fn conv_rejects_bad_input() {
    let shape = Window {
        height: 2,
        width: 2,
        channels: 1,
        kernel: 3,
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    let w = || Weights::pack(&[0; 18], 2, 9, 2, &[0, 1]).unwrap();
    let acc = Requantize::Accumulator;
    let unsupported = Conv::new(shape, &[0], w(), &[0, 0], acc);
    assert!(matches!(unsupported, Err(KernelError::Unsupported { .. })));
    let shape = Window {
        padding: 1,
        ..shape
    };
    for (pad, bias) in [(&[0, 0][..], &[0, 0][..]), (&[0], &[0])] {
        let e = Conv::new(shape, pad, w(), bias, acc);
        assert!(matches!(e, Err(KernelError::ShapeMismatch { .. })));
    }
    let t = MacThresholds::new(1, vec![0, 0], vec![Direction::Rising; 2]).unwrap();
    let levels = Requantize::Levels {
        thresholds: &t,
        levels: &[0, 1, 2],
    };
    let e = Conv::new(shape, &[0], w(), &[0, 0], levels);
    assert!(matches!(e, Err(KernelError::ShapeMismatch { .. })));
    let e = Weights::pack(&[2; 18], 2, 9, 2, &[0, 1]);
    assert!(matches!(
        e,
        Err(KernelError::IndexOutOfRange { index: 2, .. })
    ));
    let conv = Conv::new(shape, &[0], w(), &[0, 0], acc).unwrap();
    let mut s = ConvScratch::default();
    let p = KernelPath::Scalar;
    let e = conv.run(p, &[0; 4], 1, ConvOut::Levels(&mut [0; 8]), &mut s);
    assert!(matches!(e, Err(KernelError::OutputKind { .. })));
    for (x, o) in [(3, 8), (4, 7)] {
        let e = conv.run(p, &vec![0; x], 1, ConvOut::Int32(&mut vec![0; o]), &mut s);
        assert!(matches!(e, Err(KernelError::SliceTooShort { .. })));
    }
    // A fused join needs a convolution that hands on accumulators, the join's channels and
    // a whole shortcut.
    let one = FixedPointMultiplier::new(1, 0).unwrap();
    let t2 = MacThresholds::new(1, vec![0, 0], vec![Direction::Rising; 2]).unwrap();
    let join = ResidualThresholds::new(0, &[one, one], &t2, &[0, 1]).unwrap();
    let join1 = ResidualThresholds::new(
        0,
        &[one],
        &MacThresholds::new(1, vec![0], vec![Direction::Rising]).unwrap(),
        &[0, 1],
    )
    .unwrap();
    let b = [0u8; 8];
    let e = conv.run_join(
        p,
        &[0; 4],
        1,
        &join1,
        Shortcut::Levels(&b),
        &mut [0; 8],
        &mut s,
    );
    assert!(matches!(e, Err(KernelError::ShapeMismatch { .. })));
    let e = conv.run_join(
        p,
        &[0; 4],
        1,
        &join,
        Shortcut::Levels(&b[..7]),
        &mut [0; 8],
        &mut s,
    );
    assert!(matches!(e, Err(KernelError::SliceTooShort { .. })));
    let e = conv.run_join(
        p,
        &[0; 4],
        1,
        &join,
        Shortcut::Levels(&b),
        &mut [0; 7],
        &mut s,
    );
    assert!(matches!(e, Err(KernelError::SliceTooShort { .. })));
    let requantizing = Conv::new(
        shape,
        &[0],
        w(),
        &[0, 0],
        Requantize::Levels {
            thresholds: &t,
            levels: &[0, 1],
        },
    )
    .unwrap();
    let e = requantizing.run_join(
        p,
        &[0; 4],
        1,
        &join,
        Shortcut::Levels(&b),
        &mut [0; 8],
        &mut s,
    );
    assert!(matches!(e, Err(KernelError::OutputKind { .. })));
}

/// A zero dilation, and a dilated kernel that does not fit the padded input, are typed
/// errors; a max-pool refuses any dilation.
#[test]
fn bad_dilation_is_refused() {
    let acc = Requantize::Accumulator;
    let w = || Weights::pack(&[0; 18], 2, 9, 2, &[0, 1]).unwrap();
    let base = Window::new(4, 4, 1, 3, 1, 0);
    let e = Conv::new(
        Window {
            dilation: 0,
            ..base
        },
        &[0],
        w(),
        &[0, 0],
        acc,
    );
    assert!(matches!(
        e,
        Err(KernelError::Unsupported {
            what: "dilation",
            ..
        })
    ));
    // Dilation 2 spans 5 > 4 pixels; padding 1 makes it fit.
    let e = Conv::new(
        Window {
            dilation: 2,
            ..base
        },
        &[0],
        w(),
        &[0, 0],
        acc,
    );
    assert!(matches!(e, Err(KernelError::Unsupported { .. })));
    let fits = Window {
        dilation: 2,
        padding: 1,
        ..base
    };
    assert!(Conv::new(fits, &[0], w(), &[0, 0], acc).is_ok());
    let mut out = [0u8; 16];
    let e = nuq_kernels::pool::max_pool_u8(&fits, &[0; 16], &mut out);
    assert!(matches!(
        e,
        Err(KernelError::Unsupported {
            what: "max-pool dilation",
            ..
        })
    ));
}

/// Layers with a zero padding byte, whose tiles multiply only the taps of each pixel's
/// window that fall inside the image (rows grouped by their live kernel rows and columns):
/// small images (every pixel on a border), strides, wide kernels and paddings, windows
/// wholly in the border, RGB inputs padded to 4 channels, row and column tiles, int8 and
/// 4-bit weights, requantized, `acc + bias` and fused-join outputs, against the
/// definitions.
#[test]
fn border_taps_skipped_match_the_definitions() {
    let mut case = 100u64;
    // (height, width, channels, kernel, stride, padding, images, c_out, threads)
    for (height, width, channels, kernel, stride, padding, images, c_out, threads) in [
        (4, 4, 64, 3, 1, 1, 4, 64, 1),
        (4, 4, 64, 3, 1, 1, 1, 96, 2),
        (8, 8, 32, 3, 1, 1, 3, 40, 3),
        (8, 8, 16, 3, 2, 1, 2, 32, 2),
        (5, 7, 8, 5, 1, 2, 3, 33, 2),
        (3, 3, 8, 2, 1, 2, 2, 16, 1),
        (1, 6, 12, 3, 1, 1, 4, 24, 2),
        (6, 6, 3, 3, 1, 1, 4, 64, 2),
        (2, 2, 128, 3, 1, 1, 16, 130, 4),
    ] {
        for bits in [4u8, 8] {
            case += 1;
            let shape = Window {
                height,
                width,
                channels,
                kernel,
                stride,
                padding,
                dilation: 1,
            };
            let mut rng = lcg(case);
            let layer = grid_layer(shape, c_out, bits, case, true, &mut rng);
            let x: Vec<u8> = (0..images * height * width * channels)
                .map(|_| rng() as u8)
                .collect();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| layer.check(&x, images)).unwrap();
            let join = JoinCase {
                out_bits: 3,
                a_shift: 1,
                levels_in: case.is_multiple_of(3),
                huge_bias: false,
                zero_pad: true,
            };
            pool.install(|| join_case(shape, images, c_out, bits, &join, threads, case))
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// The convolution fused with a 2×2, stride-2 max-pool gives, on every path and thread
    /// count (row and column tiles), what the convolution's levels followed by the max-pool
    /// give — rising and falling channels, clamped thresholds; and it refuses levels that
    /// decrease.
    #[test]
    fn pooled_conv_matches_conv_then_max_pool(
        images in 1usize..4, height in 2usize..13, width in 2usize..13, channels in 1usize..7,
        kernel in 1usize..4, stride in 1usize..3, padding in 0usize..2, c_out in 1usize..80,
        bits in prop::sample::select(vec![2u8, 4, 8]), out_bits in 1u8..5,
        huge_bias: bool, threads in 1usize..4, seed: u64, zero_pad: bool, descending: bool,
    ) {
        let shape = Window::new(height, width, channels, kernel, stride, padding);
        prop_assume!(height.min(width) + 2 * padding >= shape.span());
        prop_assume!(shape.out_height().is_multiple_of(2) && shape.out_width().is_multiple_of(2));
        let mut rng = lcg(seed);
        let k = shape.k();
        let n_levels = 1 + rng() as usize % (1 << bits);
        let mut levels: Vec<i8> = (0..n_levels).map(|_| rng() as i8).collect();
        levels.sort_unstable();
        let indices: Vec<u8> = (0..c_out * k).map(|_| (rng() as usize % n_levels) as u8).collect();
        let w = Weights::pack(&indices, c_out, k, bits, &levels).unwrap();
        let bias: Vec<i32> = (0..c_out)
            .map(|_| if huge_bias { (rng() as i32).wrapping_mul(3) } else { (rng() % 20_001) as i32 - 10_000 })
            .collect();
        let pad: Vec<u8> = (0..channels).map(|_| if zero_pad { 0 } else { rng() as u8 }).collect();
        let t = thresholds(&mut rng, out_bits, c_out, 4000 * k as i64);
        let mut out_levels: Vec<u8> = (0..1 << out_bits).map(|_| rng() as u8).collect();
        out_levels.sort_unstable();
        if descending {
            out_levels.reverse();
        }
        let out = Requantize::Levels { thresholds: &t, levels: &out_levels };
        let conv = Conv::new(shape, &pad, w, &bias, out).unwrap();
        let ascending = out_levels.windows(2).all(|p| p[0] <= p[1]);
        prop_assert_eq!(conv.pools(), ascending);
        let x: Vec<u8> = (0..images * height * width * channels).map(|_| rng() as u8).collect();
        let (oh, ow) = (shape.out_height(), shape.out_width());
        let window = Window::new(oh, ow, c_out, 2, 2, 0);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut scratch = ConvScratch::default();
        pool.install(|| -> Result<(), TestCaseError> {
            for path in KernelPath::available() {
                let mut full = vec![0u8; images * oh * ow * c_out];
                conv.run(path, &x, images, ConvOut::Levels(&mut full), &mut scratch).unwrap();
                let mut got = vec![0xAAu8; images * oh * ow * c_out / 4];
                let r = conv.run_pooled(path, &x, images, &mut got, &mut scratch);
                if !ascending {
                    prop_assert!(matches!(r, Err(KernelError::Unsupported { .. })), "{}", path);
                    continue;
                }
                let mut want = vec![0u8; got.len()];
                nuq_kernels::pool::max_pool_u8_batch(&window, &full, images, &mut want).unwrap();
                prop_assert_eq!((r, &got), (Ok(()), &want), "{}", path);
            }
            Ok(())
        })?;
    }
}

/// Pooled convolutions large enough to be split across threads: short outputs as column
/// tiles (one image of 4×4 with heavy weights) and tall ones as several row tiles (two
/// 16×16 images), against the convolution's levels followed by the max-pool.
#[test]
fn pooled_row_and_column_tiles_match_conv_then_max_pool() {
    let cases = [
        (2, 4, 128, 96, 1),
        (4, 4, 128, 130, 1),
        (2, 16, 16, 64, 2),
        (3, 16, 12, 40, 2),
    ];
    for (threads, side, channels, c_out, images) in cases {
        let shape = Window::new(side, side, channels, 3, 1, 1);
        let mut rng = lcg(threads as u64 + side as u64);
        let k = shape.k();
        let levels: Vec<i8> = (-8..8).map(|v| (v * 9) as i8).collect();
        let indices: Vec<u8> = (0..c_out * k).map(|_| (rng() % 16) as u8).collect();
        let w = Weights::pack(&indices, c_out, k, 4, &levels).unwrap();
        let bias: Vec<i32> = (0..c_out)
            .map(|_| (rng() % 20_001) as i32 - 10_000)
            .collect();
        let t = thresholds(&mut rng, 4, c_out, 300_000);
        let out_levels: Vec<u8> = (0..16u8).map(|v| v * 3).collect();
        let out = Requantize::Levels {
            thresholds: &t,
            levels: &out_levels,
        };
        let conv = Conv::new(shape, &vec![0; channels], w, &bias, out).unwrap();
        assert!(conv.pools());
        let x: Vec<u8> = (0..images * side * side * channels)
            .map(|_| rng() as u8)
            .collect();
        let window = Window::new(side, side, c_out, 2, 2, 0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut scratch = ConvScratch::default();
        pool.install(|| {
            for path in KernelPath::available() {
                let mut full = vec![0u8; images * side * side * c_out];
                conv.run(path, &x, images, ConvOut::Levels(&mut full), &mut scratch)
                    .unwrap();
                let mut want = vec![0u8; full.len() / 4];
                nuq_kernels::pool::max_pool_u8_batch(&window, &full, images, &mut want).unwrap();
                let mut got = vec![0xAAu8; want.len()];
                conv.run_pooled(path, &x, images, &mut got, &mut scratch)
                    .unwrap();
                assert_eq!(
                    got, want,
                    "{path} threads {threads} side {side} c_out {c_out}"
                );
            }
        });
    }
}
