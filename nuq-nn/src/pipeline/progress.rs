//! How a long pipeline step tells its caller where it is, without printing anything itself.

/// Receives the progress of long pipeline steps (training epochs, fine-tuning). The library
/// never prints; a command line shows bars, a service logs, a test ignores it.
///
/// Every method has an empty default, so an implementation overrides only what it shows.
///
/// ```
/// use std::cell::Cell;
/// use nuq_nn::pipeline::Progress;
///
/// struct Count(Cell<u64>);
/// impl Progress for Count {
///     fn step(&self) {
///         self.0.set(self.0.get() + 1);
///     }
/// }
/// let c = Count(Cell::new(0));
/// c.begin("epoch 1", 2);
/// c.step();
/// c.step();
/// c.end();
/// assert_eq!(c.0.get(), 2);
/// ```
pub trait Progress {
    /// A phase named `label` of `total` steps begins.
    fn begin(&self, label: &str, total: u64) {
        let _ = (label, total);
    }
    /// One more step of the current phase is done.
    fn step(&self) {}
    /// The current phase is over.
    fn end(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {}
