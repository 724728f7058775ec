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
        .append(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}
