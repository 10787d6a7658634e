//! Helpers the kernel path tests share.

/// A small deterministic generator of 31-bit values (a 64-bit LCG's high bits), seeded by `seed`.
pub fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    }
}
