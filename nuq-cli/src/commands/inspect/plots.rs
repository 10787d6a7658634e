//! SVG plots of a model for `nuq inspect --plot DIR`:
//!
//! - per layer with weights, the histogram of its integer weight levels (each weight index
//!   decoded through the layer's weight codebook), with every codebook level drawn as a
//!   vertical line so that unused levels show too;
//! - per MAC-threshold table, every channel's thresholds (one line per threshold index), with
//!   the channels whose direction is falling shaded.

use nuq_core::MacThresholds;
use nuq_fpga_fmt::model::{Codebook, Layer, Model, WeightTensor};
use nuq_fpga_fmt::Direction;
use plotters::prelude::*;

/// Plot size in pixels.
pub(crate) const SIZE: (u32, u32) = (900, 540);

/// Threshold plots mark every point up to this many channels; wider tables get lines only,
/// which keeps the SVG small and readable.
const MARKED_CHANNELS: usize = 64;

/// One rendered plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File name (`layer1_conv_weights.svg`, `thresholds0.svg`).
    pub file_name: String,
    /// The SVG document.
    pub svg: String,
}

/// Keeps the characters that are safe in a file name on every system.
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn draw_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("cannot draw the {what} plot: {e}")
}

/// How often each codebook level occurs among the weights: `(level, count)` in level order.
fn level_counts(w: &WeightTensor, cb: &Codebook) -> Vec<(i32, u64)> {
    let mut counts = vec![0u64; cb.levels.len()];
    for &k in &w.indices {
        if let Some(n) = counts.get_mut(usize::from(k)) {
            *n += 1;
        }
    }
    cb.levels.iter().copied().zip(counts).collect()
}

/// The weight-level histogram of `layer`.
fn weight_plot(
    layer_index: usize,
    layer: &Layer,
    w: &WeightTensor,
    cb: &Codebook,
) -> Result<Plot, String> {
    let what = format!("weights of layer {layer_index} ({})", layer.name);
    let counts = level_counts(w, cb);
    let lo = f64::from(cb.levels.iter().copied().min().unwrap_or(0));
    let hi = f64::from(cb.levels.iter().copied().max().unwrap_or(0));
    let gap = cb
        .levels
        .windows(2)
        .map(|p| f64::from(p[1]) - f64::from(p[0]))
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let gap = if gap.is_finite() { gap } else { 1.0 };
    let half_bar = 0.35 * gap;
    let margin = ((hi - lo) * 0.05).max(gap);
    // Headroom above the tallest bar keeps the legend clear of the data.
    let tallest = counts.iter().map(|&(_, n)| n).max().unwrap_or(0) as f64;
    let top = tallest * 1.3 + 1.0;
    let line_top = tallest * 1.08 + 0.5;
    let kind = cb.family().map_or("unknown", |k| k.name());
    let caption = format!(
        "{}: {} weights, {}-bit {kind} codebook (grid {} bits, {})",
        layer.name,
        w.indices.len(),
        cb.bits,
        cb.grid_bits,
        if cb.signed { "signed" } else { "unsigned" }
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&what, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((lo - margin)..(hi + margin), 0.0..top)
            .map_err(|e| draw_error(&what, e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("integer weight level (real weight = level x weight scale)")
            .y_desc("weights")
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        let bar = BLUE.mix(0.65).filled();
        chart
            .draw_series(counts.iter().map(|&(level, n)| {
                let x = f64::from(level);
                Rectangle::new([(x - half_bar, 0.0), (x + half_bar, n as f64)], bar)
            }))
            .map_err(|e| draw_error(&what, e))?
            .label("weights at each level")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], bar));
        let line = RED.stroke_width(1);
        chart
            .draw_series(cb.levels.iter().map(|&level| {
                let x = f64::from(level);
                PathElement::new(vec![(x, 0.0), (x, line_top)], line)
            }))
            .map_err(|e| draw_error(&what, e))?
            .label("codebook levels")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], line));
        chart
            .configure_series_labels()
            .background_style(WHITE.filled())
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        root.present().map_err(|e| draw_error(&what, e))?;
    }
    Ok(Plot {
        file_name: format!("layer{layer_index}_{}_weights.svg", file_stem(&layer.name)),
        svg,
    })
}

/// Colour `k` of `n` on a ramp from blue (lowest threshold) to red (highest).
pub(crate) fn ramp(k: usize, n: usize) -> RGBColor {
    let t = if n > 1 {
        k as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(30, 215), mix(90, 40), mix(200, 40))
}

/// The thresholds of table `index`, used by the layers named in `users`.
fn threshold_plot(index: usize, t: &MacThresholds, users: &[&str]) -> Result<Plot, String> {
    let what = format!("thresholds {index}");
    let per = (1usize << t.bits()) - 1;
    let channels = t.directions().len();
    let lo = f64::from(t.values().iter().copied().min().unwrap_or(0));
    let hi = f64::from(t.values().iter().copied().max().unwrap_or(0));
    let margin = ((hi - lo) * 0.05).max(1.0);
    let used = if users.is_empty() {
        String::new()
    } else {
        format!(" ({})", users.join(", "))
    };
    let caption = format!(
        "thresholds {index}{used}: {channels} channels x {per} thresholds -> {}-bit codes",
        t.bits()
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&what, e))?;
        // Headroom above the data keeps the legend clear of it.
        let (y_lo, y_hi) = (lo - margin, hi + (hi - lo) * 0.3 + margin);
        let last = channels.max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d((0..last).into_segmented(), y_lo..y_hi)
            .map_err(|e| draw_error(&what, e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            // (`max_light_lines(0)` would make plotters loop on an integer axis.)
            .light_line_style(TRANSPARENT)
            .x_labels(channels.clamp(1, 32))
            .x_label_formatter(&|v| match v {
                SegmentValue::Exact(c) | SegmentValue::CenterOf(c) if *c < last => c.to_string(),
                _ => String::new(),
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("output channel")
            .y_desc("threshold on the integer accumulator")
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        let shade = BLACK.mix(0.08).filled();
        let falling: Vec<u32> = (0..last)
            .filter(|&c| t.directions().get(c as usize) == Some(&Direction::Falling))
            .collect();
        let bands = chart
            .draw_series(falling.iter().map(|&c| {
                Rectangle::new(
                    [
                        (SegmentValue::Exact(c), y_lo),
                        (SegmentValue::Exact(c + 1), y_hi),
                    ],
                    shade,
                )
            }))
            .map_err(|e| draw_error(&what, e))?;
        if !falling.is_empty() {
            bands
                .label("falling channel (code counts acc <= T)")
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], shade));
        }
        for k in 0..per {
            let color = ramp(k, per);
            let points: Vec<(SegmentValue<u32>, f64)> = (0..last)
                .filter_map(|c| {
                    let v = t.values().get(c as usize * per + k)?;
                    Some((SegmentValue::CenterOf(c), f64::from(*v)))
                })
                .collect();
            let series = chart
                .draw_series(LineSeries::new(
                    points.iter().cloned(),
                    color.stroke_width(1),
                ))
                .map_err(|e| draw_error(&what, e))?;
            // Name only the lowest and highest threshold: the colours run between them.
            if k == 0 || k + 1 == per {
                series
                    .label(format!(
                        "T[{k}]{}",
                        if k == 0 { " lowest" } else { " highest" }
                    ))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
            }
            if channels <= MARKED_CHANNELS {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|p| Circle::new(p.clone(), 3, color.filled())),
                    )
                    .map_err(|e| draw_error(&what, e))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.filled())
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        root.present().map_err(|e| draw_error(&what, e))?;
    }
    Ok(Plot {
        file_name: format!("thresholds{index}.svg"),
        svg,
    })
}

/// Every plot of `model`: one per layer with weights and a weight codebook, then one per
/// threshold table.
pub fn render(model: &Model) -> Result<Vec<Plot>, String> {
    let mut plots = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let tensor = layer.weights.and_then(|w| model.weights.get(w as usize));
        let codebook = layer
            .weight_codebook
            .and_then(|c| model.codebooks.get(c as usize));
        if let (Some(w), Some(cb)) = (tensor, codebook) {
            plots.push(weight_plot(i, layer, w, cb)?);
        }
    }
    for (i, t) in model.thresholds.iter().enumerate() {
        let users: Vec<&str> = model
            .layers
            .iter()
            .filter(|l| l.thresholds == Some(i as u32))
            .map(|l| l.name.as_str())
            .collect();
        plots.push(threshold_plot(i, t, &users)?);
    }
    Ok(plots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_fpga_fmt::samples;

    #[test]
    fn stems_are_safe_file_names() {
        assert_eq!(file_stem("block.conv_a"), "block.conv_a");
        assert_eq!(file_stem("a/b c:d"), "a_b_c_d");
    }

    #[test]
    fn level_counts_decode_through_the_codebook() {
        let model = samples::tiny();
        let (w, cb) = (&model.weights[0], &model.codebooks[0]);
        let counts = level_counts(w, cb);
        let levels: Vec<i32> = counts.iter().map(|&(l, _)| l).collect();
        assert_eq!(levels, cb.levels);
        for (k, &(_, n)) in counts.iter().enumerate() {
            let expected = w.indices.iter().filter(|&&i| usize::from(i) == k).count();
            assert_eq!(n, expected as u64);
        }
        assert_eq!(counts.iter().map(|&(_, n)| n).sum::<u64>(), 18);
    }

    #[test]
    fn one_plot_per_weighted_layer_and_threshold_table() {
        for (name, model) in samples::all() {
            let plots = render(&model).expect("plots render");
            let weighted = model.layers.iter().filter(|l| l.weights.is_some()).count();
            assert_eq!(plots.len(), weighted + model.thresholds.len(), "{name}");
            for p in &plots {
                assert!(p.svg.starts_with("<svg"), "{name}: {}", p.file_name);
                assert!(
                    p.svg.trim_end().ends_with("</svg>"),
                    "{name}: {}",
                    p.file_name
                );
            }
        }
    }

    #[test]
    fn weight_plot_draws_one_line_per_level() {
        let model = samples::conv_net();
        let plots = render(&model).expect("plots render");
        let conv2 = plots
            .iter()
            .find(|p| p.file_name == "layer3_conv2_weights.svg")
            .expect("conv2 has a plot");
        // The 16 APoT levels appear as 16 red vertical lines (plus one in the legend).
        let red_paths = conv2.svg.matches("stroke=\"#FF0000\"").count();
        assert_eq!(red_paths, 17, "{}", conv2.svg);
        assert!(conv2.svg.contains("apot"));
    }
}
