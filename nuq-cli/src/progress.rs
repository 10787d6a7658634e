//! Progress on long work: indicatif bars on a terminal, nothing when stderr is not one, and
//! short notes on stderr (stdout stays for results).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress reporting for one command; the library's long steps report to it through
/// [`nuq_nn::pipeline::Progress`].
pub struct Progress {
    bars: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// Notes always go to stderr; bars only when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            bars: std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }

    /// One line of progress on stderr.
    pub fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        if let Ok(mut bar) = self.current.lock() {
            f(&mut bar);
        }
    }
}

impl nuq_nn::pipeline::Progress for Progress {
    fn begin(&self, label: &str, total: u64) {
        if !self.bars {
            return;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        self.with_bar(|b| *b = Some(bar));
    }

    fn step(&self) {
        self.with_bar(|b| {
            if let Some(bar) = b {
                bar.inc(1);
            }
        });
    }

    fn end(&self) {
        self.with_bar(|b| {
            if let Some(bar) = b.take() {
                bar.finish_and_clear();
            }
        });
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
