//! CRC-32C (Castagnoli): reflected polynomial `0x82F63B78`, initial value and final XOR
//! `0xFFFF_FFFF`. This is the checksum iSCSI, ext4 and SSE4.2 `crc32` compute; the check value of
//! the ASCII string `123456789` is `0xE3069283`.
//!
//! The lookup tables are built at compile time by a `const fn`, so the code is `no_std`, has no
//! start-up cost and needs no allocator. Eight bytes are folded per step ("slicing by 8": eight
//! 256-entry tables, 8 KiB), the remainder byte by byte with the first table.

/// The reflected CRC-32C polynomial.
pub const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    t[0] = make_table();
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            // Table k advances a byte through k further zero bytes.
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// An incremental CRC-32C computation: feed bytes with [`Crc32c::update`], read the checksum
/// with [`Crc32c::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// Starts a new checksum.
    pub const fn new() -> Self {
        Self { state: 0xFFFF_FFFF }
    }

    /// Feeds `bytes` into the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut crc = self.state;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// Feeds `count` zero bytes into the checksum.
    pub fn update_zeros(&mut self, count: usize) {
        for _ in 0..count {
            self.update(&[0]);
        }
    }

    /// The checksum of every byte fed so far.
    pub const fn finish(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

/// The CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn rfc3720_vectors() {
        // iSCSI (RFC 3720, appendix B.4) test patterns.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: [u8; 32] = core::array::from_fn(|i| 31 - i as u8);
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
    }

    /// The plain bit-at-a-time definition, as the reference for the table-driven code.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn sliced_matches_bitwise_for_every_length_and_split() {
        let data: [u8; 97] = core::array::from_fn(|i| (i as u8).wrapping_mul(167).wrapping_add(13));
        for n in 0..data.len() {
            assert_eq!(crc32c(&data[..n]), bitwise(&data[..n]), "length {n}");
            for split in [0, 1, 3, 7, 8, 9, n / 2, n] {
                let split = split.min(n);
                let mut c = Crc32c::new();
                c.update(&data[..split]);
                c.update(&data[split..n]);
                assert_eq!(c.finish(), bitwise(&data[..n]), "length {n} split {split}");
            }
        }
    }

    #[test]
    fn empty_and_incremental() {
        assert_eq!(crc32c(&[]), 0);
        let data = b"The quick brown fox jumps over the lazy dog";
        let mut c = Crc32c::new();
        c.update(&data[..10]);
        c.update(&data[10..]);
        assert_eq!(c.finish(), crc32c(data));
        assert_eq!(crc32c(data), 0x2262_0404);
        let mut z = Crc32c::new();
        z.update(b"ab");
        z.update_zeros(3);
        assert_eq!(z.finish(), crc32c(b"ab\0\0\0"));
    }
}
