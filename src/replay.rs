//! `cloudwarden replay`: CloudTrail data from files through the detection
//! pipeline, offline.
//!
//! Inputs are S3 trail files (`{"Records":[...]}`, plain or gzip), JSON
//! arrays or NDJSON, or `-` for standard input. Records go through the same
//! dedup and engine as in the daemon; alerts are written as JSON lines, and
//! the summary (events, rejections by reason, alerts per rule, events/s)
//! says what happened. A record that cannot be read is reported with its
//! file and line or index, counted, and skipped.
//!
//! Records are evaluated in event-time order, whatever the order of the
//! files: trail files are named by Region and time, so files given in name
//! order interleave hours of one Region with hours of another. Records wait
//! in a reorder buffer bounded in bytes; when it is full the oldest goes
//! first (counted as `reorder_overflow`), so memory stays bounded and only
//! inputs larger than the buffer can still arrive out of order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::detection::engine::{Engine, EventInput};
use crate::detection::event::{Format, Reason, Rejection};
use crate::detection::sigma::document::LogSource;
use crate::detection::{Alert, Level};
use crate::records::{Flow, Limits, Position, read_records};

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
    /// Bytes of records held to put them in event-time order; 0 evaluates
    /// them as they are read.
    pub reorder_bytes: usize,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files read.
    pub files: u64,
    /// Files that could not be opened.
    pub unopened: u64,
    /// Bytes read from them (compressed size for gzip).
    pub bytes: u64,
    /// Records read (processed, rejected and duplicates).
    pub records: u64,
    /// Records evaluated.
    pub events: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Records evaluated before all input was read because the reorder
    /// buffer was full: these may have been out of time order.
    pub reorder_overflow: u64,
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

/// Records held until the earlier ones are evaluated, by event time.
struct Reorder {
    held: BTreeMap<(i64, u64), Held>,
    bytes: usize,
    limit: usize,
    seq: u64,
    /// The time given to records that have none: the last one seen, so
    /// they keep their place.
    last_time: i64,
}

struct Held {
    file: Arc<str>,
    position: Position,
    text: String,
}

impl Reorder {
    /// Holds a record; returns the oldest ones that no longer fit.
    fn push(&mut self, file: &Arc<str>, position: Position, text: &str) -> Vec<Held> {
        let time = event_time(text).unwrap_or(self.last_time);
        self.last_time = time;
        self.seq += 1;
        self.bytes += text.len();
        self.held.insert(
            (time, self.seq),
            Held {
                file: Arc::clone(file),
                position,
                text: text.to_owned(),
            },
        );
        let mut out = Vec::new();
        while self.bytes > self.limit {
            let Some((_, held)) = self.held.pop_first() else {
                break;
            };
            self.bytes -= held.text.len();
            out.push(held);
        }
        out
    }

    fn drain(&mut self) -> impl Iterator<Item = Held> + '_ {
        self.bytes = 0;
        std::mem::take(&mut self.held).into_values()
    }
}

/// The record's `eventTime` (or `@timestamp`), read from the text without
/// parsing it: only the order matters here.
fn event_time(text: &str) -> Option<i64> {
    let value = crate::records::string_field(text, "\"eventTime\"")
        .or_else(|| crate::records::string_field(text, "\"@timestamp\""))?;
    crate::detection::event::parse_time_ms(value)
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
    let mut reorder = Reorder {
        held: BTreeMap::new(),
        bytes: 0,
        limit: options.reorder_bytes,
        seq: 0,
        last_time: i64::MIN,
    };
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
                    summary.unopened += 1;
                    continue;
                }
            }
        };
        let file: Arc<str> = Arc::from(name.as_str());
        summary.files += 1;
        let mut bytes = 0u64;
        let counting = Counting {
            inner: reader,
            bytes: &mut bytes,
            progress,
        };
        let mut failure: Option<io::Error> = None;
        read_records(counting, Limits::records(options.max_bytes), |record| {
            summary.records += 1;
            let written = match record.text {
                Ok(text) if options.reorder_bytes > 0 => {
                    let overflow = reorder.push(&file, record.position, text);
                    summary.reorder_overflow += overflow.len() as u64;
                    overflow.into_iter().try_for_each(|held| {
                        let at = At(&held.file, held.position);
                        evaluate(engine, options, &mut summary, (&at, &held.text), out, notes)
                    })
                }
                Ok(text) => evaluate(
                    engine,
                    options,
                    &mut summary,
                    (&At(&file, record.position), text),
                    out,
                    notes,
                ),
                Err(rejection) => {
                    reject(&mut summary, &At(&file, record.position), &rejection, notes)
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
    for held in reorder.drain() {
        let at = At(&held.file, held.position);
        evaluate(engine, options, &mut summary, (&at, &held.text), out, notes)?;
    }
    for alert in engine.finish() {
        summary.count_alert(&alert);
        writeln!(out, "{}", alert.to_json_line())?;
    }
    out.flush()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Evaluates one record and writes its alerts, or counts its rejection.
fn evaluate(
    engine: &mut Engine,
    options: &ReplayOptions,
    summary: &mut Summary,
    (origin, text): (&At<'_>, &str),
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> io::Result<()> {
    match process(engine, options, summary, text, origin) {
        Ok(alerts) => alerts.iter().try_for_each(|a| {
            summary.count_alert(a);
            writeln!(out, "{}", a.to_json_line())
        }),
        Err(rejection) => reject(summary, origin, &rejection, notes),
    }
}

fn reject(
    summary: &mut Summary,
    origin: &At<'_>,
    rejection: &Rejection,
    notes: &mut dyn Write,
) -> io::Result<()> {
    let count = summary.rejected.entry(rejection.reason).or_default();
    *count += 1;
    if *count <= REJECTIONS_SHOWN {
        writeln!(notes, "{origin}: rejected: {rejection}")
    } else {
        Ok(())
    }
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
        reread_from: None,
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
    if summary.reorder_overflow > 0 {
        text.push_str(&format!(
            "reorder buffer full: {} records evaluated before all input was read (raise --reorder-buffer to keep event-time order)\n",
            summary.reorder_overflow
        ));
    }
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
