//! Activation indices → unsigned activation levels.
//!
//! Activations stored as indices into an unsigned codebook (`levels[idx]`, `u8`) are
//! decoded once per layer input, before im2col: that costs `O(m·k)` table lookups against
//! the GEMM's `O(m·n·k)` multiply-adds, whereas decoding inside the GEMM would repeat each
//! lookup for every 32-channel weight panel. The AVX-512 path decodes 64 indices per
//! `vpermb` for codebooks of up to 64 levels (every 2–6-bit activation codebook).

use crate::{KernelError, KernelPath};

/// `out[i] = codebook[indices[i]]`.
///
/// # Errors
/// [`KernelError::Unsupported`] for an empty codebook or one with more than 256 levels,
/// [`KernelError::SliceTooShort`] for a short `out`,
/// [`KernelError::ActivationIndexOutOfRange`] for the first index `≥ codebook.len()`
/// (in which case `out` is unspecified), [`KernelError::PathUnavailable`].
pub fn decode_activations(
    path: KernelPath,
    indices: &[u8],
    codebook: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    path.ensure_available()?;
    if codebook.is_empty() || codebook.len() > 256 {
        return Err(KernelError::Unsupported {
            what: "activation codebook length",
            value: codebook.len() as i64,
            allowed: "1 ..= 256 levels",
        });
    }
    if out.len() < indices.len() {
        return Err(KernelError::SliceTooShort {
            what: "decoded activations",
            expected: indices.len(),
            found: out.len(),
        });
    }
    let ok = match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 availability was checked by `ensure_available`.
        KernelPath::Avx512Vnni if codebook.len() <= 64 => unsafe {
            x86::decode(indices, codebook, out)
        },
        _ => decode_scalar(indices, codebook, out),
    };
    if ok {
        Ok(())
    } else {
        let position = indices
            .iter()
            .position(|&i| usize::from(i) >= codebook.len())
            .expect("a decoder reported an out-of-range index");
        Err(KernelError::ActivationIndexOutOfRange {
            position,
            index: indices[position],
            levels: codebook.len(),
        })
    }
}

/// Returns `false` if some index is out of range.
fn decode_scalar(indices: &[u8], codebook: &[u8], out: &mut [u8]) -> bool {
    let mut ok = true;
    for (o, &i) in out.iter_mut().zip(indices) {
        match codebook.get(usize::from(i)) {
            Some(&v) => *o = v,
            None => ok = false,
        }
    }
    ok
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Returns `false` if some index is out of range.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI must be available, `codebook.len() ≤ 64` and
    /// `out.len() ≥ indices.len()`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn decode(indices: &[u8], codebook: &[u8], out: &mut [u8]) -> bool {
        let mut table = [0u8; 64];
        table[..codebook.len()].copy_from_slice(codebook);
        // SAFETY: 64 readable bytes.
        let t = unsafe { _mm512_loadu_si512(table.as_ptr().cast()) };
        let limit = _mm512_set1_epi8(codebook.len() as u8 as i8);
        let mut bad: __mmask64 = 0;
        let n = indices.len();
        let mut i = 0;
        while i < n {
            let lanes = (n - i).min(64);
            let k: __mmask64 = if lanes == 64 {
                u64::MAX
            } else {
                (1u64 << lanes) - 1
            };
            // SAFETY: masked load/store of lanes `i .. i + lanes`, inside both slices.
            unsafe {
                let idx = _mm512_maskz_loadu_epi8(k, indices.as_ptr().add(i).cast());
                bad |= _mm512_mask_cmpge_epu8_mask(k, idx, limit);
                _mm512_mask_storeu_epi8(
                    out.as_mut_ptr().add(i).cast(),
                    k,
                    _mm512_permutexvar_epi8(idx, t),
                );
            }
            i += lanes;
        }
        bad == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_decodes_and_rejects_alike() {
        for levels in [1usize, 3, 16, 64, 65, 256] {
            let book: Vec<u8> = (0..levels).map(|i| (i * 7 % 256) as u8).collect();
            let idx: Vec<u8> = (0..1000).map(|i| (i * 31 % levels) as u8).collect();
            let want: Vec<u8> = idx.iter().map(|&i| book[usize::from(i)]).collect();
            for path in KernelPath::available() {
                let mut out = vec![0u8; idx.len()];
                decode_activations(path, &idx, &book, &mut out).unwrap();
                assert_eq!(out, want, "{path} levels {levels}");
                if levels < 256 {
                    let mut bad = idx.clone();
                    bad[777] = levels as u8;
                    assert_eq!(
                        decode_activations(path, &bad, &book, &mut out),
                        Err(KernelError::ActivationIndexOutOfRange {
                            position: 777,
                            index: levels as u8,
                            levels
                        })
                    );
                }
            }
        }
        assert!(decode_activations(KernelPath::Scalar, &[0], &[], &mut [0]).is_err());
    }
}
