//! `cloudwarden alarms`: plan, apply, and test a filter pattern.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::EXIT_CONFIG;
use crate::alarms::api::AwsAlarms;
use crate::alarms::desired::desired;
use crate::alarms::pattern;
use crate::alarms::reconcile::{self, Plan};
use crate::config::Config;
use crate::records::{Flow, Limits, read_records};

/// Exit code of `plan` when something would change.
const EXIT_CHANGES: u8 = 2;

/// Largest event `test-pattern` reads.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Plans, and with `apply` makes, the changes.
pub fn plan(config: &Config, apply: bool) -> ExitCode {
    if !config.alarms.any() {
        println!("no alarms declared: enable [alarms.cis] or add [[alarms.custom]]");
        return ExitCode::SUCCESS;
    }
    super::with_aws(config, |clients| async move {
        let api = AwsAlarms::new(clients);
        let wanted = desired(&config.alarms);
        // The daemon's record of what it put is in its state file, which a
        // running daemon holds; here ownership goes by name and marker.
        let plan = match reconcile::plan(&api, &wanted, &std::collections::BTreeSet::new()).await {
            Ok(plan) => plan,
            Err(err) => {
                eprintln!("cloudwarden: cannot read the current alarms: {err}");
                return ExitCode::FAILURE;
            }
        };
        print_plan(&plan);
        if !apply {
            return if plan.changes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CHANGES)
            };
        }
        let applied = reconcile::apply(&api, &plan).await;
        for change in &applied.done {
            println!("done: {change}");
        }
        for (change, err) in &applied.failed {
            eprintln!("cloudwarden: failed: {change}: {err}");
        }
        println!(
            "{} change(s) made, {} failed",
            applied.done.len(),
            applied.failed.len()
        );
        if applied.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

fn print_plan(plan: &Plan) {
    for change in &plan.changes {
        println!("{change}");
    }
    for finding in &plan.findings {
        println!("warning: {finding}");
    }
    println!(
        "{} filter(s) and alarm(s) declared: {} in place, {} to change",
        plan.declared,
        plan.declared.saturating_sub(plan.changes.len()),
        plan.changes.len()
    );
}

/// Prints the events of `files` that `text` matches.
pub fn test_pattern(text: &str, files: &[PathBuf]) -> ExitCode {
    let compiled = match pattern::parse(text) {
        Ok(p) => p,
        Err(err) => {
            eprintln!("cloudwarden: invalid filter pattern: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (mut read, mut matched, mut bad) = (0u64, 0u64, 0u64);
    for path in files {
        let input: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            match File::open(path) {
                Ok(file) => Box::new(file),
                Err(err) => {
                    eprintln!("cloudwarden: cannot read {}: {err}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        };
        read_records(input, Limits::records(MAX_EVENT_BYTES), |record| {
            read += 1;
            let event = record
                .text
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
            match event {
                Some(event) if compiled.matches(&event) => {
                    matched += 1;
                    println!("{}: {} matches", path.display(), record.position);
                }
                Some(_) => {}
                None => {
                    bad += 1;
                    eprintln!("{}: {}: not a JSON event", path.display(), record.position);
                }
            }
            Flow::Continue
        });
    }
    println!("{matched} of {read} events match ({bad} unreadable)");
    ExitCode::SUCCESS
}
