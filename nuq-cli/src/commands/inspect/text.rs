//! The human-readable form of a [`Summary`]: a header line, then one aligned table per part of
//! the file.

use super::summary::{LayerInfo, Summary, Use, Window};
use crate::text_table::TextTable;
use std::fmt::Write;

/// Codebooks with more levels than this are shown as their first and last few levels.
const LEVELS_SHOWN: usize = 16;
/// At most this many users of a table are named; the rest are counted.
const USERS_SHOWN: usize = 3;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn joined<T: ToString>(values: &[T], sep: &str) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

fn pair(v: [u32; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}x{}", v[0], v[1])
    }
}

/// `k3x3 s1 p1`, with dilation and groups only when they are not 1.
fn window(w: &Window) -> String {
    let pad = if w.padding.iter().all(|&p| p == w.padding[0]) {
        w.padding[0].to_string()
    } else {
        joined(&w.padding, ",")
    };
    let mut s = format!(
        "k{}x{} s{} p{pad}",
        w.kernel[0],
        w.kernel[1],
        pair(w.stride)
    );
    if w.dilation != [1, 1] {
        let _ = write!(s, " d{}", pair(w.dilation));
    }
    if w.groups != 1 {
        let _ = write!(s, " g{}", w.groups);
    }
    s
}

/// Short names of the tables a layer uses: `w0 wcb0 ws0 b0 t0 acb1 as1`.
fn tables(l: &LayerInfo) -> String {
    let short = |role: &str| match role {
        "weights" => "w",
        "weight_codebook" => "wcb",
        "weight_scale" => "ws",
        "bias" => "b",
        "thresholds" => "t",
        "act_codebook" => "acb",
        "align" => "al",
        "zero_point" => "zp",
        _ => "as",
    };
    let parts: Vec<String> = l
        .tables
        .used()
        .map(|(role, i)| format!("{}{i}", short(role)))
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

fn users(uses: &[Use]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for u in uses {
        if !names.contains(&u.name.as_str()) {
            names.push(&u.name);
        }
    }
    match names.len() {
        0 => "-".to_string(),
        n if n <= USERS_SHOWN => names.join(", "),
        n => format!(
            "{} +{} more",
            names[..USERS_SHOWN].join(", "),
            n - USERS_SHOWN
        ),
    }
}

fn levels(levels: &[i32]) -> String {
    if levels.len() <= LEVELS_SHOWN {
        return joined(levels, " ");
    }
    let half = LEVELS_SHOWN / 2;
    format!(
        "{} ... {} ({} levels)",
        joined(&levels[..half], " "),
        joined(&levels[levels.len() - half..], " "),
        levels.len()
    )
}

fn section(out: &mut String, title: &str, table: &TextTable) {
    if table.len() > 0 {
        let _ = writeln!(out, "\n{title}");
        out.push_str(&table.render(2));
    }
}

/// Renders `s` as text for a terminal.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: nuq format {}, {} bytes, CRC-32C {:#010x} verified (file and {} sections), alignment {}",
        s.file,
        s.format_version,
        s.file_bytes,
        s.crc32c,
        s.sections.len(),
        s.alignment
    );
    let _ = writeln!(
        out,
        "producer: {} {}",
        s.metadata.producer, s.metadata.producer_version
    );
    if !s.metadata.entries.is_empty() {
        let entries: Vec<String> = s
            .metadata
            .entries
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "metadata: {}", entries.join(", "));
    }

    let mut t = TextTable::new(&["#", "kind", "offset", "length", "crc32c"]);
    for x in &s.sections {
        t.row(vec![
            x.index.to_string(),
            x.kind.clone(),
            x.offset.to_string(),
            x.length.to_string(),
            format!("{:#010x}", x.crc32c),
        ]);
    }
    section(&mut out, "sections", &t);

    let mut t = TextTable::new(&[
        "#", "name", "op", "inputs", "out", "window", "wbits", "abits", "tables",
    ]);
    for l in &s.layers {
        t.row(vec![
            l.index.to_string(),
            l.name.clone(),
            l.op.clone(),
            if l.inputs.is_empty() {
                "-".to_string()
            } else {
                joined(&l.inputs, ",")
            },
            joined(&l.out_shape, "x"),
            l.window.as_ref().map_or_else(|| "-".to_string(), window),
            opt(l.weight_bits),
            opt(l.act_bits),
            tables(l),
        ]);
    }
    section(&mut out, "layers", &t);
    if !s.layers.is_empty() {
        out.push_str(
            "  tables: w weights, wcb weight codebook, ws weight scale, b bias, t thresholds, acb output codebook, as output scale, al residual alignment, zp input zero points\n",
        );
    }

    let mut t = TextTable::new(&["#", "kind", "bits", "grid", "elem", "levels", "used by"]);
    for c in &s.codebooks {
        t.row(vec![
            c.index.to_string(),
            c.kind.clone(),
            c.bits.to_string(),
            format!(
                "{} {}",
                c.grid_bits,
                if c.signed { "signed" } else { "unsigned" }
            ),
            c.elem_type.clone(),
            levels(&c.levels),
            users(&c.used_by),
        ]);
    }
    section(&mut out, "codebooks", &t);

    let mut t = TextTable::new(&[
        "#",
        "dims",
        "bits",
        "word",
        "order",
        "elements",
        "words",
        "bytes",
        "indices used",
        "used by",
    ]);
    for w in &s.weights {
        let used = w.index_counts.iter().filter(|&&n| n > 0).count();
        t.row(vec![
            w.index.to_string(),
            joined(&w.dims, "x"),
            w.bits.to_string(),
            w.word_bits.to_string(),
            w.order.clone(),
            w.elements.to_string(),
            w.words.to_string(),
            w.bytes.to_string(),
            format!("{used}/{}", w.index_counts.len()),
            users(&w.used_by),
        ]);
    }
    section(&mut out, "weights", &t);

    let mut t = TextTable::new(&[
        "#", "bits", "channels", "min", "max", "rising", "falling", "used by",
    ]);
    for x in &s.thresholds {
        t.row(vec![
            x.index.to_string(),
            x.bits.to_string(),
            x.channels.to_string(),
            opt(x.min),
            opt(x.max),
            x.rising.to_string(),
            x.falling.to_string(),
            users(&x.used_by),
        ]);
    }
    section(&mut out, "thresholds", &t);

    let mut t = TextTable::new(&["#", "count", "min", "max", "used by"]);
    for b in &s.biases {
        t.row(vec![
            b.index.to_string(),
            b.count.to_string(),
            opt(b.min),
            opt(b.max),
            users(&b.used_by),
        ]);
    }
    section(&mut out, "biases", &t);

    let mut t = TextTable::new(&["#", "value", "exponent", "fixed point", "used by"]);
    for x in &s.scales {
        t.row(vec![
            x.index.to_string(),
            x.value.to_string(),
            x.exponent
                .map_or_else(|| "-".to_string(), |e| format!("2^{e}")),
            match (x.multiplier, x.shift) {
                (Some(m), Some(sh)) => format!("{m} / 2^{sh}"),
                _ => "-".to_string(),
            },
            users(&x.used_by),
        ]);
    }
    section(&mut out, "scales", &t);

    let mut t = TextTable::new(&[
        "#",
        "channels",
        "main shift",
        "multipliers",
        "negative",
        "shifts",
        "used by",
    ]);
    let range =
        |r: Option<[String; 2]>| r.map_or_else(|| "-".to_string(), |[a, b]| format!("{a}..{b}"));
    for a in &s.aligns {
        t.row(vec![
            a.index.to_string(),
            a.channels.to_string(),
            a.main_shift.to_string(),
            range(a.multiplier_range.map(|r| r.map(|v| v.to_string()))),
            a.negative.to_string(),
            range(a.shift_range.map(|r| r.map(|v| v.to_string()))),
            users(&a.used_by),
        ]);
    }
    section(&mut out, "residual alignments (multiplier / 2^shift)", &t);

    let mut t = TextTable::new(&["#", "bits", "zero points", "used by"]);
    for z in &s.zero_points {
        let shown: Vec<u8> = z.values.iter().copied().take(LEVELS_SHOWN).collect();
        let mut values = joined(&shown, " ");
        if z.values.len() > LEVELS_SHOWN {
            let _ = write!(values, " ... ({} channels)", z.values.len());
        }
        t.row(vec![
            z.index.to_string(),
            z.bits.to_string(),
            values,
            users(&z.used_by),
        ]);
    }
    section(&mut out, "input zero points", &t);

    let n = &s.totals;
    let _ = writeln!(
        out,
        "\ntotals: {} layers ({} with weights), {} weights in {} packed bytes, {} biases, {} thresholds",
        n.layers, n.weighted_layers, n.weight_elements, n.weight_bytes, n.bias_values, n.threshold_values
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_compact() {
        let w = Window {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
            dilation: [1, 1],
            groups: 1,
        };
        assert_eq!(window(&w), "k3x3 s1 p1");
        let w = Window {
            kernel: [3, 1],
            stride: [2, 1],
            padding: [1, 0, 1, 0],
            dilation: [2, 2],
            groups: 4,
        };
        assert_eq!(window(&w), "k3x1 s2x1 p1,0,1,0 d2 g4");
    }

    #[test]
    fn long_lists_are_shortened() {
        let many: Vec<i32> = (0..256).collect();
        let s = levels(&many);
        assert!(s.starts_with("0 1 2 3 4 5 6 7 ... 248"), "{s}");
        assert!(s.ends_with("255 (256 levels)"), "{s}");
        assert_eq!(levels(&[-1, 1]), "-1 1");
        let u = |i: u32| Use {
            layer: i,
            name: format!("l{i}"),
            role: "act_scale",
        };
        assert_eq!(users(&[]), "-");
        assert_eq!(users(&[u(0), u(0), u(1)]), "l0, l1");
        assert_eq!(users(&[u(0), u(1), u(2), u(3), u(4)]), "l0, l1, l2 +2 more");
    }
}
