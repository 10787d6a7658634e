//! The block kernels of the convolution's epilogue and the residual join — threshold blocks
//! to levels and the residual join to levels — on every path against their scalar
//! definitions, bit for bit.

use nuq_core::{Direction, FixedPointMultiplier, MacThresholds};
use nuq_kernels::residual_threshold::{ResidualThresholds, Shortcut};
use nuq_kernels::threshold::Thresholds;
use nuq_kernels::{KernelError, KernelPath};
use proptest::prelude::*;

mod common;
use common::lcg;

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn threshold_blocks_give_the_levels_of_the_scalar_codes(
        rows in 1usize..5, channels in 1usize..70, c0 in 0usize..4, width in 1usize..70, pad in 0usize..3, seed: u64,
    ) {
        // Every allowed width, in every case.
        for bits in 1u8..=8 {
            let mut rng = lcg(seed);
            let count = (1usize << bits) - 1;
            let c0 = (c0 * 16).min(channels.saturating_sub(1) / 16 * 16);
            let width = width.min(channels - c0);
            let directions: Vec<Direction> = (0..channels)
                .map(|_| if rng().is_multiple_of(3) { Direction::Falling } else { Direction::Rising })
                .collect();
            let mut table = Vec::new();
            for _ in 0..channels {
                let mut row: Vec<i32> = (0..count).map(|_| (rng() % 2001) as i32 - 1000).collect();
                row.sort_unstable();
                table.extend(row);
            }
            let t = Thresholds::new(&MacThresholds::new(bits, table.clone(), directions).unwrap());
            let levels: Vec<u8> = (0..=count).map(|_| rng() as u8).collect();
            let lda = width + pad;
            let acc: Vec<i32> = (0..rows * lda)
                .map(|_| match rng() % 5 {
                    0 => if rng().is_multiple_of(2) { i32::MIN } else { i32::MAX },
                    1 => table[rng() as usize % table.len()],
                    _ => (rng() % 2201) as i32 - 1100,
                })
                .collect();
            for path in KernelPath::available() {
                let ldo = width + 1;
                let mut out = vec![0xEEu8; rows * ldo];
                t.apply_levels_block(path, &acc, lda, rows, c0, width, &levels, &mut out, ldo).unwrap();
                for r in 0..rows {
                    for j in 0..width {
                        let want = levels[usize::from(t.quantize_one(c0 + j, acc[r * lda + j]))];
                        prop_assert_eq!(out[r * ldo + j], want, "{} r{} c{}", path, r, c0 + j);
                    }
                    prop_assert_eq!(out[r * ldo + width], 0xEE);
                }
            }
        }
    }

    #[test]
    fn residual_join_matches_its_definition(
        // Up to 200 rows: several of the AVX-512 join's L1 chunks of rows.
        rows in prop_oneof![1usize..5, 60usize..200], channels in 1usize..40, a_shift in 0u8..=30, levels_in: bool,
        moderate: bool, seed: u64,
    ) {
        // Every allowed width, in every case.
        for bits in 1u8..=8 {
            // `moderate` keeps every sum inside the i32 range (the narrowed fast path); otherwise
            // extremes push most vectors to the 64-bit count.
            let mut rng = lcg(seed);
            let count = (1usize << bits) - 1;
            let a_shift = if moderate { a_shift % 8 } else { a_shift };
            let wide = |rng: &mut dyn FnMut() -> u64| -> i32 {
                if moderate {
                    return (rng() % 4001) as i32 - 2000;
                }
                match rng() % 4 {
                    0 => if rng().is_multiple_of(2) { i32::MIN } else { i32::MAX },
                    1 => (rng() as u32) as i32,
                    _ => (rng() % 4001) as i32 - 2000,
                }
            };
            let multiplier: Vec<i32> = (0..channels).map(|_| wide(&mut rng)).collect();
            let shift: Vec<u8> = (0..channels)
                .map(|_| if moderate { (rng() % 12) as u8 } else { (rng() % 63) as u8 })
                .collect();
            let align: Vec<FixedPointMultiplier> = multiplier
                .iter()
                .zip(&shift)
                .map(|(&m, &s)| FixedPointMultiplier::new(m, s).unwrap())
                .collect();
            let directions: Vec<Direction> = (0..channels)
                .map(|_| if rng().is_multiple_of(3) { Direction::Falling } else { Direction::Rising })
                .collect();
            let mut thresholds: Vec<i32> = (0..channels * count)
                .map(|_| match rng() % 4 {
                    3 if moderate => ((rng() % 4001) as i32 - 2000) << (rng() % 8),
                    0 => (rng() as i32) >> (rng() % 30),
                    1 => -((rng() as i32) >> (rng() % 30)).saturating_abs(),
                    _ => (rng() % 4001) as i32 - 2000,
                })
                .collect();
            for row in thresholds.chunks_mut(count) {
                row.sort_unstable();
            }
            let mac = MacThresholds::new(bits, thresholds, directions).unwrap();
            let levels: Vec<u8> = (0..=count).map(|_| rng() as u8).collect();
            let rt = ResidualThresholds::new(a_shift, &align, &mac, &levels).unwrap();
            let len = rows * channels;
            let a: Vec<i32> = (0..len).map(|_| wide(&mut rng)).collect();
            let b32: Vec<i32> = (0..len).map(|_| wide(&mut rng)).collect();
            let b8: Vec<u8> = (0..len).map(|_| rng() as u8).collect();
            let (b, bv): (Shortcut<'_>, Vec<i64>) = if levels_in {
                (Shortcut::Levels(&b8), b8.iter().map(|&v| i64::from(v)).collect())
            } else {
                (Shortcut::Int32(&b32), b32.iter().map(|&v| i64::from(v)).collect())
            };
            // The definition, written out independently of the kernel's helpers.
            let want: Vec<u8> = (0..len)
                .map(|j| {
                    let c = j % channels;
                    let (m, s) = (i64::from(multiplier[c]), u32::from(shift[c]));
                    let aligned = if s == 0 { bv[j] * m } else { (bv[j] * m + (1i64 << (s - 1))) >> s };
                    let sum = (i64::from(a[j]) << a_shift) + aligned;
                    let row = mac.row(c);
                    let code = if mac.directions()[c] == Direction::Falling {
                        row.iter().filter(|&&t| sum <= i64::from(t)).count()
                    } else {
                        row.iter().filter(|&&t| sum >= i64::from(t)).count()
                    };
                    levels[code]
                })
                .collect();
            for path in KernelPath::available() {
                let mut got = vec![0u8; len];
                rt.apply(path, &a, b, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{}", path);
            }
        }
    }
}

#[test]
fn block_kernels_reject_bad_shapes() {
    let p = KernelPath::Scalar;
    let t =
        Thresholds::new(&MacThresholds::new(1, vec![0; 20], vec![Direction::Rising; 20]).unwrap());
    let acc = [0i32; 40];
    let mut out = [0u8; 40];
    assert!(matches!(
        t.apply_levels_block(p, &acc, 20, 2, 8, 4, &[0, 1], &mut out, 20),
        Err(KernelError::Unsupported { .. })
    ));
    assert!(matches!(
        t.apply_levels_block(p, &acc, 20, 2, 16, 8, &[0, 1], &mut out, 20),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        t.apply_levels_block(p, &acc, 20, 2, 0, 20, &[0, 1, 2], &mut out, 20),
        Err(KernelError::ShapeMismatch { .. })
    ));
    let one = MacThresholds::new(1, vec![0], vec![Direction::Rising]).unwrap();
    let unit = FixedPointMultiplier::new(1, 0).unwrap();
    assert!(ResidualThresholds::new(31, &[unit], &one, &[0, 1]).is_err());
    // A shift above 62 is no longer expressible: the factor's constructor refuses it.
    assert!(FixedPointMultiplier::new(1, 63).is_err());
    assert!(ResidualThresholds::new(0, &[unit; 2], &one, &[0, 1]).is_err());
    let two = MacThresholds::new(1, vec![0, 0], vec![Direction::Rising; 2]).unwrap();
    let rt = ResidualThresholds::new(0, &[unit; 2], &two, &[0, 1]).unwrap();
    assert!(matches!(
        rt.apply(p, &[0; 3], Shortcut::Levels(&[0; 3]), &mut [0; 3]),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        rt.apply(p, &[0; 4], Shortcut::Int32(&[0; 2]), &mut [0; 4]),
        Err(KernelError::ShapeMismatch { .. })
    ));
}
