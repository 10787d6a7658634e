//! Progress on long work: indicatif bars on a terminal, nothing when stderr is not one, and
//! short notes on stderr (stdout stays for results).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress reporting for one command.
pub struct Progress {
    bars: bool,
}

impl Progress {
    /// Notes always go to stderr; bars only when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            bars: std::io::stderr().is_terminal(),
        }
    }

    /// A bar over `total` steps (hidden when stderr is not a terminal).
    pub fn bar(&self, total: u64, what: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar
    }

    /// One line of progress on stderr.
    pub fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
