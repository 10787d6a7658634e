//! Threshold requantization (the convolution's epilogue): every path against the scalar
//! definition, bit for bit, for every code width.

use nuq_core::{Direction, MacThresholds};
use nuq_kernels::threshold::Thresholds;
use nuq_kernels::KernelPath;
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn thresholds_match_scalar(rows in 1usize..6, channels in 1usize..40, seed: u64) {
        // Every allowed width, in every case.
        for bits in 1u8..=8 {
            let mut rng = lcg(seed);
            let count = (1usize << bits) - 1;
            let mut table = Vec::new();
            let directions: Vec<Direction> = (0..channels)
                .map(|_| if rng().is_multiple_of(2) { Direction::Falling } else { Direction::Rising })
                .collect();
            for _ in 0..channels {
                let mut row: Vec<i32> = (0..count).map(|_| (rng() % 2001) as i32 - 1000).collect();
                row.sort_unstable();
                table.extend(row);
            }
            let t = Thresholds::new(&MacThresholds::new(bits, table.clone(), directions).unwrap());
            // Accumulators near the thresholds, equal to them, and at the i32 extremes.
            let acc: Vec<i32> = (0..rows * channels)
                .map(|i| match rng() % 5 {
                    0 => table[(i % channels) * count + (rng() as usize % count)],
                    1 => if rng().is_multiple_of(2) { i32::MIN } else { i32::MAX },
                    _ => (rng() % 2201) as i32 - 1100,
                })
                .collect();
            let want: Vec<u8> = acc.iter().enumerate().map(|(i, &v)| t.quantize_one(i % channels, v)).collect();
            // Levels equal to the codes.
            let levels: Vec<u8> = (0..=count).map(|c| c as u8).collect();
            for path in KernelPath::available() {
                let mut got = vec![0u8; acc.len()];
                t.apply_levels_block(path, &acc, channels, rows, 0, channels, &levels, &mut got, channels).unwrap();
                prop_assert_eq!(&got, &want, "path {}", path);
            }
        }
    }
}
