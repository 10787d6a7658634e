//! Exit codes and the one place where failures become a message and a status.
//!
//! - `0`: success (also when stdout is closed early by the reader, e.g. `nuq inspect m.nuq | head`).
//! - `1`: the command ran and failed (missing file, corrupt model, I/O error); one line on stderr,
//!   `error: ...`, that names the file and says what to do.
//! - `2`: the command line is wrong (clap prints the usage error and exits with 2 itself).
//!
//! A panic would be a bug in nuq; it is still reported as one `error:` line with exit code 1,
//! followed by a backtrace only when `RUST_BACKTRACE` asks for one (set and not `0`).

use std::any::Any;
use std::fmt;
use std::process::ExitCode;

/// Exit code of a failed run.
const FAILURE: u8 = 1;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// A failure to report: one line, without the `error: ` prefix.
    Error(String),
    /// The reader of stdout went away (broken pipe): stop quietly.
    StdoutClosed,
}

impl Failure {
    /// A failure with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure::Error(message.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(m) => f.write_str(m),
            Failure::StdoutClosed => f.write_str("stdout was closed"),
        }
    }
}

impl From<nuq_nn::NnError> for Failure {
    /// The library's message, with the command-line hint where one helps.
    fn from(e: nuq_nn::NnError) -> Self {
        use nuq_nn::NnError;
        Failure::new(match &e {
            NnError::FewerThanOneBatch { .. } => format!("{e}; lower --batch"),
            NnError::MemoryLimit { .. } => {
                format!("{e}: pass --memory-limit BYTES (e.g. --memory-limit 64G) to allow more")
            }
            NnError::ImageShape { .. } => {
                format!("{e}; pass the dataset the model was trained on (--dataset, --data)")
            }
            NnError::StagesNotDescending { before, after } => {
                format!("--progressive must be descending, got {before} before {after}")
            }
            NnError::StageNotWider { stage, last } => {
                format!("--progressive stage {stage} is not wider than the final {last} bits")
            }
            NnError::StagesWithoutFineTuning => {
                "--progressive needs fine-tuning images: add --qat-epochs".to_string()
            }
            NnError::GradualWithoutFineTuning => {
                "--gradual needs fine-tuning images: add --qat-epochs".to_string()
            }
            NnError::GradualWithProgressive => {
                "--gradual and --progressive cannot be combined".to_string()
            }
            _ => e.to_string(),
        })
    }
}

/// Turns a library error into a one-line failure (for `map_err`).
pub fn nn(e: nuq_nn::NnError) -> Failure {
    Failure::from(e)
}

/// Result of a command.
pub type CmdResult = Result<(), Failure>;

/// Collapses `message` onto one line (paths and OS messages may hold line breaks).
fn one_line(message: &str) -> String {
    message
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `RUST_BACKTRACE` (its value `value`) asks for backtraces: set and not `0`.
fn backtrace_wanted(value: Option<&str>) -> bool {
    value.is_some_and(|v| v != "0")
}

/// The text of a panic payload.
fn payload_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}

/// Runs `command` and turns its outcome into the process exit code, printing a failure as a
/// single `error: ...` line on stderr. A panic (a bug) is reported the same way with exit
/// code 1, followed by its backtrace when `RUST_BACKTRACE` is set and not `0`.
pub fn finish(command: impl FnOnce() -> CmdResult) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: {}",
            one_line(&format!(
                "internal error{place}: {}; this is a bug in nuq, please report it with the command you ran",
                payload_text(info.payload())
            ))
        );
        if backtrace_wanted(std::env::var("RUST_BACKTRACE").ok().as_deref()) {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)) {
        Ok(Ok(())) | Ok(Err(Failure::StdoutClosed)) => ExitCode::SUCCESS,
        Ok(Err(Failure::Error(message))) => {
            eprintln!("error: {}", one_line(&message));
            ExitCode::from(FAILURE)
        }
        // The hook has already printed the message.
        Err(_) => ExitCode::from(FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_lines_and_drops_blank_ones() {
        assert_eq!(one_line("a\nb\r\n\n c "), "a b c");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn backtraces_follow_rust_backtrace() {
        assert!(!backtrace_wanted(None));
        assert!(!backtrace_wanted(Some("0")));
        assert!(backtrace_wanted(Some("1")));
        assert!(backtrace_wanted(Some("full")));
    }

    #[test]
    fn payload_text_reads_both_string_kinds() {
        let a: Box<dyn Any + Send> = Box::new("static");
        let b: Box<dyn Any + Send> = Box::new(String::from("owned"));
        let c: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(payload_text(a.as_ref()), "static");
        assert_eq!(payload_text(b.as_ref()), "owned");
        assert_eq!(payload_text(c.as_ref()), "unknown panic");
    }
}
