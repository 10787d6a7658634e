//! Fuzzes `nuq_core::PackedIndices::from_bytes` (the packed-index parser other crates feed
//! with file contents). Oracles: no panic; an accepted buffer unpacks to `len` indices below
//! `2^bits` that re-pack to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_core::PackedIndices;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let bits = data[0];
    let len = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let bytes = data[3..].to_vec();
    let Ok(p) = PackedIndices::from_bytes(bits, len, bytes.clone()) else {
        return;
    };
    let idx = p.unpack();
    assert_eq!(idx.len(), len);
    assert!(idx.iter().all(|&i| u32::from(i) < 1u32 << bits));
    let again = PackedIndices::pack(&idx, bits).expect("unpacked indices re-pack");
    assert_eq!(again.as_bytes(), &bytes[..], "accepted a buffer with non-zero padding bits");
});
