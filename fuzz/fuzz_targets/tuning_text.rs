//! Fuzzes the kernels' tuning text (`nuq_kernels::Tuning`'s `FromStr`, what `NUQ_TUNE` and
//! `nuq bench --tune` read). Oracles: no panic; a text that parses gives a tuning within the
//! documented ranges whose `Display` parses back to the same tuning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_kernels::archparam::{L2_MAX_BYTES, L2_MIN_BYTES};
use nuq_kernels::Tuning;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = text.parse::<Tuning>() {
        assert!((L2_MIN_BYTES..=L2_MAX_BYTES).contains(&t.l2_bytes), "{t}");
        assert!((1..=64).contains(&t.tiles_per_thread), "{t}");
        assert!(t.min_tile_macs >= 1 && t.cb4_int8_min_rows != Some(0), "{t}");
        let back: Tuning = t.to_string().parse().expect("a tuning's text parses");
        assert_eq!(back, t);
    }
});
