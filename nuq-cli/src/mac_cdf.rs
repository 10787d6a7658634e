//! The data of the paper's Figure 1 ("k-quantile quantization to discrete integer levels"),
//! per requantized layer of an integer model: the empirical distribution of the integer MAC
//! result (accumulator plus bias, exactly the value the MAC thresholds are compared with) on a
//! batch of images, its equal-mass boundaries and the model's MAC thresholds.
//!
//! The accumulators come from the same path as `nuq vectors --accumulators`: the integer
//! runner's per-node tensors, from which the pre-requantization value of every requantized
//! convolution and residual join is recomputed. Nothing here changes the model.
//!
//! Thresholds are per output channel. A figure shows one channel per layer: the channel whose
//! accumulator spread (the distance between its 5 % and 95 % empirical quantiles) is the median
//! over the layer's channels (the lower middle one for an even count), so the figure is
//! neither the tightest nor the widest channel; ties go to the lowest channel index.

use nuq_core::MacThresholds;
use nuq_fpga_fmt::Direction;
use nuq_kernels::KernelPath;
use nuq_nn::integer::{ConvOutput, IntegerModel, IntegerRunner, Node};

use crate::commands::vectors::{op_name, prerequant, Values};

/// Images the figures are computed on at most (the first ones of the calibration set).
pub const MAX_IMAGES: usize = 256;

/// One channel's accumulator distribution with its boundaries and thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelCdf {
    /// The output channel.
    pub channel: usize,
    /// How the channel's code counts thresholds.
    pub direction: Direction,
    /// The channel's MAC results over every image and position, ascending.
    pub samples: Vec<i64>,
    /// The equal-mass boundaries: for `k = 1..2^bits`, the empirical `k/2^bits` quantile of
    /// `samples` (the smallest sample whose empirical CDF reaches `k/2^bits`).
    pub boundaries: Vec<i64>,
    /// The model's thresholds of the channel, ascending (`2^bits - 1` of them).
    pub thresholds: Vec<i32>,
}

/// The figure data of one requantized layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCdf {
    /// The layer's name: its operation and node index (`conv3`, `add5`), as `nuq vectors`
    /// numbers them.
    pub name: String,
    /// Output code width.
    pub bits: u8,
    /// Output channels of the layer.
    pub channels: usize,
    /// The channel shown (see the module documentation for the choice).
    pub shown: ChannelCdf,
}

/// The empirical `q` quantile of ascending `sorted`: the smallest sample `x` with
/// `#{s ≤ x} ≥ q·n`. `None` for an empty sample.
pub fn empirical_quantile(sorted: &[i64], q: f64) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (q * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// The figure data of one channel: `samples` (any order) sorted, the `k/2^bits` empirical
/// quantiles for `k = 1..2^bits` and channel `c`'s row of `t`.
pub fn channel_cdf(mut samples: Vec<i64>, t: &MacThresholds, c: usize) -> ChannelCdf {
    samples.sort_unstable();
    let levels = 1usize << t.bits();
    let boundaries = (1..levels)
        .filter_map(|k| empirical_quantile(&samples, k as f64 / levels as f64))
        .collect();
    ChannelCdf {
        channel: c,
        direction: t.directions()[c],
        samples,
        boundaries,
        thresholds: t.row(c).to_vec(),
    }
}

/// The spread used to choose the shown channel: 95 % minus 5 % quantile.
fn spread(sorted: &[i64]) -> i64 {
    match (
        empirical_quantile(sorted, 0.05),
        empirical_quantile(sorted, 0.95),
    ) {
        (Some(lo), Some(hi)) => hi - lo,
        _ => 0,
    }
}

/// The channel of median spread among `per_channel` (each ascending).
fn median_spread_channel(per_channel: &[Vec<i64>]) -> usize {
    let mut order: Vec<(i64, usize)> = per_channel
        .iter()
        .enumerate()
        .map(|(c, s)| (spread(s), c))
        .collect();
    order.sort_unstable();
    order[(order.len() - 1) / 2].1
}

/// The figure data of every requantized layer (convolutions with threshold output and
/// residual joins) of `model`, in node order, on the `n` images `images` (NHWC bytes, as the
/// integer model reads them). Runs the integer model once on the batch; the caller bounds
/// `n` (the CLI uses at most [`MAX_IMAGES`]).
pub fn layer_cdfs(model: &IntegerModel, images: &[u8], n: usize) -> Result<Vec<LayerCdf>, String> {
    let mut runner = IntegerRunner::new(model, KernelPath::best_available())
        .map_err(|e| format!("cannot run the integer model for the plots: {e}"))?;
    let mut values: Vec<Values> = vec![Values::U8(images.to_vec())];
    runner
        .forward_with(images, n, &mut |_, _, data| values.push(Values::of(data)))
        .map_err(|e| format!("cannot run the integer model for the plots: {e}"))?;
    let mut layers = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let t = match node {
            Node::Conv(c) => match &c.output {
                ConvOutput::Codes(r) => &r.thresholds,
                ConvOutput::Accumulator => continue,
            },
            Node::Add(a) => &a.output.thresholds,
            _ => continue,
        };
        let Some(pre) = prerequant(model, i, &values, n) else {
            continue;
        };
        let channels = t.channels();
        if channels == 0 {
            continue;
        }
        let len = match &pre {
            Values::U8(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
        };
        let mut per_channel = vec![Vec::with_capacity(len / channels.max(1)); channels];
        for e in 0..len {
            per_channel[e % channels].push(pre.get(e));
        }
        for s in &mut per_channel {
            s.sort_unstable();
        }
        let c = median_spread_channel(&per_channel);
        let samples = std::mem::take(&mut per_channel[c]);
        layers.push(LayerCdf {
            name: format!("{}{i}", op_name(node)),
            bits: t.bits(),
            channels,
            shown: channel_cdf(samples, t, c),
        });
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_the_empirical_quantiles_and_thresholds_the_models() {
        // 2-bit codes, two channels; channel 1 falling.
        let t = MacThresholds::new(
            2,
            vec![-5, 0, 5, 10, 20, 30],
            vec![Direction::Rising, Direction::Falling],
        )
        .unwrap();
        // 0..100 shuffled: the k/4 quantiles are 24, 49, 74.
        let mut rng = nuq_nn::Rng::new(7);
        let mut samples: Vec<i64> = (0..100).collect();
        for i in (1..samples.len()).rev() {
            samples.swap(i, rng.below(i + 1));
        }
        let d = channel_cdf(samples, &t, 1);
        assert_eq!(d.samples, (0..100).collect::<Vec<_>>());
        assert_eq!(d.boundaries, vec![24, 49, 74]);
        assert_eq!(d.thresholds, vec![10, 20, 30]);
        assert_eq!(d.direction, Direction::Falling);
        // Each boundary is where the empirical CDF first reaches k/4.
        for (k, &b) in d.boundaries.iter().enumerate() {
            let below = d.samples.iter().filter(|&&s| s <= b).count() as f64 / 100.0;
            let strictly = d.samples.iter().filter(|&&s| s < b).count() as f64 / 100.0;
            let q = (k + 1) as f64 / 4.0;
            assert!(below >= q && strictly < q, "k={k}: {b}");
        }
    }

    #[test]
    fn the_shown_channel_has_the_median_spread() {
        let narrow: Vec<i64> = (0..100).collect();
        let mid: Vec<i64> = (0..100).map(|x| 3 * x).collect();
        let wide: Vec<i64> = (0..100).map(|x| 10 * x).collect();
        assert_eq!(median_spread_channel(&[wide, narrow, mid]), 2);
        assert_eq!(empirical_quantile(&[], 0.5), None);
    }
}
