//! Property tests of the invariants every nuq crate relies on.

use nuq_core::{
    packed_len, Calibration, Codebook, Grid, PackedIndices, QuantizedTensor, Quantizer, Scale,
    Scales,
};
use proptest::prelude::*;

/// A random valid codebook: any grid, any index width, 1..=2^b distinct levels.
fn codebook() -> impl Strategy<Value = Codebook> {
    (
        2u8..=16,
        any::<bool>(),
        1u8..=8,
        prop::collection::vec(any::<u32>(), 1..300),
    )
        .prop_map(|(gbits, signed, bits, raw)| {
            let grid = Grid::new(gbits, signed).unwrap();
            let size = grid.size() as u32;
            let mut levels: Vec<i32> = raw.iter().map(|r| grid.min() + (r % size) as i32).collect();
            levels.sort_unstable();
            levels.dedup();
            levels.truncate(1 << bits);
            Codebook::explicit(grid, bits, &levels).unwrap()
        })
}

/// The largest `f32` below finite `x` (`f32::next_down` needs Rust 1.86; MSRV is 1.85).
fn next_below(x: f32) -> f32 {
    if x == 0.0 {
        -f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else {
        f32::from_bits(x.to_bits() + 1)
    }
}

/// The packing layout by definition: stream bit k is bit k % 8 of byte k / 8.
fn reference_pack(indices: &[u8], bits: u8) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(indices.len(), bits)];
    for (i, &v) in indices.iter().enumerate() {
        for j in 0..bits as usize {
            if v >> j & 1 == 1 {
                let k = i * bits as usize + j;
                out[k / 8] |= 1 << (k % 8);
            }
        }
    }
    out
}

fn indices_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (1u8..=8).prop_flat_map(|bits| {
        let top = ((1u16 << bits) - 1) as u8;
        (Just(bits), prop::collection::vec(0..=top, 0..200))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packing_round_trips_and_matches_the_layout((bits, idx) in indices_strategy()) {
        let p = PackedIndices::pack(&idx, bits).unwrap();
        let want = reference_pack(&idx, bits);
        prop_assert_eq!(p.as_bytes(), want.as_slice());
        prop_assert_eq!(p.as_bytes().len(), packed_len(idx.len(), bits));
        prop_assert_eq!(p.unpack(), idx.clone());
        prop_assert_eq!(p.iter().collect::<Vec<_>>(), idx.clone());
        for (i, &v) in idx.iter().enumerate() {
            prop_assert_eq!(p.get(i), Some(v));
        }
        let again = PackedIndices::from_bytes(bits, idx.len(), p.as_bytes().to_vec()).unwrap();
        prop_assert_eq!(again, p);
    }

    #[test]
    fn nearest_is_optimal_with_ties_up(cb in codebook(), x in -70000.0f32..70000.0) {
        let l = cb.levels();
        let i = cb.nearest(x) as usize;
        let d = (x as f64 - l[i] as f64).abs();
        for (j, &lj) in l.iter().enumerate() {
            let dj = (x as f64 - lj as f64).abs();
            prop_assert!(d <= dj, "level {} is nearer than {}", lj, l[i]);
            if dj == d && j > i {
                prop_assert!(false, "tie must go to the upper level {}", lj);
            }
        }
    }

    #[test]
    fn nearest_on_integers_and_half_integers(cb in codebook(), v in -66000i32..66000) {
        // Exact ties happen at half-integers; check the brute-force rule there too.
        for x in [v as f32, v as f32 + 0.5] {
            let l = cb.levels();
            let best = (0..l.len())
                .rev()
                .min_by(|&a, &b| {
                    let da = (x as f64 - l[a] as f64).abs();
                    let db = (x as f64 - l[b] as f64).abs();
                    da.partial_cmp(&db).unwrap()
                })
                .unwrap();
            prop_assert_eq!(cb.nearest(x) as usize, best);
        }
        prop_assert_eq!(cb.index_of_integer(v), cb.nearest(v as f32));
    }

    #[test]
    fn thresholds_agree_with_nearest(cb in codebook()) {
        let t = cb.thresholds();
        prop_assert_eq!(t.len(), cb.len() - 1);
        for (i, &ti) in t.iter().enumerate() {
            prop_assert_eq!(cb.nearest(ti) as usize, i + 1);
            prop_assert_eq!(cb.nearest(next_below(ti)) as usize, i);
        }
        for (i, (&ti, &di)) in t.iter().zip(&cb.doubled_thresholds()).enumerate() {
            prop_assert_eq!(ti * 2.0, di as f32, "threshold {}", i);
        }
        for (i, &ti) in cb.integer_thresholds().iter().enumerate() {
            prop_assert_eq!(cb.index_of_integer(ti) as usize, i + 1);
            prop_assert_eq!(cb.index_of_integer(ti - 1) as usize, i);
        }
    }

    #[test]
    fn quantization_is_monotone(cb in codebook(), mut xs in prop::collection::vec(-1e5f32..1e5, 0..300),
                                scale in 1e-3f32..10.0) {
        xs.sort_by(f32::total_cmp);
        let q = QuantizedTensor::quantize(&xs, &[xs.len()], &cb, Scale::new(scale).unwrap()).unwrap();
        let idx = q.indices().unpack();
        prop_assert!(idx.windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(idx.iter().all(|&i| (i as usize) < cb.len()));
    }

    /// Every [`nuq_core::Real`] type quantizes as its `f32` conversion does, and dequantizes
    /// to the conversion of the `f32` values.
    #[test]
    fn every_real_type_goes_through_f32(cb in codebook(), xs in prop::collection::vec(-1e4f64..1e4, 0..700),
                                        scale in 1e-3f32..100.0) {
        use half::{bf16, f16};
        let s = Scale::new(scale).unwrap();
        let n = [xs.len()];
        let as32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let q32 = QuantizedTensor::quantize(&as32, &n, &cb, s).unwrap();
        let idx = |q: QuantizedTensor| q.indices().unpack();
        prop_assert_eq!(idx(QuantizedTensor::quantize(&xs, &n, &cb, s).unwrap()), q32.indices().unpack());
        let h: Vec<f16> = as32.iter().map(|&v| f16::from_f32(v)).collect();
        let h32: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
        prop_assert_eq!(idx(QuantizedTensor::quantize(&h, &n, &cb, s).unwrap()),
                        idx(QuantizedTensor::quantize(&h32, &n, &cb, s).unwrap()));
        let b: Vec<bf16> = as32.iter().map(|&v| bf16::from_f32(v)).collect();
        let b32: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
        prop_assert_eq!(idx(QuantizedTensor::quantize(&b, &n, &cb, s).unwrap()),
                        idx(QuantizedTensor::quantize(&b32, &n, &cb, s).unwrap()));
        let back = q32.dequantize();
        let wide: Vec<f64> = q32.dequantize_as();
        prop_assert!(wide.iter().zip(&back).all(|(&w, &v)| w == f64::from(v)));
        let q = Quantizer::new(&cb, s);
        let mut direct = vec![0u8; xs.len()];
        q.quantize(&xs, &mut direct).unwrap();
        prop_assert_eq!(direct, q32.indices().unpack());
        let mut fake = h.clone();
        q.fake_quantize(&mut fake).unwrap();
        let mut fake32 = h32.clone();
        q.fake_quantize(&mut fake32).unwrap();
        prop_assert!(fake.iter().zip(&fake32).all(|(a, &b)| *a == f16::from_f32(b)));
    }

    #[test]
    fn quantize_is_idempotent(cb in codebook(), xs in prop::collection::vec(-1e4f32..1e4, 0..300),
                              scale in 1e-4f32..100.0) {
        let s = Scale::new(scale).unwrap();
        let q = QuantizedTensor::quantize(&xs, &[xs.len()], &cb, s).unwrap();
        let back = q.dequantize();
        let q2 = QuantizedTensor::quantize(&back, &[back.len()], &cb, s).unwrap();
        prop_assert_eq!(q2.indices(), q.indices());
        prop_assert_eq!(q2.dequantize(), back);
    }

    #[test]
    fn tensor_matches_codebook_and_quantizer(cb in codebook(), xs in prop::collection::vec(-1e4f32..1e4, 0..1200),
                                             scale in 1e-3f32..100.0) {
        let s = Scale::new(scale).unwrap();
        let q = QuantizedTensor::quantize(&xs, &[xs.len()], &cb, s).unwrap();
        let idx = q.indices().unpack();
        for (&x, &i) in xs.iter().zip(&idx) {
            prop_assert_eq!(i, cb.nearest(x / scale));
        }
        let levels = q.integer_levels();
        let deq = q.dequantize();
        for ((&i, &l), &d) in idx.iter().zip(&levels).zip(&deq) {
            prop_assert_eq!(l, cb.levels()[i as usize]);
            prop_assert_eq!(d, l as f32 * scale);
        }
        let mut fake = xs.clone();
        Quantizer::new(&cb, s).fake_quantize(&mut fake).unwrap();
        prop_assert_eq!(fake, deq);
    }

    #[test]
    fn per_channel_equals_per_slice(cb in codebook(), channels in 1usize..9, per in 0usize..40,
                                    seed in any::<u64>()) {
        let mut rng = nuq_core::Rng::new(seed);
        let xs: Vec<f32> = (0..channels * per).map(|_| (rng.normal() * 50.0) as f32).collect();
        let scales: Vec<Scale> = (0..channels)
            .map(|_| Scale::new(0.01 + rng.next_f64() as f32).unwrap())
            .collect();
        let q = QuantizedTensor::quantize(&xs, &[channels, per], &cb, Scales::per_channel(scales.clone())).unwrap();
        let deq = q.dequantize();
        for c in 0..channels {
            let slice = &xs[c * per..(c + 1) * per];
            let qc = QuantizedTensor::quantize(slice, &[per], &cb, scales[c]).unwrap();
            let got = qc.dequantize();
            prop_assert_eq!(got.as_slice(), &deq[c * per..(c + 1) * per]);
        }
    }

    #[test]
    fn max_abs_never_clips(cb in codebook(), xs in prop::collection::vec(-1e3f32..1e3, 1..200)) {
        let s = Calibration::MaxAbs.scale(&xs, &cb).unwrap().get() as f64;
        let lo = cb.levels()[0] as f64 * s;
        let hi = *cb.levels().last().unwrap() as f64 * s;
        for &x in &xs {
            let x = x as f64;
            if x > 0.0 && hi > 0.0 {
                prop_assert!(x <= hi * (1.0 + 1e-6), "{} clipped above {}", x, hi);
            }
            if x < 0.0 && lo < 0.0 {
                prop_assert!(x >= lo * (1.0 + 1e-6), "{} clipped below {}", x, lo);
            }
        }
    }

    #[test]
    fn mse_optimal_is_no_worse_than_max_abs(cb in codebook(), seed in any::<u64>()) {
        let mut rng = nuq_core::Rng::new(seed);
        let xs: Vec<f32> = (0..300).map(|_| (rng.normal() * rng.normal()) as f32).collect();
        let mse = |s: Scale| QuantizedTensor::quantize(&xs, &[300], &cb, s).unwrap().error_stats(&xs).unwrap().mse;
        let best = Calibration::MseOptimal.scale(&xs, &cb).unwrap();
        let max_abs = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
        prop_assert!(mse(best) <= mse(max_abs) * (1.0 + 1e-6) + 1e-12);
    }
}

/// The case proptest found on 2026-12-07 (a 15-level unsigned codebook, heavy-tailed data):
/// the search's candidates straddled the max-abs scale and ended a hair worse than it.
#[test]
fn mse_optimal_is_no_worse_than_max_abs_found_case() {
    let mut levels: Vec<i32> = (0..=13).collect();
    levels.push(15);
    let cb = Codebook::explicit(Grid::new(4, false).unwrap(), 4, &levels).unwrap();
    let mut rng = nuq_core::Rng::new(7411154849332190977);
    let xs: Vec<f32> = (0..300)
        .map(|_| (rng.normal() * rng.normal()) as f32)
        .collect();
    let mse = |s: Scale| {
        QuantizedTensor::quantize(&xs, &[300], &cb, s)
            .unwrap()
            .error_stats(&xs)
            .unwrap()
            .mse
    };
    let best = Calibration::MseOptimal.scale(&xs, &cb).unwrap();
    let max_abs = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
    assert!(
        mse(best) <= mse(max_abs) * (1.0 + 1e-6) + 1e-12,
        "{} > {}",
        mse(best),
        mse(max_abs)
    );
}
