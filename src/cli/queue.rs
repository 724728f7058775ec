//! `cloudwarden queue`: the messages the queue sources set aside, listed
//! and sent back.
//!
//! A message that could never be handled is kept in the state store with
//! why, and deleted from its queue (see `sources::queue`). Once the cause
//! is fixed (a bucket policy, a KMS grant, a bug), `redrive` sends the kept
//! body back to the source's queue and forgets the record, so the daemon
//! reads it again.
//!
//! Both commands open the state file, which the running daemon holds
//! locked: they refuse while it runs, naming the file, rather than race it.
//! Stop the daemon, list or redrive, start it again; the redriven messages
//! are read at once.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::config::{Config, SourceKind};
use crate::sources::api::queue_region;
use crate::sources::queue::{SET_ASIDE_NAMESPACE, SetAside};
use crate::state::{StateError, StateStore};

/// How the list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// One line per message.
    Table,
    /// One JSON object per message, body included.
    Json,
}

pub(super) fn open(config: &Config) -> Result<StateStore, ExitCode> {
    StateStore::open(&config.state.path).map_err(|err| {
        match err {
            StateError::Locked { .. } => eprintln!(
                "cloudwarden: {err}: the daemon is running; stop it first (systemctl stop cloudwarden), then run this again"
            ),
            other => eprintln!("cloudwarden: {other}"),
        }
        ExitCode::FAILURE
    })
}

/// The state store and the messages set aside in it.
fn set_aside(config: &Config) -> Result<(StateStore, Vec<(String, SetAside)>), ExitCode> {
    let state = open(config)?;
    let messages = state
        .records(SET_ASIDE_NAMESPACE, SystemTime::now(), usize::MAX)
        .map_err(|err| {
            eprintln!("cloudwarden: cannot read the set-aside messages: {err}");
            ExitCode::FAILURE
        })?;
    Ok((state, messages))
}

/// `queue list-set-aside`.
pub fn list(config: &Config, format: ListFormat) -> ExitCode {
    let messages = match set_aside(config) {
        Ok((_, messages)) => messages,
        Err(code) => return code,
    };
    for (id, m) in &messages {
        match format {
            ListFormat::Table => {
                let at = jiff::Timestamp::from_second(m.at)
                    .map_or_else(|_| m.at.to_string(), |t| t.to_string());
                println!(
                    "{id}  {at}  received {} times  {} bytes  {}",
                    m.receive_count,
                    m.body.len(),
                    m.reason
                );
            }
            ListFormat::Json => println!(
                "{}",
                serde_json::json!({
                    "id": id, "source": m.source, "message_id": m.message_id,
                    "reason": m.reason, "receive_count": m.receive_count, "at": m.at,
                    "body": m.body,
                })
            ),
        }
    }
    if format == ListFormat::Table {
        println!("{} message(s) set aside", messages.len());
    }
    ExitCode::SUCCESS
}

/// `queue redrive [ID...]`: every set-aside message, or the ones named.
pub fn redrive(config: &Config, ids: &[String]) -> ExitCode {
    let (state, messages) = match set_aside(config) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let unknown: Vec<&String> = ids
        .iter()
        .filter(|id| !messages.iter().any(|(key, _)| key == *id))
        .collect();
    if !unknown.is_empty() {
        for id in &unknown {
            eprintln!(
                "cloudwarden: no set-aside message {id} (see `cloudwarden queue list-set-aside`)"
            );
        }
        return ExitCode::FAILURE;
    }
    let chosen: Vec<(String, SetAside)> = messages
        .into_iter()
        .filter(|(key, _)| ids.is_empty() || ids.contains(key))
        .collect();
    if chosen.is_empty() {
        println!("no message set aside");
        return ExitCode::SUCCESS;
    }
    super::with_aws(config, |clients| async move {
        let mut failed = 0;
        for (key, message) in &chosen {
            let Some(queue_url) = queue_of(config, &message.source) else {
                eprintln!(
                    "cloudwarden: {key}: source {} is no queue source in this configuration; kept",
                    message.source
                );
                failed += 1;
                continue;
            };
            let sqs = clients.sqs(&queue_region(queue_url, &clients.home_region()));
            let sent = sqs
                .send_message()
                .queue_url(queue_url)
                .message_body(&message.body)
                .send()
                .await;
            match sent {
                Ok(_) => {
                    // Sent first, forgotten second: a failure in between
                    // leaves a copy in both, and the daemon drops repeats by eventID.
                    if let Err(err) = state.remove_record(SET_ASIDE_NAMESPACE, key) {
                        eprintln!("cloudwarden: {key}: sent back, but not forgotten: {err}");
                        failed += 1;
                    } else {
                        println!("{key}: sent back to {queue_url}");
                    }
                }
                Err(err) => {
                    eprintln!(
                        "cloudwarden: {key}: cannot send it back: {}; kept",
                        aws_smithy_types::error::display::DisplayErrorContext(&err)
                    );
                    failed += 1;
                }
            }
        }
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// The queue of the configured queue source named `source`.
fn queue_of<'c>(config: &'c Config, source: &str) -> Option<&'c str> {
    config
        .sources
        .iter()
        .filter(|s| s.name == source)
        .find_map(|s| match &s.kind {
            SourceKind::S3Sqs { queue_url, .. } | SourceKind::EventBridgeSqs { queue_url, .. } => {
                Some(queue_url.as_str())
            }
            _ => None,
        })
}
