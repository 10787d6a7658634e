//! Weights of a convolution or linear node in the kernels' packed layouts.

use nuq_kernels::{BlockWeights, CodebookScope, CodebookWeights, KernelError, PackedWeights};

use crate::integer::model::WeightTable;
use crate::NnError;

/// Packed weights: codebook indices decoded inside the GEMM (2–4 bits) or int8 levels.
pub(super) enum Packed {
    Codebook(CodebookWeights),
    Int8(PackedWeights),
}

pub(super) fn kernel_err(what: &str) -> impl Fn(KernelError) -> NnError + '_ {
    move |source| NnError::Kernel {
        what: what.to_string(),
        source,
    }
}

impl Packed {
    /// Packs `rows × k` weights.
    pub(super) fn new(w: &WeightTable, rows: usize, k: usize) -> Result<Packed, NnError> {
        if (2..=4).contains(&w.bits) {
            // The kernels take exactly 2^bits levels: unused indices repeat the last level.
            let mut book = w.levels.clone();
            book.resize(1 << w.bits, *w.levels.last().unwrap_or(&0));
            CodebookWeights::pack(&w.indices, rows, k, w.bits, &book, CodebookScope::PerTensor)
                .map(Packed::Codebook)
                .map_err(kernel_err("packing weights"))
        } else {
            PackedWeights::from_rows(&w.decoded(), rows, k)
                .map(Packed::Int8)
                .map_err(kernel_err("packing weights"))
        }
    }

    /// The view the block GEMM takes.
    pub(super) fn block(&self) -> BlockWeights<'_> {
        match self {
            Packed::Codebook(w) => BlockWeights::Codebook(w),
            Packed::Int8(w) => BlockWeights::Int8(w),
        }
    }

    /// Largest `|weight level|`.
    pub(super) fn max_abs(&self) -> u32 {
        match self {
            Packed::Codebook(w) => w.max_abs(),
            Packed::Int8(w) => w.max_abs(),
        }
    }
}
