//! Every GEMM path against the scalar reference, bit for bit, over random shapes
//! (odd and tiny ones included) and random data; plus thread-count independence.

use nuq_kernels::{gemm, CodebookWeights, KernelError, KernelPath, PackedWeights, Weights};
use proptest::prelude::*;

const DIMS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![prop::sample::select(DIMS), 1usize..80]
}

fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    }
}

fn paths() -> Vec<KernelPath> {
    KernelPath::available()
        .into_iter()
        .filter(|&p| p != KernelPath::Scalar)
        .collect()
}

/// Runs `f` for the scalar path and every other available path on a fresh output filled
/// with a sentinel, and asserts all outputs are identical (untouched padding included).
fn compare(
    m: usize,
    n: usize,
    ldc: usize,
    f: impl Fn(KernelPath, &mut [i32]) -> Result<(), KernelError>,
) {
    let len = if m == 0 { 0 } else { (m - 1) * ldc + n };
    let mut want = vec![i32::MIN + 7; len + 3];
    f(KernelPath::Scalar, &mut want).unwrap();
    for path in paths() {
        let mut got = vec![i32::MIN + 7; len + 3];
        f(path, &mut got).unwrap();
        assert_eq!(got, want, "path {path} m={m} n={n}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn u8i8_matches_scalar(m in dim(), n in dim(), k in dim(), pad_a in 0usize..3, pad_c in 0usize..3, seed: u64) {
        let mut rng = lcg(seed);
        let lda = k + pad_a;
        let ldc = n + pad_c;
        let a: Vec<u8> = (0..(m - 1) * lda + k).map(|_| rng() as u8).collect();
        let w: Vec<i8> = (0..n * k).map(|_| rng() as u8 as i8).collect();
        let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap());
        compare(m, n, ldc, |path, c| gemm(path, &a, lda, m, &pw, c, ldc));
        // The reference itself is the definition.
        let mut c = vec![0; (m - 1) * ldc + n];
        gemm(KernelPath::Scalar, &a, lda, m, &pw, &mut c, ldc).unwrap();
        let (r, j) = (m - 1, n - 1);
        let s: i32 = (0..k).map(|kk| i32::from(a[r * lda + kk]) * i32::from(w[j * k + kk])).sum();
        prop_assert_eq!(c[r * ldc + j], s);
    }

    #[test]
    fn codebook_matches_scalar(
        m in dim(), n in dim(), k in dim(), bits in 2u8..=4, seed: u64,
    ) {
        let mut rng = lcg(seed);
        let levels = 1usize << bits;
        let cb: Vec<i8> = (0..levels).map(|_| rng() as u8 as i8).collect();
        let idx: Vec<u8> = (0..n * k).map(|_| (rng() as usize % levels) as u8).collect();
        let w = Weights::Codebook(CodebookWeights::pack(&idx, n, k, bits, &cb).unwrap());
        let a: Vec<u8> = (0..m * k).map(|_| rng() as u8).collect();
        compare(m, n, n, |path, c| gemm(path, &a, k, m, &w, c, n));
        // Codebook GEMM equals int8 GEMM on the decoded levels.
        let levels_w: Vec<i8> = (0..n * k).map(|i| w.level(i / k, i % k)).collect();
        let pw = Weights::Int8(PackedWeights::from_rows(&levels_w, n, k).unwrap());
        let mut c1 = vec![0; m * n];
        let mut c2 = vec![0; m * n];
        let best = KernelPath::best_available();
        gemm(best, &a, k, m, &pw, &mut c1, n).unwrap();
        gemm(best, &a, k, m, &w, &mut c2, n).unwrap();
        prop_assert_eq!(c1, c2);
    }
}

/// Every register-tile edge of every path, deterministically: row counts around the
/// 6- and 8-row tiles (and their tails), panels with 1..32 live columns (16-column halves
/// included), `k` in every residue mod 8 (the 2- and 3-bit layouts pad to 8), `lda > k`,
/// `ldc > n`, for int8 and 2-, 3-, 4-bit codebook weights at the extremes of their ranges.
#[test]
fn register_tile_edges_match_scalar() {
    let mut rng = lcg(11);
    for (case, &(m, n, k)) in [
        (1, 1, 1),
        (2, 8, 2),
        (3, 9, 3),
        (5, 15, 5),
        (6, 16, 6),
        (7, 17, 7),
        (8, 24, 8),
        (9, 31, 9),
        (13, 33, 10),
        (14, 47, 11),
        (15, 48, 12),
        (16, 49, 13),
        (19, 64, 14),
        (20, 65, 17),
        (29, 80, 31),
    ]
    .iter()
    .enumerate()
    {
        let (lda, ldc) = (k + 1 + case % 5, n + 2 + case % 3);
        // Activations near 255 and weights at ±127/−128 in about half the elements.
        let a: Vec<u8> = (0..(m - 1) * lda + k)
            .map(|_| {
                if rng().is_multiple_of(2) {
                    255
                } else {
                    rng() as u8
                }
            })
            .collect();
        let mut weights = vec![];
        let w8: Vec<i8> = (0..n * k)
            .map(|_| match rng() % 4 {
                0 => -128,
                1 => 127,
                _ => rng() as u8 as i8,
            })
            .collect();
        weights.push(Weights::Int8(PackedWeights::from_rows(&w8, n, k).unwrap()));
        for bits in 2u8..=4 {
            let levels = 1usize << bits;
            let mut cb: Vec<i8> = (0..levels).map(|_| rng() as u8 as i8).collect();
            cb[0] = -128;
            cb[levels - 1] = 127;
            let idx: Vec<u8> = (0..n * k)
                .map(|_| (rng() as usize % levels) as u8)
                .collect();
            weights.push(Weights::Codebook(
                CodebookWeights::pack(&idx, n, k, bits, &cb).unwrap(),
            ));
        }
        for w in &weights {
            compare(m, n, ldc, |path, c| gemm(path, &a, lda, m, w, c, ldc));
            // The reference is the definition, on the last element.
            let mut c = vec![0; (m - 1) * ldc + n];
            gemm(KernelPath::Scalar, &a, lda, m, w, &mut c, ldc).unwrap();
            let (r, j) = (m - 1, n - 1);
            let s: i32 = (0..k)
                .map(|kk| i32::from(a[r * lda + kk]) * i32::from(w.level(j, kk)))
                .sum();
            assert_eq!(c[r * ldc + j], s, "m={m} n={n} k={k}");
        }
    }
}

#[test]
fn result_independent_of_thread_count() {
    let (m, n, k) = (131, 97, 75);
    let mut rng = lcg(3);
    let a: Vec<u8> = (0..m * k).map(|_| rng() as u8).collect();
    let w: Vec<i8> = (0..n * k).map(|_| rng() as u8 as i8).collect();
    let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap());
    for path in KernelPath::available() {
        let mut outs = Vec::new();
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![0; m * n];
            pool.install(|| gemm(path, &a, k, m, &pw, &mut c, n))
                .unwrap();
            outs.push(c);
        }
        assert!(outs.windows(2).all(|w| w[0] == w[1]), "path {path}");
    }
}

#[test]
fn extreme_values_are_exact() {
    // All activations 255, all weights -128: the case where vpmaddubsw would saturate.
    let (m, n, k) = (9, 33, 1000);
    let a = vec![255u8; m * k];
    let w = vec![-128i8; n * k];
    let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap());
    for path in KernelPath::available() {
        let mut c = vec![0; m * n];
        gemm(path, &a, k, m, &pw, &mut c, n).unwrap();
        assert!(c.iter().all(|&v| v == -255 * 128 * 1000), "path {path}");
    }
}

#[test]
fn overflow_is_an_error_on_every_path() {
    let (m, n, k) = (1, 1, 70_000);
    let a = vec![255u8; k];
    let w = vec![-128i8; k];
    let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap());
    for path in KernelPath::available() {
        let mut c = vec![0; 1];
        assert!(matches!(
            gemm(path, &a, k, m, &pw, &mut c, n),
            Err(KernelError::AccumulatorOverflow { k: 70_000, .. })
        ));
        // Small actual activations pass the refined bound.
        let small = vec![1u8; k];
        gemm(path, &small, k, m, &pw, &mut c, n).unwrap();
        assert_eq!(c[0], -128 * 70_000);
    }
}

#[test]
fn shape_errors() {
    let pw = Weights::Int8(PackedWeights::from_rows(&[1; 6], 2, 3).unwrap());
    let mut c = vec![0; 4];
    assert!(matches!(
        gemm(KernelPath::Scalar, &[0; 5], 3, 2, &pw, &mut c, 2),
        Err(KernelError::SliceTooShort {
            what: "activations",
            expected: 6,
            found: 5
        })
    ));
    assert!(matches!(
        gemm(KernelPath::Scalar, &[0; 6], 2, 2, &pw, &mut c, 2),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        gemm(KernelPath::Scalar, &[0; 6], 3, 2, &pw, &mut c[..3], 2),
        Err(KernelError::SliceTooShort { what: "output", .. })
    ));
}

#[test]
fn large_outputs_match_scalar_aligned_or_not() {
    // ≥ 8 MiB of output switches the AVX-512 kernel to streaming stores for aligned
    // full-panel rows; check aligned and misaligned output starts.
    let (m, n, k) = (33_000, 64, 7);
    let mut rng = lcg(5);
    let a: Vec<u8> = (0..m * k).map(|_| rng() as u8).collect();
    let w: Vec<i8> = (0..n * k).map(|_| rng() as u8 as i8).collect();
    let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap());
    let mut want = vec![0; m * n];
    gemm(KernelPath::Scalar, &a, k, m, &pw, &mut want, n).unwrap();
    let mut buf = vec![0i32; m * n + 16];
    let aligned = buf.as_ptr().align_offset(64);
    for path in paths() {
        for off in [aligned, (aligned + 1) % 16] {
            buf.fill(-1);
            gemm(path, &a, k, m, &pw, &mut buf[off..off + m * n], n).unwrap();
            assert!(
                buf[off..off + m * n] == want[..],
                "path {path} offset {off}"
            );
        }
    }
}
