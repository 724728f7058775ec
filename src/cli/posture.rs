//! `cloudwarden posture check|plan|apply`: one sweep printed, and the
//! declared settings compared or put in place, from the command line.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::config::Config;
use crate::detection::Level;
use crate::posture::api::{AwsPosture, PostureApi};
use crate::posture::checks::{Finding, Settings};
use crate::posture::ensure;
use crate::posture::sweep::{self, Target};

/// Exit code when a finding at or above `--fail-on` was found.
const EXIT_FINDINGS: u8 = 3;

/// Exit code when `plan` would change something.
const EXIT_CHANGES: u8 = 2;

/// How `posture check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A line per finding.
    Text,
    /// A JSON object per finding, a line each.
    Json,
}

/// One sweep, printed.
pub fn check(config: &Config, format: Format, fail_on: Level) -> ExitCode {
    super::with_aws(config, |clients| async move {
        let home = clients.home_region();
        let api = AwsPosture::new(clients);
        let account = match api.account().await {
            Ok(account) => account,
            Err(err) => {
                eprintln!("cloudwarden: cannot learn the account (sts GetCallerIdentity): {err}");
                return ExitCode::FAILURE;
            }
        };
        let regions = if config.posture.regions.is_empty() {
            match api.regions().await {
                Ok(regions) => regions,
                Err(err) => {
                    eprintln!(
                        "cloudwarden: cannot list the account's Regions (set posture.regions to skip this): {err}"
                    );
                    return ExitCode::FAILURE;
                }
            }
        } else {
            config.posture.regions.clone()
        };
        let settings = Settings {
            account,
            home_region: home,
            config: config.posture.clone(),
            cis_alarms: config.alarms.cis.enabled,
            now: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        };
        let result = sweep::sweep(&api, &settings, &regions, &Target::all(&regions)).await;
        let mut findings = result.findings;
        findings.sort_by(|a, b| {
            b.check
                .severity
                .cmp(&a.check.severity)
                .then_with(|| a.key().cmp(&b.key()))
        });
        for finding in &findings {
            match format {
                Format::Text => println!(
                    "{:<8} {:<40} {} ({})\n         {}",
                    finding.check.severity.as_str().to_ascii_uppercase(),
                    finding.check.id,
                    finding.resource,
                    finding.region,
                    finding.message
                ),
                Format::Json => println!("{}", json(finding, &settings.account)),
            }
        }
        for (part, err) in &result.failed {
            eprintln!("cloudwarden: could not check {part}: {err}");
        }
        if format == Format::Text {
            println!(
                "{} finding(s) in {} Region(s); {} part(s) could not be read",
                findings.len(),
                regions.len(),
                result.failed.len()
            );
        }
        if findings.iter().any(|f| f.check.severity >= fail_on) {
            ExitCode::from(EXIT_FINDINGS)
        } else if !result.failed.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn json(finding: &Finding, account: &str) -> String {
    serde_json::json!({
        "check": finding.check.id,
        "severity": finding.check.severity.as_str(),
        "resource": finding.resource,
        "region": finding.region,
        "account": account,
        "cis": finding.check.cis,
        "title": finding.check.title,
        "message": finding.message,
        "remediation": finding.check.remediation,
    })
    .to_string()
}

/// Prints what the declared settings need; with `apply`, makes it so.
pub fn plan(config: &Config, apply: bool) -> ExitCode {
    if !config.posture.declares() {
        println!(
            "nothing declared: add [posture.cloudtrail.ensure] or [[posture.security_groups.declared]]"
        );
        return ExitCode::SUCCESS;
    }
    super::with_aws(config, |clients| async move {
        let home = clients.home_region();
        let api = AwsPosture::new(clients);
        let plan = ensure::plan(&api, &config.posture, &home).await;
        for change in &plan.changes {
            println!("{change}");
        }
        for foreign in &plan.foreign {
            println!("warning: {foreign}");
        }
        for (what, err) in &plan.failed {
            eprintln!("cloudwarden: cannot read {what}: {err}");
        }
        println!(
            "{} setting(s) declared: {} change(s) to make, {} held by others",
            plan.declared,
            plan.changes.len(),
            plan.foreign.len()
        );
        if !apply {
            return if !plan.failed.is_empty() {
                ExitCode::FAILURE
            } else if plan.changes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CHANGES)
            };
        }
        let applied = ensure::apply(&api, &plan).await;
        for change in &applied.done {
            println!("done: {change}");
            tracing::warn!(change = %change, "posture change made");
        }
        for (change, err) in &applied.failed {
            eprintln!("cloudwarden: failed: {change}: {err}");
        }
        println!(
            "{} change(s) made, {} failed",
            applied.done.len(),
            applied.failed.len()
        );
        if applied.failed.is_empty() && plan.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
