//! JSON lines: one alert per line, appended to a file or written to
//! standard output. A batch is written and synced to disk at once, before
//! its alerts leave the outbox.

use std::io::Write;
use std::path::PathBuf;

use super::{Outcomes, Sink, SinkError};
use crate::alerts::route::Route;
use crate::aws::retry::ErrorClass;
use crate::detection::Alert;

/// Appends alerts to `path` (`-`: standard output).
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    route: std::sync::Arc<Route>,
}

impl FileSink {
    /// A sink writing to `path`.
    pub fn new(path: PathBuf) -> FileSink {
        FileSink {
            path,
            route: std::sync::Arc::new(Route::all()),
        }
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn route(&self) -> std::sync::Arc<Route> {
        std::sync::Arc::clone(&self.route)
    }

    fn deliver<'a>(&'a self, alerts: &'a [&'a Alert]) -> Outcomes<'a> {
        let mut lines = String::new();
        for alert in alerts {
            lines.push_str(&alert.to_json_line());
            lines.push('\n');
        }
        let path = self.path.clone();
        let n = alerts.len();
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || append(&path, lines.as_bytes()))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            match written {
                Ok(()) => vec![Ok(()); n],
                Err(err) => {
                    let error = SinkError {
                        message: format!("cannot append to the alerts file: {err}"),
                        class: ErrorClass::Transient,
                        refused: false,
                    };
                    vec![Err(error); n]
                }
            }
        })
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return out.flush();
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    cut_torn_tail(&mut file)?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// A kill during a large append can leave the last line cut short. Those
/// alerts were not acknowledged, so they are appended again, whole: the
/// fragment goes, so that every line of the file stays one JSON alert.
fn cut_torn_tail(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Look back for the last complete line, a block at a time.
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    tracing::warn!(
        bytes = len - keep,
        "the alerts file ended in a cut line (a kill during a write); removed it, its alerts are written again"
    );
    file.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::append;

    #[test]
    fn a_line_cut_by_a_kill_is_removed_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        append(&path, b"{\"c\":3}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
        // A whole file is left as it is; a file that is one cut line goes.
        append(&path, b"{\"d\":4}\n").unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("{\"c\":3}\n{\"d\":4}\n")
        );
        std::fs::write(&path, "{\"cut").unwrap();
        append(&path, b"{\"e\":5}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"e\":5}\n");
    }
}
