//! `cloudwarden replay`: CloudTrail data from files through the detection
//! pipeline, offline.
//!
//! Inputs are S3 trail files (`{"Records":[...]}`, plain or gzip), JSON
//! arrays or NDJSON, or `-` for standard input. Records go through the same
//! dedup and engine as in the daemon; alerts are written as JSON lines, and
//! the summary (events, rejections by reason, alerts per rule, events/s)
//! says what happened. A record that cannot be read is reported with its
//! file and line or index, counted, and skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::detection::engine::{Engine, EventInput};
use crate::detection::event::{Format, Reason, Rejection};
use crate::detection::sigma::document::LogSource;
use crate::detection::{Alert, Level};
use crate::records::{Flow, Position, read_records};

/// Rejections printed individually per reason; the rest are only counted.
const REJECTIONS_SHOWN: u64 = 20;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Files; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// How records are read.
    pub format: Format,
    /// Which rules apply.
    pub logsource: LogSource,
    /// The size limit of one record.
    pub max_bytes: usize,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files read.
    pub files: u64,
    /// Bytes read from them (compressed size for gzip).
    pub bytes: u64,
    /// Records read (processed, rejected and duplicates).
    pub records: u64,
    /// Records evaluated.
    pub events: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<Reason, u64>,
    /// Alerts per rule: (title, level, count).
    pub alerts: BTreeMap<String, (String, Level, u64)>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Records rejected, over all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Alerts over all rules.
    pub fn alerts_total(&self) -> u64 {
        self.alerts.values().map(|(_, _, n)| n).sum()
    }

    /// Evaluated events per second of wall time.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    /// Alerts per level.
    pub fn alerts_by_level(&self) -> BTreeMap<Level, u64> {
        let mut out = BTreeMap::new();
        for (_, level, n) in self.alerts.values() {
            *out.entry(*level).or_default() += n;
        }
        out
    }

    fn count_alert(&mut self, alert: &Alert) {
        let entry = self
            .alerts
            .entry(alert.rule.id.clone())
            .or_insert_with(|| (alert.rule.title.clone(), alert.rule.level, 0));
        entry.2 += 1;
    }
}

/// Progress of a replay, for a progress bar.
pub trait Progress {
    /// `bytes` more were read.
    fn advance(&self, bytes: u64);
}

impl Progress for () {
    fn advance(&self, _: u64) {}
}

/// Counts bytes as they are read.
struct Counting<'a, R> {
    inner: R,
    bytes: &'a mut u64,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.bytes += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Replays `options.inputs` through `engine`, writing alerts to `out` and
/// reports about single records to `notes`.
pub fn replay(
    engine: &mut Engine,
    options: &ReplayOptions,
    out: &mut dyn Write,
    notes: &mut dyn Write,
    progress: &dyn Progress,
) -> io::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    for input in &options.inputs {
        let name = input.display().to_string();
        let reader: Box<dyn Read> = if name == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(input) {
                Ok(file) => Box::new(file),
                Err(err) => {
                    writeln!(notes, "{name}: cannot open: {err}")?;
                    *summary.rejected.entry(Reason::Unreadable).or_default() += 1;
                    continue;
                }
            }
        };
        summary.files += 1;
        let mut bytes = 0u64;
        let counting = Counting {
            inner: reader,
            bytes: &mut bytes,
            progress,
        };
        let mut failure: Option<io::Error> = None;
        read_records(counting, options.max_bytes, |record| {
            summary.records += 1;
            let origin = At(&name, record.position);
            let result = match record.text {
                Err(rejection) => Err(rejection),
                Ok(text) => process(engine, options, &mut summary, text, &origin),
            };
            let written = match result {
                Ok(alerts) => alerts.iter().try_for_each(|a| {
                    summary.count_alert(a);
                    writeln!(out, "{}", a.to_json_line())
                }),
                Err(rejection) => {
                    let count = summary.rejected.entry(rejection.reason).or_default();
                    *count += 1;
                    if *count <= REJECTIONS_SHOWN {
                        writeln!(notes, "{origin}: rejected: {rejection}")
                    } else {
                        Ok(())
                    }
                }
            };
            match written {
                Ok(()) => Flow::Continue,
                Err(err) => {
                    failure = Some(err);
                    Flow::Stop
                }
            }
        });
        summary.bytes += bytes;
        if let Some(err) = failure {
            return Err(err);
        }
    }
    for alert in engine.finish() {
        summary.count_alert(&alert);
        writeln!(out, "{}", alert.to_json_line())?;
    }
    out.flush()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A record's place: file and line or index.
struct At<'a>(&'a str, Position);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

fn process(
    engine: &mut Engine,
    options: &ReplayOptions,
    summary: &mut Summary,
    text: &str,
    origin: &At<'_>,
) -> Result<Vec<Alert>, Rejection> {
    let input = EventInput {
        raw: text,
        format: options.format,
        logsource: &options.logsource,
        source: Some("replay"),
        origin: Some(origin),
        time_hint_ms: None,
        dedup_id: None,
    };
    let processed = engine.process(&input)?;
    if processed.duplicate {
        summary.duplicates += 1;
    } else {
        summary.events += 1;
    }
    Ok(processed.alerts)
}

/// The summary as a few lines for people.
pub fn render_summary(summary: &Summary) -> String {
    let mut text = format!(
        "replayed {} file{} ({:.1} MB) in {:.2} s: {} records, {} events evaluated, {:.0} events/s\n",
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        summary.bytes as f64 / 1e6,
        summary.elapsed.as_secs_f64(),
        summary.records,
        summary.events,
        summary.events_per_second(),
    );
    text.push_str(&format!("duplicates dropped: {}\n", summary.duplicates));
    if summary.rejected.is_empty() {
        text.push_str("rejected: 0\n");
    } else {
        let parts: Vec<String> = summary
            .rejected
            .iter()
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        text.push_str(&format!(
            "rejected: {} ({})\n",
            summary.rejected_total(),
            parts.join(", ")
        ));
    }
    let levels: Vec<String> = Level::ALL
        .iter()
        .rev()
        .map(|l| {
            format!(
                "{l} {}",
                summary.alerts_by_level().get(l).copied().unwrap_or(0)
            )
        })
        .collect();
    text.push_str(&format!(
        "alerts: {} ({})\n",
        summary.alerts_total(),
        levels.join(", ")
    ));
    let mut rules: Vec<(&String, &(String, Level, u64))> = summary.alerts.iter().collect();
    rules.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(a.0.cmp(b.0)));
    for (id, (title, level, n)) in rules {
        text.push_str(&format!("  {n:>6}  {:<13} {id}  {title}\n", level.as_str()));
    }
    text
}
