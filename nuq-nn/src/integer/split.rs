//! A large batch split into whole images across threads: each thread runs the whole network
//! on its share, in chunks whose tensors stay in its core's cache, with no synchronisation
//! between layers.
//!
//! Run whole, a batch of 64 CIFAR images keeps every node's tensor (4 MiB for a 32×32×64
//! layer) in the shared last-level cache and meets at a barrier after every node; split,
//! each core reads and writes its own L2. Each share runs on a one-thread pool of its own,
//! so that the kernels inside plan and run for one thread. Every image is computed by the
//! same exact integer arithmetic as in a whole batch: the logits are bit-identical.

use rayon::ThreadPool;

use super::infer::{Compiled, Workspace};
use crate::NnError;

/// Images per thread from which [`IntegerRunner::forward`](super::IntegerRunner::forward)
/// splits a batch across threads: below it the shares would be uneven by a large part
/// (a share is whole images), and the tiles of one batch keep every thread busy anyway.
pub const SPLIT_MIN_IMAGES: usize = 4;

/// Bytes the largest tensor of a chunk may take: half of this core's L2
/// ([`nuq_kernels::archparam::l2_bytes`]; 512 KiB of a 1 MiB one), so that a chunk's
/// activations mostly stay in L2 while each weight panel, streamed once per chunk, serves
/// enough rows (CIFAR ResNet-18 and VGG-Small on a 1 MiB L2: 4 images, whose 4×4 layers
/// give 64 rows). On Zen 4, 512 KiB read ResNet-18 batch 64 about 4 % faster than 256 KiB
/// and the same as 1 MiB (VGG-Small the same); on Zen 5, 128–512 KiB read the same.
pub fn split_chunk_bytes() -> usize {
    nuq_kernels::archparam::l2_bytes() / 2
}

/// How [`IntegerRunner::forward`](super::IntegerRunner::forward) runs a batch
/// ([`IntegerRunner::schedule`](super::IntegerRunner::schedule)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// The whole batch node by node, each node's tiles spread over the pool.
    Tiles,
    /// One share of whole images per thread, each run through the network in chunks.
    Split {
        /// Shares (threads).
        shares: usize,
        /// Images per chunk.
        chunk: usize,
    },
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Tiles => f.write_str("tiles"),
            Schedule::Split { shares, chunk } => write!(f, "split:{shares}x{chunk}"),
        }
    }
}

/// One thread of a split batch: its pool and its tensors.
struct Worker {
    pool: ThreadPool,
    work: Option<Workspace>,
}

/// The threads of split batches, started at the first split batch and kept.
#[derive(Default)]
pub(super) struct Split {
    workers: Vec<Worker>,
    /// A pool could not be started: batches run whole.
    failed: bool,
}

impl Split {
    /// Starts `threads` one-thread pools unless they are running; false when the system
    /// refuses a thread (the batch then runs whole).
    pub(super) fn ready(&mut self, threads: usize) -> bool {
        while !self.failed && self.workers.len() < threads {
            match rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "nuq-split".into())
                .build()
            {
                Ok(pool) => self.workers.push(Worker { pool, work: None }),
                Err(_) => self.failed = true,
            }
        }
        !self.failed
    }

    /// Logits of `n` checked images into `out` (`n × classes`): the batch is cut into one
    /// share of whole images per thread of the current pool (started by [`Split::ready`]),
    /// each run on its worker's pool in cache-sized chunks.
    ///
    /// # Errors
    /// The first error of a share, as [`Compiled::run`].
    pub(super) fn run(
        &mut self,
        compiled: &Compiled<'_>,
        images: &[u8],
        n: usize,
        out: &mut [i32],
    ) -> Result<(), NnError> {
        let threads = rayon::current_num_threads().min(self.workers.len()).max(1);
        let (image_len, classes) = (compiled.image_len(), compiled.classes());
        let chunk = compiled.split_chunk();
        let mut results: Vec<Result<(), NnError>> = (0..threads).map(|_| Ok(())).collect();
        rayon::scope(|s| {
            let (mut images, mut out) = (images, out);
            let workers = self.workers.iter_mut().take(threads);
            for (t, (worker, result)) in workers.zip(results.iter_mut()).enumerate() {
                // Shares differ by at most one image.
                let share = n / threads + usize::from(t < n % threads);
                let (mine, rest) = images.split_at(share * image_len);
                images = rest;
                let (logits, rest) = std::mem::take(&mut out).split_at_mut(share * classes);
                out = rest;
                s.spawn(move |_| {
                    let Worker { pool, work } = worker;
                    let work = work.get_or_insert_with(|| Workspace::new(compiled.infos()));
                    *result = pool.install(|| {
                        let pieces = mine.chunks(chunk * image_len);
                        for (x, o) in pieces.zip(logits.chunks_mut(chunk * classes)) {
                            let m = x.len() / image_len;
                            o.copy_from_slice(compiled.run(work, x, m, None)?);
                        }
                        Ok(())
                    });
                });
            }
        });
        results.into_iter().collect()
    }
}
