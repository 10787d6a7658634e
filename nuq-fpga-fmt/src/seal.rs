//! Recomputing the checksums and length of a file in place (used by the writer, and by fuzzers
//! and tests to reach the validation behind the CRC checks).

use crate::crc32c::crc32c;
use crate::layout::FILE_CRC_OFFSET;
use crate::reader::file_crc;

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn rd64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Rewrites `file_length`, every in-bounds section-table entry's CRC and the whole-file CRC of
/// `bytes` so that they match its contents. Reads the table location from the header as it is;
/// does nothing for buffers shorter than the 64-byte header; never panics.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < 64 {
        return;
    }
    let len = bytes.len() as u64;
    bytes[32..40].copy_from_slice(&len.to_le_bytes());
    let count = rd32(bytes, 28).unwrap_or(0).min(64) as usize;
    let table = rd32(bytes, 44).unwrap_or(0) as usize;
    let entry_size = rd32(bytes, 48).unwrap_or(0) as usize;
    if entry_size >= 32 {
        for i in 0..count {
            let Some(e) = i.checked_mul(entry_size).and_then(|x| x.checked_add(table)) else {
                break;
            };
            let (Some(off), Some(n)) = (rd64(bytes, e + 8), rd64(bytes, e + 16)) else {
                break;
            };
            let crc = usize::try_from(off)
                .ok()
                .zip(usize::try_from(n).ok())
                .and_then(|(o, n)| bytes.get(o..o.checked_add(n)?))
                .map(crc32c);
            if let (Some(crc), Some(slot)) = (crc, bytes.get_mut(e + 24..e + 28)) {
                slot.copy_from_slice(&crc.to_le_bytes());
            }
        }
    }
    let crc = file_crc(bytes);
    bytes[FILE_CRC_OFFSET..FILE_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}
