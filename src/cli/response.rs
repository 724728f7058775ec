//! `cloudwarden response list|undo`: the journal of response actions, and
//! putting back what one changed. Both read the state file, which the
//! running daemon holds: stop it first.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::response::api::AwsResponse;
use crate::response::perform;
use crate::response::worker::{Entry, JOURNAL};

/// How `response list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A line per action.
    Text,
    /// A JSON object per action.
    Json,
}

/// Prints the journal entries of the last `since`.
pub fn list(config: &Config, since: Duration, format: Format) -> ExitCode {
    let state = match super::queue::open(config) {
        Ok(state) => state,
        Err(code) => return code,
    };
    let entries = match state.records::<Entry>(JOURNAL, SystemTime::now(), usize::MAX) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("cloudwarden: cannot read the response journal: {err}");
            return ExitCode::FAILURE;
        }
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let cutoff = now_ms - i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let mut shown = 0;
    for (id, entry) in entries.iter().filter(|(_, e)| e.done_ms >= cutoff) {
        shown += 1;
        let target = entry
            .intent
            .target
            .as_ref()
            .map_or_else(Clone::clone, ToString::to_string);
        let when = jiff::Timestamp::from_millisecond(entry.done_ms)
            .map(|t| t.to_string())
            .unwrap_or_default();
        match format {
            Format::Text => println!(
                "{id}  {when}  {:<30} {:<8} {:<7} {target}\n    {}{}",
                entry.intent.action.name(),
                if entry.intent.enforce {
                    "enforce"
                } else {
                    "dry_run"
                },
                entry.performed.outcome.as_str(),
                entry.performed.call,
                if entry.undone_ms.is_some() {
                    " (undone)"
                } else {
                    ""
                }
            ),
            Format::Json => println!(
                "{}",
                serde_json::json!({
                    "id": id,
                    "time": when,
                    "action": entry.intent.action.name(),
                    "mode": if entry.intent.enforce { "enforce" } else { "dry_run" },
                    "outcome": entry.performed.outcome.as_str(),
                    "target": target,
                    "detail": entry.performed.call,
                    "reason": entry.reason,
                    "rule": entry.intent.rule,
                    "event_id": entry.intent.event_id,
                    "undo": entry.performed.undo.as_ref().map(ToString::to_string),
                    "undone": entry.undone_ms.is_some(),
                })
            ),
        }
    }
    if format == Format::Text {
        println!(
            "{shown} action(s) in the last {}",
            humantime::format_duration(since)
        );
    }
    ExitCode::SUCCESS
}

/// Puts back what the action `id` changed, and marks it undone.
pub fn undo(config: &Config, id: &str) -> ExitCode {
    let state = match super::queue::open(config) {
        Ok(state) => state,
        Err(code) => return code,
    };
    let entry = match state.record::<Entry>(JOURNAL, id, SystemTime::now()) {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            eprintln!(
                "cloudwarden: no response action {id} in the journal (cloudwarden response list shows them)"
            );
            return ExitCode::FAILURE;
        }
        Err(err) => {
            eprintln!("cloudwarden: cannot read the response journal: {err}");
            return ExitCode::FAILURE;
        }
    };
    if entry.undone_ms.is_some() {
        println!("{id} was undone already");
        return ExitCode::SUCCESS;
    }
    let Some(undo) = entry.performed.undo.clone() else {
        eprintln!(
            "cloudwarden: {id} changed nothing that can be put back ({}: {})",
            entry.performed.outcome.as_str(),
            entry.performed.call
        );
        return ExitCode::FAILURE;
    };
    let code = super::with_aws(config, |clients| async move {
        match perform::undo(&AwsResponse::new(clients), &undo).await {
            Ok(()) => {
                println!("undone: {undo}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("cloudwarden: cannot undo {id}: {undo}: {err}");
                ExitCode::FAILURE
            }
        }
    });
    if code == ExitCode::SUCCESS {
        let marked = Entry {
            undone_ms: Some(jiff::Timestamp::now().as_millisecond()),
            ..entry
        };
        if let Err(err) = state.put_record(
            JOURNAL,
            id,
            &marked,
            Some(SystemTime::now() + Duration::from_secs(90 * 86_400)),
        ) {
            eprintln!("cloudwarden: undone, but cannot mark it in the journal: {err}");
        }
    }
    code
}
