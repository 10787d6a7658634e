//! The canonical text report of a validated file: one line per header, section, layer and table.
//!
//! The C loader's test driver (`c/nuq_fmt_main.c`) prints exactly the same text, so the two
//! readers can be compared line for line. The format is documented in `FORMAT.md`
//! ("Canonical report"). Floating-point values are printed as their bit patterns, so the text
//! never depends on a float formatter.

use crate::crc32c::crc32c;
use crate::reader::NuqFile;
use core::fmt::{self, Write};

struct Ref(Option<u32>);

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("-"),
        }
    }
}

/// Writes the report of `file` to `out`.
pub fn write_report(file: &NuqFile<'_>, out: &mut dyn Write) -> fmt::Result {
    let (major, minor) = file.version();
    writeln!(
        out,
        "nuq {major}.{minor} alignment {} flags {:#010x} sections {} length {} crc {:#010x}",
        file.alignment(),
        file.flags(),
        file.section_count(),
        file.bytes().len(),
        file.file_crc()
    )?;
    for (i, s) in file.sections().enumerate() {
        let name = s.kind.map_or("unknown", |k| k.name());
        writeln!(
            out,
            "section {i} kind {} {name} offset {} length {} crc {:#010x}",
            s.kind_raw, s.offset, s.length, s.crc
        )?;
    }
    // Files read under the 1.1 rules show the 1.1 fields; a 1.0 file's report is unchanged.
    let v11 = file.rules_minor() >= 1;
    for (i, l) in file.graph().iter().enumerate() {
        write!(out, "layer {i} {} name \"{}\" inputs", l.op(), l.name())?;
        let mut any = false;
        for x in l.inputs() {
            write!(out, "{}{x}", if any { "," } else { " " })?;
            any = true;
        }
        if !any {
            out.write_str(" -")?;
        }
        let [c, h, w] = l.out_shape();
        let [kh, kw] = l.kernel();
        let [sh, sw] = l.stride();
        let [pt, pl, pb, pr] = l.padding();
        let [dh, dw] = l.dilation();
        write!(
            out,
            " out {c}x{h}x{w} kernel {kh}x{kw} stride {sh}x{sw} pad {pt},{pl},{pb},{pr} dilation {dh}x{dw} groups {} wbits {} abits {} weights {} wcb {} wscale {} bias {} thr {} acb {} ascale {}",
            l.groups(),
            l.weight_bits(),
            l.act_bits(),
            Ref(l.weights()),
            Ref(l.weight_codebook()),
            Ref(l.weight_scale()),
            Ref(l.bias()),
            Ref(l.thresholds()),
            Ref(l.act_codebook()),
            Ref(l.act_scale())
        )?;
        if v11 {
            write!(out, " align {} zp {}", Ref(l.align()), Ref(l.zero_point()))?;
        }
        writeln!(out)?;
    }
    for (i, cb) in file.codebooks().iter().enumerate() {
        write!(
            out,
            "codebook {i} kind {} bits {} grid {} signed {} elem {} levels",
            cb.kind_raw(),
            cb.bits(),
            cb.grid_bits(),
            u8::from(cb.signed()),
            cb.elem_type()
        )?;
        for (k, v) in cb.levels().enumerate() {
            write!(out, "{}{v}", if k == 0 { " " } else { "," })?;
        }
        writeln!(out)?;
    }
    for (i, w) in file.weights().iter().enumerate() {
        write!(
            out,
            "weights {i} bits {} order {} word {} dims",
            w.bits(),
            w.order(),
            w.word_bits()
        )?;
        for (k, d) in w.dims().iter().enumerate() {
            write!(out, "{}{}", if k == 0 { " " } else { "x" }, d.get())?;
        }
        let sum: u64 = w.indices().map(u64::from).sum();
        writeln!(
            out,
            " elements {} words {} index_sum {sum} crc {:#010x}",
            w.element_count(),
            w.word_count(),
            crc32c(w.data())
        )?;
    }
    for (i, b) in file.biases().iter().enumerate() {
        let sum: i64 = b.iter().map(|v| i64::from(v.get())).sum();
        writeln!(
            out,
            "bias {i} count {} sum {sum} crc {:#010x}",
            b.len(),
            crc32c(bytemuck::cast_slice(b))
        )?;
    }
    for (i, t) in file.thresholds().iter().enumerate() {
        let sum: i64 = t.values().iter().map(|v| i64::from(v.get())).sum();
        let falling = (0..t.channels())
            .filter(|&c| t.direction(c) == Some(crate::Direction::Falling))
            .count();
        writeln!(
            out,
            "thresholds {i} channels {} bits {} sum {sum} falling {falling} crc {:#010x}",
            t.channels(),
            t.bits(),
            crc32c(bytemuck::cast_slice(t.values()))
        )?;
    }
    for (i, s) in file.scales().iter().enumerate() {
        write!(out, "scale {i} value {:#010x} exponent ", s.value.to_bits())?;
        match s.exponent {
            Some(e) => write!(out, "{e}")?,
            None => out.write_str("-")?,
        }
        match s.multiplier_shift {
            Some((m, sh)) => writeln!(out, " multiplier {m} shift {sh}")?,
            None => writeln!(out, " multiplier - shift -")?,
        }
    }
    let m = file.metadata();
    writeln!(
        out,
        "producer \"{}\" version \"{}\" entries {}",
        m.producer(),
        m.producer_version(),
        m.len()
    )?;
    for (k, v) in m.iter() {
        writeln!(out, "meta \"{k}\" \"{v}\"")?;
    }
    for (i, a) in file.aligns().iter().enumerate() {
        let msum: i64 = a.multipliers().iter().map(|v| i64::from(v.get())).sum();
        let ssum: u64 = a.shifts().iter().map(|&v| u64::from(v)).sum();
        writeln!(
            out,
            "align {i} channels {} main_shift {} multiplier_sum {msum} shift_sum {ssum} crc {:#010x}",
            a.channels(),
            a.main_shift(),
            crc32c(bytemuck::cast_slice(a.multipliers()))
        )?;
    }
    for (i, z) in file.zero_points().iter().enumerate() {
        write!(
            out,
            "zero_point {i} channels {} bits {} values",
            z.channels(),
            z.bits()
        )?;
        for (k, v) in z.values().iter().enumerate() {
            write!(out, "{}{v}", if k == 0 { " " } else { "," })?;
        }
        writeln!(out)?;
    }
    Ok(())
}
