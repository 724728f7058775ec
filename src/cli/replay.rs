//! `cloudwarden replay`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::detection::Engine;
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::replay::{Progress, ReplayOptions, render_summary, replay};

/// How replayed records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// CloudTrail records (the default).
    Cloudtrail,
    /// Any JSON objects.
    Json,
    /// Lines of text.
    Text,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Runs a replay and prints its summary.
pub fn run(
    config: &Config,
    inputs: &[PathBuf],
    extra_rules: &[PathBuf],
    builtin: bool,
    format: InputFormat,
    reorder_bytes: usize,
) -> ExitCode {
    let (set, rule_failures) = super::rules::load(config, extra_rules, builtin);
    let mut engine = Engine::new(set, config.engine());
    let options = ReplayOptions {
        inputs: inputs.to_vec(),
        format: match format {
            InputFormat::Cloudtrail => Format::CloudTrail,
            InputFormat::Json => Format::Json,
            InputFormat::Text => Format::Text,
        },
        logsource: LogSource::cloudtrail(),
        max_bytes: config.detection.max_event_bytes,
        reorder_bytes,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = std::io::stderr();
    let bar = if stderr.is_terminal() {
        let total: u64 = inputs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let progress: Box<dyn Progress> = match &bar {
        Some(bar) => Box::new(Bar(bar.clone())),
        None => Box::new(()),
    };
    let mut notes = std::io::stderr();
    let result = replay(
        &mut engine,
        &options,
        &mut out,
        &mut notes,
        progress.as_ref(),
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(summary) => {
            let _ = write!(std::io::stderr(), "{}", render_summary(&summary));
            let engine_stats = engine.stats();
            let per_event = if engine_stats.events > 0 {
                engine_stats.evaluations as f64 / engine_stats.events as f64
            } else {
                0.0
            };
            let rules = engine.rules();
            let _ = writeln!(
                std::io::stderr(),
                "rule evaluations: {per_event:.1} per event (of {} rules and {} correlations loaded); {} matches",
                rules.rules.len(),
                rules.correlations.len(),
                engine_stats.matches
            );
            let stats = engine.correlation_stats();
            let _ = writeln!(
                std::io::stderr(),
                "correlation: {} groups open, {} evicted groups, {} evicted events, {} late events, {} dated in the future",
                engine.correlation_groups(),
                stats.evicted_groups,
                stats.evicted_entries,
                stats.late_events,
                stats.future_events
            );
            let anomaly = engine.anomaly_stats();
            let _ = writeln!(
                std::io::stderr(),
                "anomaly: {} rules, {} groups held, {} evicted groups, {} evicted values, {} matches without a group or value",
                rules.anomalies.len(),
                engine.anomaly_groups(),
                anomaly.evicted_groups,
                anomaly.evicted_values,
                anomaly.missing_field
            );
            // A replay that could not read an input, or ran without some of
            // its rules, did not check what it was asked to: say so in the exit code.
            if summary.unopened > 0 || rule_failures > 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "cloudwarden: replay incomplete: {} file(s) not opened, {} rule(s) not loaded",
                    summary.unopened,
                    rule_failures
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        // A closed stdout (replay | head) is not worth more than the exit code.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloudwarden: replay failed: {err}");
            ExitCode::FAILURE
        }
    }
}
