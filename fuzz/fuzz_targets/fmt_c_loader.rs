//! Differential fuzzing of the C99 loader against the Rust reader on the same inputs (raw, and
//! with checksums recomputed): both must accept the same files and report the same first error
//! (kind, location, record, field, offset); for accepted files every C accessor must read the
//! same values (compared through a digest). The input is placed right before an unmapped guard
//! page, so any read past its end by the C loader faults; the C code runs with UBSan in trap mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_fpga_fmt::{reseal, Location, NuqFile};
use std::ffi::CStr;
use std::os::raw::c_char;

#[repr(C)]
struct FuzzResult {
    status: i32,
    location: i32,
    record: i64,
    field: *const c_char,
    offset: u64,
    digest: u64,
}

extern "C" {
    fn nuq_fuzz_open(data: *const u8, len: usize, out: *mut FuzzResult);
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01B3)
}

fn rust_digest(f: &NuqFile<'_>) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for l in f.graph().iter() {
        h = mix(h, l.op().raw().into());
        for x in l.inputs() {
            h = mix(h, x.into());
        }
        for d in l.out_shape() {
            h = mix(h, d.into());
        }
        h = mix(h, l.name().len() as u64);
        h = mix(h, l.align().unwrap_or(u32::MAX).into());
        h = mix(h, l.zero_point().unwrap_or(u32::MAX).into());
    }
    for c in f.codebooks().iter() {
        for v in c.levels() {
            h = mix(h, i64::from(v) as u64);
        }
    }
    for w in f.weights().iter() {
        for v in w.indices() {
            h = mix(h, v.into());
        }
    }
    for b in f.biases().iter() {
        for v in b {
            h = mix(h, i64::from(v.get()) as u64);
        }
    }
    for t in f.thresholds().iter() {
        for c in 0..t.channels() {
            for v in t.channel(c).unwrap_or(&[]) {
                h = mix(h, i64::from(v.get()) as u64);
            }
            h = mix(h, t.code(c, 0).unwrap_or(0).into());
            h = mix(h, t.code_wide(c, 1 << 40).unwrap_or(0).into());
            h = mix(h, t.code_wide(c, -(1 << 40)).unwrap_or(0).into());
        }
    }
    for s in f.scales().iter() {
        h = mix(h, s.value.to_bits().into());
    }
    for (k, v) in f.metadata().iter() {
        h = mix(h, k.len() as u64);
        h = mix(h, v.len() as u64);
    }
    for a in f.aligns().iter() {
        h = mix(h, a.main_shift().into());
        for c in 0..a.channels() {
            let (m, s) = a.factor(c).unwrap_or((0, 0));
            h = mix(h, i64::from(m) as u64);
            h = mix(h, s.into());
            // The join's 64-bit arithmetic, at the extremes of its operands.
            for (x, y) in [(12345, -6789), (i32::MAX, i32::MIN), (i32::MIN, i32::MAX)] {
                h = mix(h, a.sum(c, x, y).unwrap_or(0) as u64);
            }
        }
    }
    for z in f.zero_points().iter() {
        h = mix(h, z.bits().into());
        for &v in z.values() {
            h = mix(h, v.into());
        }
    }
    h
}

/// Runs the C loader on a copy of `data` that ends exactly at an unmapped page.
fn run_c(data: &[u8]) -> FuzzResult {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let body = data.len().div_ceil(page).max(1) * page;
    // SAFETY: an anonymous private mapping; the result is checked before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            body + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(base != libc::MAP_FAILED, "mmap failed");
    let base = base as *mut u8;
    let mut out = FuzzResult {
        status: -1,
        location: 0,
        record: 0,
        field: std::ptr::null(),
        offset: 0,
        digest: 0,
    };
    // SAFETY: `base .. base + body + page` is our mapping; the copy fills its last `data.len()`
    // bytes of the readable part, the guard page after it is made inaccessible before the C call,
    // and the mapping is released after it.
    unsafe {
        let start = base.add(body - data.len());
        std::ptr::copy_nonoverlapping(data.as_ptr(), start, data.len());
        assert_eq!(
            libc::mprotect(base.add(body) as *mut libc::c_void, page, libc::PROT_NONE),
            0
        );
        nuq_fuzz_open(start, data.len(), &mut out);
        libc::munmap(base as *mut libc::c_void, body + page);
    }
    out
}

fn check(data: &[u8]) {
    let c = run_c(data);
    match NuqFile::parse(data) {
        Ok(f) => {
            assert_eq!(c.status, 0, "C refused a file the Rust reader accepts");
            assert_eq!(
                c.digest,
                rust_digest(&f),
                "C and Rust read different values"
            );
        }
        Err(e) => {
            assert_ne!(
                c.status, 0,
                "C accepted a file the Rust reader refuses: {e}"
            );
            // SAFETY: the C loader only stores pointers to static string literals in `field`.
            let field = unsafe { CStr::from_ptr(c.field) }.to_str().unwrap();
            let loc = match e.location {
                Location::Header => -1,
                Location::SectionTable => -2,
                Location::Section(k) => k.raw() as i32,
            };
            let rec = e.record.map_or(-1, i64::from);
            assert_eq!(
                (c.location, c.record, field, c.offset),
                (loc, rec, e.field, e.offset),
                "C and Rust disagree on where the first error is ({e})"
            );
            let kind_index = [
                "ok",
                "truncated",
                "bad_magic",
                "byte_order",
                "newer_major",
                "older_major",
                "crc",
                "invalid",
                "mismatch",
                "out_of_range",
                "out_of_bounds",
                "layout",
                "count_cap",
                "nonzero_padding",
                "duplicate_section",
                "missing_section",
                "bad_reference",
                "not_utf8",
                "not_sorted",
                "overflow",
            ]
            .iter()
            .position(|n| *n == e.kind.name())
            .unwrap() as i32;
            assert_eq!(
                c.status, kind_index,
                "C and Rust disagree on the error kind ({e})"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    check(&sealed);
});
