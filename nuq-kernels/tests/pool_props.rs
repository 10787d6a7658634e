//! Pooling properties: max-pool picks the window maximum;
//! global average pool rounds to nearest with ties up.

use nuq_kernels::pool::{global_avg_pool_u8, max_pool_u8, max_pool_u8_batch};
use nuq_kernels::Window;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn max_pool_is_window_max(
        height in 1usize..8, width in 1usize..8, channels in 1usize..20,
        (kernel, stride) in prop::sample::select(vec![(2usize, 2usize), (3, 2), (3, 1), (1, 1)]),
        pad in 0usize..2,
        seed: u64,
    ) {
        let padding = pad.min(kernel / 2);
        prop_assume!(height.min(width) + 2 * padding >= kernel);
        let g = Window { height, width, channels, kernel, stride, padding, dilation: 1 };
        let mut s = seed;
        let x: Vec<u8> = (0..height * width * channels)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 56) as u8
            })
            .collect();
        let (oh, ow) = (g.out_height(), g.out_width());
        let mut out = vec![0u8; oh * ow * channels];
        max_pool_u8(&g, &x, &mut out).unwrap();
        for (p, o) in out.chunks_exact(channels).enumerate() {
            let (oy, ox) = (p / ow, p % ow);
            for (c, &o) in o.iter().enumerate() {
                // Positions in padded coordinates; padded ones are skipped (never win).
                let window = (0..kernel * kernel).filter_map(|t| {
                    let (py, px) = (oy * stride + t / kernel, ox * stride + t % kernel);
                    let (iy, ix) = (py.checked_sub(padding)?, px.checked_sub(padding)?);
                    (iy < height && ix < width).then(|| x[(iy * width + ix) * channels + c])
                });
                prop_assert_eq!(o, window.max().unwrap());
            }
        }
        let bad = Window { kernel: height.min(width) + 2 * padding + 1, ..g };
        prop_assert!(max_pool_u8(&bad, &x, &mut out).is_err());
        let too_much_padding = Window { padding: kernel / 2 + 1, ..g };
        prop_assert!(max_pool_u8(&too_much_padding, &x, &mut out).is_err());
    }

    /// The batch max-pool (row blocks across threads, blocks that span images) is the
    /// per-image one.
    #[test]
    fn batch_max_pool_is_per_image_max_pool(
        height in 1usize..12, width in 1usize..40, channels in 1usize..300,
        (kernel, stride) in prop::sample::select(vec![(2usize, 2usize), (3, 2), (3, 1)]),
        images in 1usize..5, threads in 1usize..4, seed: u64,
    ) {
        let padding = kernel / 2;
        let g = Window { height, width, channels, kernel, stride, padding, dilation: 1 };
        let mut s = seed;
        let x: Vec<u8> = (0..images * height * width * channels)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 56) as u8
            })
            .collect();
        let len = g.out_height() * g.out_width() * channels;
        let mut want = vec![0u8; images * len];
        for (o, x) in want.chunks_exact_mut(len).zip(x.chunks_exact(height * width * channels)) {
            max_pool_u8(&g, x, o).unwrap();
        }
        let mut got = vec![0xAAu8; images * len];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| max_pool_u8_batch(&g, &x, images, &mut got)).unwrap();
        prop_assert_eq!(got, want);
        prop_assert!(max_pool_u8_batch(&g, &x[1..], images, &mut vec![0; images * len]).is_err());
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
