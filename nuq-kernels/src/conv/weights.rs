//! The packed weights of a convolution: codebook indices decoded inside the GEMM (2–4 bit
//! codebooks) or int8 levels (every other width).

use crate::gemm::Weights;
use crate::{CodebookWeights, KernelError, PackedWeights};

/// A layer's weights `W[n][k]` packed once for the GEMM.
#[derive(Debug, Clone)]
pub enum ConvWeights {
    /// 2-, 3- or 4-bit indices and their per-tensor codebook.
    Codebook(CodebookWeights),
    /// Int8 levels (1-bit and 5- to 8-bit codebooks, decoded when packed).
    Int8(PackedWeights),
}

impl ConvWeights {
    /// Packs row-major indices `indices[n][k]` (for a convolution `k` runs over
    /// `(ky, kx, c_in)`) into the codebook `levels` (at most `2^bits` int8 levels).
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for `bits ∉ 1..=8`, a zero dimension or more than
    /// `2^bits` levels; [`KernelError::SliceTooShort`] for too few indices;
    /// [`KernelError::IndexOutOfRange`] for an index without a level.
    pub fn pack(
        indices: &[u8],
        n: usize,
        k: usize,
        bits: u8,
        levels: &[i8],
    ) -> Result<ConvWeights, KernelError> {
        if !(1..=8).contains(&bits) || levels.len() > 1 << bits {
            return Err(KernelError::Unsupported {
                what: "weight codebook (bits, levels)",
                value: i64::from(bits),
                allowed: "1 ..= 8 bits with at most 2^bits levels",
            });
        }
        let indices = indices.get(..n * k).ok_or(KernelError::SliceTooShort {
            what: "weight indices",
            expected: n * k,
            found: indices.len(),
        })?;
        if let Some(p) = indices.iter().position(|&i| usize::from(i) >= levels.len()) {
            return Err(KernelError::IndexOutOfRange {
                channel: p / k,
                k: p % k,
                index: indices[p],
                bits,
            });
        }
        if (2..=4).contains(&bits) {
            // The GEMM takes exactly 2^bits levels: unused indices repeat the last level.
            let mut book = levels.to_vec();
            book.resize(1 << bits, *levels.last().unwrap_or(&0));
            CodebookWeights::pack(indices, n, k, bits, &book).map(ConvWeights::Codebook)
        } else {
            let decoded: Vec<i8> = indices.iter().map(|&i| levels[usize::from(i)]).collect();
            PackedWeights::from_rows(&decoded, n, k).map(ConvWeights::Int8)
        }
    }

    /// Output channels (`n`).
    pub fn n(&self) -> usize {
        self.view().n()
    }

    /// Reduction length (`k`).
    pub fn k(&self) -> usize {
        self.view().k()
    }

    /// Largest `|weight level|`.
    pub fn max_abs(&self) -> u32 {
        self.view().max_abs()
    }

    /// The view the GEMM takes.
    pub(crate) fn view(&self) -> Weights<'_> {
        match self {
            ConvWeights::Codebook(w) => Weights::Codebook(w),
            ConvWeights::Int8(w) => Weights::Int8(w),
        }
    }
}
