//! Codebooks fitted to a Gaussian, snapped to the signed 8-bit grid, against Max's optimum.
//!
//! Draws 10^6 seeded N(0, 1) samples, builds each codebook family at 1–4 bits on the grid
//! `-127..=127`, picks its MSE-optimal scale, quantizes the samples end to end through
//! `QuantizedTensor`, and prints one line per method and width:
//!
//! ```text
//! gaussian method=lloyd bits=3 mse=0.034612 optimum=0.034540 ratio=1.0021
//! ```
//!
//! `optimum` is the minimum MSE of a quantizer with `2^bits` levels for a unit Gaussian
//! (Max, 1960). Methods: `lloyd` (Lloyd–Max fit), `kquantile` (equal-mass bins), `apot`
//! (signed APoT weights, 2–4 bits: 1 bit has no signed APoT form), `uniform` (mid-rise,
//! `2^bits` levels) and `mulaw` (mid-rise μ-law, the best μ of a sweep).
//!
//! `cargo run --release -p nuq-core --example lloyd_max [samples]`

use nuq_core::{
    Calibration, Codebook, EmpiricalDistribution, Grid, LloydMaxOptions, Polarity, QuantizedTensor,
    Rng,
};

/// Max (1960): minimum MSE of 2, 4, 8, 16 levels for N(0, 1).
const OPTIMUM: [f64; 4] = [0.3634, 0.1175, 0.03454, 0.009497];
const MU_SWEEP: [f32; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 255.0];

/// The end-to-end MSE of `codebook` at its MSE-optimal scale.
fn measure(
    samples: &[f32],
    dist: &EmpiricalDistribution,
    codebook: &Codebook,
) -> nuq_core::Result<f64> {
    let scale = Calibration::MseOptimal.scale_for_distribution(dist, codebook)?;
    let q = QuantizedTensor::quantize(samples, &[samples.len()], codebook, scale)?;
    Ok(q.error_stats(samples)?.mse)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000_000,
    };
    let mut rng = Rng::new(0x6E75_715F_6761_7573);
    let samples: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let dist = EmpiricalDistribution::from_values(&samples)?;
    let grid = Grid::I8;
    for method in ["lloyd", "kquantile", "apot", "uniform", "mulaw"] {
        for bits in 1..=4u8 {
            let mse = match method {
                "lloyd" => {
                    let fit = Codebook::lloyd_max(grid, bits, &dist, &LloydMaxOptions::default())?;
                    measure(&samples, &dist, &fit.codebook)?
                }
                "kquantile" => {
                    let fit = Codebook::k_quantile(grid, bits, &dist)?;
                    measure(&samples, &dist, &fit.codebook)?
                }
                "apot" => match Codebook::apot(grid, bits, Polarity::Signed) {
                    Ok(cb) => measure(&samples, &dist, &cb)?,
                    Err(nuq_core::Error::UnsupportedBits { .. }) => continue,
                    Err(e) => return Err(e.into()),
                },
                "uniform" => {
                    let cb = Codebook::uniform(grid, bits, Polarity::SignedMidrise)?;
                    measure(&samples, &dist, &cb)?
                }
                _ => {
                    let mut best = f64::INFINITY;
                    for mu in MU_SWEEP {
                        // Large μ crowds 16 levels too close to zero for 255 grid values.
                        match Codebook::mu_law(grid, bits, Polarity::SignedMidrise, mu) {
                            Ok(cb) => best = best.min(measure(&samples, &dist, &cb)?),
                            Err(nuq_core::Error::GridTooCoarse { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    best
                }
            };
            let optimum = OPTIMUM[bits as usize - 1];
            println!(
                "gaussian method={method} bits={bits} mse={mse:.6} optimum={optimum:.6} ratio={:.4}",
                mse / optimum
            );
        }
    }
    Ok(())
}
