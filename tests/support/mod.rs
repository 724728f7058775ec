//! Test support shared by the integration tests: the local AWS emulator,
//! a tiny HTTP client, and the daemon run as a real process.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod account;
pub mod alerts;
pub mod cloudtrail_server;
pub mod http;
pub mod moto;
pub mod process;
pub mod proxy;

/// The fixture rule that raises one alert per test.amazonaws.com record,
/// so that alerts count events.
pub const EVERY_TEST_EVENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rules/every_test_event"
);

/// `[alerts]` for tests that count what detection raised: every alert to
/// `{dir}/alerts.jsonl`, none held back by a dedup window.
pub const EVERY_ALERT_TO_FILE: &str = "file = \"{dir}/alerts.jsonl\"\ndedup_window = \"0s\"\n";

/// A daemon configuration for the process tests: `[aws]` pointed at
/// `endpoint` (plus `aws_extra` lines), a scratch state file and port, JSON
/// logs, only the rules in `rules`, `alerts` as the `[alerts]` body, and
/// `rest` (sources and the like) after it. `{dir}` is the daemon's folder.
pub fn daemon_config(
    endpoint: &str,
    aws_extra: &str,
    rules: &str,
    alerts: &str,
    rest: &str,
) -> String {
    format!(
        r#"[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"
{aws_extra}

[state]
path = "{{dir}}/state.redb"

[metrics]
listen = "127.0.0.1:0"

[log]
format = "json"

[rules]
builtin = false
paths = ["{rules}"]

[alerts]
{alerts}
{rest}
"#
    )
}

/// A single-threaded runtime for a test's own AWS calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The credentials every test hands the emulator; moto accepts any.
pub const TEST_ACCESS_KEY: &str = "testing";

/// The account moto reports for any credentials.
pub const MOTO_ACCOUNT: &str = "123456789012";
