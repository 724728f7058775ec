//! Structured logs through `tracing`: JSON for machines, text for people.
//!
//! Under systemd, stdout goes to the journal, which would file every line at
//! one priority. When `JOURNAL_STREAM` names the stream stdout is, each line
//! starts with its syslog priority (`<3>` error ... `<7>` debug, the
//! sd-daemon prefix journald strips and keeps as the entry's priority), so
//! `journalctl -p warning` works with JSON logs too.

use std::io::{IsTerminal, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` holds a directive tracing cannot parse.
    #[error("RUST_LOG is invalid: {0}")]
    InvalidRustLog(String),
    /// A global subscriber was installed already (only in tests).
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(config: &LogConfig) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|err| LoggingError::InvalidRustLog(err.to_string()))?,
        // log.level was parsed during validation, so this cannot fail; "info" is the fallback.
        _ => EnvFilter::builder()
            .parse(&config.level)
            .unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stdout {
            journal: stdout_is_journal(),
        });
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    result.map_err(|_| LoggingError::AlreadyInitialised)
}

/// Whether stdout is the journal stream systemd connected
/// (`JOURNAL_STREAM=DEVICE:INODE` matches stdout's own).
fn stdout_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/1") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// The sd-daemon priority prefix of a level.
pub fn priority_prefix(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        Level::DEBUG | Level::TRACE => b"<7>",
    }
}

/// Standard output, with each line prefixed by its priority for the journal.
#[derive(Clone, Copy)]
struct Stdout {
    journal: bool,
}

/// One event's writer: the formatter writes the event in one piece, which
/// is put out with its prefix in one write, so lines never interleave.
struct Line {
    prefix: Option<&'static [u8]>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        match self.prefix.take() {
            Some(prefix) => {
                let mut line = Vec::with_capacity(prefix.len() + buf.len());
                line.extend_from_slice(prefix);
                line.extend_from_slice(buf);
                out.write_all(&line)?;
            }
            None => out.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl<'a> MakeWriter<'a> for Stdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { prefix: None }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            prefix: self.journal.then(|| priority_prefix(meta.level())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority_prefix(&Level::ERROR), b"<3>");
        assert_eq!(priority_prefix(&Level::WARN), b"<4>");
        assert_eq!(priority_prefix(&Level::INFO), b"<6>");
        assert_eq!(priority_prefix(&Level::DEBUG), b"<7>");
    }
}
