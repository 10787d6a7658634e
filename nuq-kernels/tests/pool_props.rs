//! Pooling properties: max-pool picks the window maximum over real (unpadded) pixels;
//! global average pool rounds to nearest with ties up.

use nuq_kernels::pool::{global_avg_pool_u8, max_pool_u8, PoolGeometry};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn max_pool_is_window_max(
        batch in 1usize..3, height in 1usize..8, width in 1usize..8, channels in 1usize..20,
        (kernel, stride, pad) in prop::sample::select(vec![(2usize, 2usize, 0usize), (3, 2, 1), (3, 1, 1), (1, 1, 0)]),
        seed: u64,
    ) {
        prop_assume!(height + 2 * pad >= kernel && width + 2 * pad >= kernel);
        let g = PoolGeometry { batch, height, width, channels, kernel, stride, pad };
        let mut s = seed;
        let x: Vec<u8> = (0..batch * height * width * channels)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 56) as u8
            })
            .collect();
        let (oh, ow) = (g.out_height(), g.out_width());
        let mut out = vec![0u8; batch * oh * ow * channels];
        max_pool_u8(&g, &x, &mut out).unwrap();
        for b in 0..batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for c in 0..channels {
                        let mut window = Vec::new();
                        for ky in 0..kernel {
                            for kx in 0..kernel {
                                let (iy, ix) = ((oy * stride + ky) as isize - pad as isize, (ox * stride + kx) as isize - pad as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < height && (ix as usize) < width {
                                    window.push(x[((b * height + iy as usize) * width + ix as usize) * channels + c]);
                                }
                            }
                        }
                        prop_assert_eq!(out[((b * oh + oy) * ow + ox) * channels + c], *window.iter().max().unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn global_average_rounds_half_up(values in prop::collection::vec(any::<u8>(), 1..40), channels in 1usize..4, batch in 1usize..3) {
        let hw = values.len();
        let input: Vec<u8> = (0..batch)
            .flat_map(|b| values.iter().flat_map(move |&v| (0..channels).map(move |c| v.wrapping_add((b + c) as u8))))
            .collect();
        let mut out = vec![0u8; batch * channels];
        global_avg_pool_u8(&input, batch, hw, channels, &mut out).unwrap();
        for b in 0..batch {
            for c in 0..channels {
                let img = &input[b * hw * channels..(b + 1) * hw * channels];
                let sum: u64 = img.iter().skip(c).step_by(channels).map(|&v| u64::from(v)).sum();
                // |sum/hw − q| ≤ 1/2, and a tie goes up.
                let q = u64::from(out[b * channels + c]);
                let err2 = (2 * sum).abs_diff(2 * q * hw as u64);
                prop_assert!(err2 <= hw as u64);
                if err2 == hw as u64 {
                    prop_assert!(q * hw as u64 > sum);
                }
            }
        }
    }
}
