//! A seeded, shuffled mini-batch iterator that prepares the next batch on a worker thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::data::{Augment, Dataset};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// One mini-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images `[n, h, w, c]`, augmented and normalised.
    pub images: Tensor,
    /// Labels.
    pub labels: Vec<u32>,
}

/// Iterates over one epoch of a dataset in mini-batches. A worker thread assembles batches
/// (shuffling, augmentation, normalisation) up to two ahead of the consumer, so data
/// preparation overlaps training.
///
/// The order and augmentation depend only on `(seed, epoch)`: the permutation comes from
/// `Rng::derive(seed, [epoch])` and each batch's augmentation from
/// `Rng::derive(seed, [epoch, batch index])`.
pub struct BatchLoader {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    batches: usize,
}

impl BatchLoader {
    /// Starts the worker for one epoch. `shuffle` permutes the images; `drop_last` drops a
    /// final partial batch.
    pub fn new(
        data: Arc<Dataset>,
        batch_size: usize,
        augment: Augment,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        epoch: u64,
    ) -> Self {
        let n = data.len();
        let batch_size = batch_size.max(1);
        let batches = if drop_last {
            n / batch_size
        } else {
            n.div_ceil(batch_size)
        };
        let (tx, rx) = sync_channel::<Batch>(2);
        let worker = std::thread::spawn(move || {
            let mut order: Vec<usize> = (0..n).collect();
            if shuffle {
                Rng::derive(seed, &[epoch]).shuffle(&mut order);
            }
            let (h, w, c) = (data.height, data.width, data.channels);
            let per = h * w * c;
            for b in 0..batches {
                let idx = &order[b * batch_size..((b + 1) * batch_size).min(n)];
                let mut rng = Rng::derive(seed, &[epoch, b as u64]);
                let mut images = vec![0.0f32; idx.len() * per];
                for (k, &i) in idx.iter().enumerate() {
                    augment.apply(
                        data.image(i),
                        h,
                        w,
                        c,
                        &mut rng,
                        &mut images[k * per..(k + 1) * per],
                    );
                }
                let labels = idx.iter().map(|&i| data.labels[i] as u32).collect();
                let images =
                    Tensor::from_vec([idx.len(), h, w, c], images).expect("sized from the dataset");
                if tx.send(Batch { images, labels }).is_err() {
                    return;
                }
            }
        });
        Self {
            rx: Some(rx),
            worker: Some(worker),
            batches,
        }
    }

    /// Number of batches in the epoch.
    pub fn batches(&self) -> usize {
        self.batches
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let b = self.rx.as_ref()?.recv().ok();
        if b.is_none() {
            self.rx = None;
            if let Some(w) = self.worker.take() {
                if let Err(panic) = w.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
        b
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Closing the channel stops the worker at its next send.
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
