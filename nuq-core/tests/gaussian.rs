//! The `lloyd_max` example's acceptance check, on fewer samples: codebooks fitted to seeded
//! N(0, 1) data and snapped to the signed 8-bit grid reach Max's optimum.

use nuq_core::{
    Calibration, Codebook, EmpiricalDistribution, Grid, LloydMaxOptions, Polarity, QuantizedTensor,
    Rng,
};

/// Max (1960): minimum MSE of 2, 4, 8, 16 levels for N(0, 1).
const OPTIMUM: [f64; 4] = [0.3634, 0.1175, 0.03454, 0.009497];
/// Max (1960): the best uniform quantizer's MSE at 2, 4, 8, 16 levels.
const BEST_UNIFORM: [f64; 4] = [0.3634, 0.1188, 0.03744, 0.01154];

fn measure(samples: &[f32], dist: &EmpiricalDistribution, cb: &Codebook) -> f64 {
    let scale = Calibration::MseOptimal
        .scale_for_distribution(dist, cb)
        .unwrap();
    let q = QuantizedTensor::quantize(samples, &[samples.len()], cb, scale).unwrap();
    q.error_stats(samples).unwrap().mse
}

#[test]
fn gaussian_codebooks_reach_the_lloyd_max_optimum() {
    let mut rng = Rng::new(2024);
    let samples: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32).collect();
    let dist = EmpiricalDistribution::from_values(&samples).unwrap();
    // Sampling noise on the variance of 2·10^5 samples is ~0.3 %; the grid adds < 0.5 %.
    for bits in 1..=4u8 {
        let opt = OPTIMUM[bits as usize - 1];
        let fit = Codebook::lloyd_max(Grid::I8, bits, &dist, &LloydMaxOptions::default()).unwrap();
        assert_eq!(fit.codebook.len(), 1 << bits);
        let lloyd = measure(&samples, &dist, &fit.codebook);
        // The fit's own MSE is the end-to-end one, up to f32 rounding of the scale.
        assert!(
            (fit.mse / lloyd - 1.0).abs() < 1e-3,
            "{} vs {lloyd}",
            fit.mse
        );
        let ratio = lloyd / opt;
        assert!(
            (0.985..=1.01).contains(&ratio),
            "lloyd {bits}-bit ratio {ratio}"
        );

        let uniform = measure(
            &samples,
            &dist,
            &Codebook::uniform(Grid::I8, bits, Polarity::SignedMidrise).unwrap(),
        );
        let u_ratio = uniform / BEST_UNIFORM[bits as usize - 1];
        assert!(
            (0.985..=1.015).contains(&u_ratio),
            "uniform {bits}-bit ratio {u_ratio}"
        );
        assert!(
            lloyd <= uniform * 1.0001,
            "Lloyd-Max must not lose to uniform at {bits} bits"
        );

        let kq = measure(
            &samples,
            &dist,
            &Codebook::k_quantile(Grid::I8, bits, &dist)
                .unwrap()
                .codebook,
        );
        assert!(
            lloyd <= kq * 1.0001,
            "Lloyd-Max must not lose to k-quantile at {bits} bits"
        );
    }
}
