//! SVG drawings of [`crate::mac_cdf`] for `nuq quantize --plot DIR`: per requantized layer,
//! the paper's Figure 1 — the empirical CDF of the integer MAC result of one channel, the
//! equal-mass boundaries (dashed: from the `k/2^b` level across to the CDF and down to the
//! accumulator axis) and the model's MAC thresholds (solid vertical lines), with the output
//! code written between consecutive thresholds.
//!
//! Every threshold is listed at the end of the SVG in a comment
//! `<!-- nuq-threshold k=K value=V -->` (with `off-plot` appended for one beyond the drawn
//! range) so that tools and tests can find them.

use plotters::prelude::*;

use crate::commands::inspect::plots::{draw_error, file_stem, ramp, Plot, SIZE};
use crate::mac_cdf::LayerCdf;
use nuq_fpga_fmt::Direction;

/// CDF points drawn at most per figure (the step curve is sampled at evenly spaced ranks).
const CDF_POINTS: usize = 400;

/// The one-line caption of `l`'s figure: the layer's name, then [`details`].
pub fn caption(l: &LayerCdf) -> String {
    format!("{}: {}", l.name, details(l))
}

/// What `l`'s figure shows (the `index.md` entry): the channel, code width, direction and
/// number of MAC results.
pub fn details(l: &LayerCdf) -> String {
    let s = &l.shown;
    format!(
        "channel {} of {} (median 5-95% spread), {}-bit codes, {}, {} MAC results",
        s.channel,
        l.channels,
        l.bits,
        if s.direction == Direction::Falling {
            "falling (code counts acc <= T)"
        } else {
            "rising (code counts acc >= T)"
        },
        s.samples.len()
    )
}

/// The figure of one layer, named `<layer>.svg`.
pub fn layer_plot(l: &LayerCdf) -> Result<Plot, String> {
    let what = format!("MAC-result CDF of {}", l.name);
    let s = &l.shown;
    let n = s.samples.len();
    let (Some(&first), Some(&last)) = (s.samples.first(), s.samples.last()) else {
        return Err(draw_error(&what, "no MAC results"));
    };
    // The x range covers the samples and the thresholds, but no more than half the sample
    // span beyond the samples on either side (thresholds of unused codes can lie far out);
    // thresholds outside are counted in the caption.
    let span = ((last - first) as f64).max(1.0);
    let (lo_cap, hi_cap) = (first as f64 - 0.5 * span, last as f64 + 0.5 * span);
    let t_lo = s
        .thresholds
        .iter()
        .map(|&t| f64::from(t))
        .fold(first as f64, f64::min);
    let t_hi = s
        .thresholds
        .iter()
        .map(|&t| f64::from(t))
        .fold(last as f64, f64::max);
    let (x_lo, x_hi) = (t_lo.max(lo_cap), t_hi.min(hi_cap));
    let pad = 0.03 * (x_hi - x_lo).max(1.0);
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    let outside = s
        .thresholds
        .iter()
        .filter(|&&t| f64::from(t) < x_lo || f64::from(t) > x_hi)
        .count();
    let levels = 1usize << l.bits;
    let mut title = caption(l);
    if outside > 0 {
        title.push_str(&format!(", {outside} threshold(s) off the plot"));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&what, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, 0.0..1.1)
            .map_err(|e| draw_error(&what, e))?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .x_desc("integer MAC result (accumulator + bias)")
            .y_desc("empirical CDF")
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        // The empirical CDF as a step curve through evenly spaced ranks.
        let mut points = vec![(x_lo, 0.0)];
        let m = CDF_POINTS.min(n);
        let mut prev = 0.0;
        for j in 0..=m {
            let idx = (j * (n - 1)).checked_div(m).unwrap_or(0);
            // The CDF at this sample: everything up to its last tie.
            let x = s.samples[idx];
            let upto = s.samples.partition_point(|&v| v <= x);
            let y = upto as f64 / n as f64;
            points.push((x as f64, prev));
            points.push((x as f64, y));
            prev = y;
        }
        points.push((x_hi, 1.0));
        chart
            .draw_series(LineSeries::new(points, BLACK.stroke_width(2)))
            .map_err(|e| draw_error(&what, e))?
            .label("empirical CDF")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK));
        // Equal-mass boundaries: dashed from the k/2^b level to the CDF and down.
        let grey = RGBColor(120, 120, 120);
        for (k, &b) in s.boundaries.iter().enumerate() {
            let q = (k + 1) as f64 / levels as f64;
            let b = (b as f64).clamp(x_lo, x_hi);
            let dashed = |a: (f64, f64), z: (f64, f64)| {
                DashedLineSeries::new(vec![a, z], 4, 3, grey.stroke_width(1))
            };
            chart
                .draw_series(dashed((x_lo, q), (b, q)))
                .map_err(|e| draw_error(&what, e))?;
            let series = chart
                .draw_series(dashed((b, q), (b, 0.0)))
                .map_err(|e| draw_error(&what, e))?;
            if k == 0 {
                series
                    .label("equal-mass boundary (k/2^b quantile)")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], grey));
            }
        }
        // The thresholds, and the code of every interval between them.
        let per = s.thresholds.len();
        let mut marks = Vec::new();
        for (k, &t) in s.thresholds.iter().enumerate() {
            let x = f64::from(t);
            if x < x_lo || x > x_hi {
                marks.push(format!("<!-- nuq-threshold k={k} value={t} off-plot -->"));
                continue;
            }
            let color = ramp(k, per);
            let series = chart
                .draw_series(LineSeries::new(
                    vec![(x, 0.0), (x, 1.02)],
                    color.stroke_width(2),
                ))
                .map_err(|e| draw_error(&what, e))?;
            if k == 0 {
                series
                    .label("MAC threshold T[k]")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
            }
            marks.push(format!("<!-- nuq-threshold k={k} value={t} -->"));
        }
        let edges: Vec<f64> = std::iter::once(x_lo)
            .chain(s.thresholds.iter().map(|&t| f64::from(t).clamp(x_lo, x_hi)))
            .chain(std::iter::once(x_hi))
            .collect();
        let style = ("sans-serif", 13).into_font().color(&BLACK);
        for (i, w) in edges.windows(2).enumerate() {
            if w[1] - w[0] < 1e-9 {
                continue;
            }
            let code = if s.direction == Direction::Falling {
                levels - 1 - i
            } else {
                i
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    code.to_string(),
                    ((w[0] + w[1]) / 2.0, 1.06),
                    style.clone(),
                )))
                .map_err(|e| draw_error(&what, e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.filled())
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| draw_error(&what, e))?;
        root.present().map_err(|e| draw_error(&what, e))?;
        drop(chart);
        drop(root);
        marks_into(&mut svg, &marks);
    }
    Ok(Plot {
        file_name: format!("{}.svg", file_stem(&l.name)),
        svg,
    })
}

/// Puts the threshold markers before the closing tag.
fn marks_into(svg: &mut String, marks: &[String]) {
    let at = svg.rfind("</svg>").unwrap_or(svg.len());
    svg.insert_str(at, &(marks.join("\n") + "\n"));
}

/// `index.md` listing the figures of `layers`, one line each.
pub fn index(layers: &[LayerCdf], images: usize) -> String {
    let mut s = format!(
        "# MAC-result CDFs (the paper's Figure 1), per requantized layer\n\n\
         Integer MAC results (accumulator + bias) on the first {images} calibration image(s). \
         Each figure shows one output channel: the one whose 5-95% quantile spread is the \
         median of its layer. Dashed: equal-mass boundaries (k/2^b quantiles); solid \
         vertical: the model's MAC thresholds; numbers on top: the output code of each \
         interval.\n\n"
    );
    for l in layers {
        let file = format!("{}.svg", file_stem(&l.name));
        s.push_str(&format!("- [{file}]({file}): {}\n", details(l)));
    }
    s
}
