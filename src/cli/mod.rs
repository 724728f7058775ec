//! The command line: `run`, `validate`, `rules`, `replay`, `version`, and the
//! exit codes they end with.
//!
//! This is the binary's edge: errors become a message on stderr and an exit
//! code (0 success, 1 runtime failure, 78 configuration error), never a
//! backtrace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod alarms;
mod docs;
mod healthcheck;
mod posture;
mod queue;
mod replay;
mod response;
mod rules;

use crate::EXIT_CONFIG;
use crate::config::{self, Config, ConfigLocation, DEFAULT_CONFIG_PATH};

/// cloudwarden watches AWS accounts for security events: it reads CloudTrail
/// and CloudWatch Logs, runs every event through Sigma rules, publishes
/// alerts to SNS and keeps CloudWatch alarms in their declared state.
#[derive(Debug, Parser)]
#[command(name = "cloudwarden", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    ///
    /// Serves /metrics, /healthz and /readyz on metrics.listen and speaks the
    /// systemd notify protocol when started by systemd.
    Run(ConfigArgs),
    /// Check the configuration and the rules, and print every problem at once.
    ///
    /// Exits 0 when the configuration is valid and 78 when not, so it can
    /// guard a deployment or a systemd ExecStartPre. A rule that fails to load
    /// is reported; with --strict it also makes the exit code 78.
    Validate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also fail (exit 78) when any rule fails to load.
        #[arg(long)]
        strict: bool,
        /// Also ask AWS whether each SNS topic exists and may be used with
        /// these credentials (GetTopicAttributes); a missing or forbidden
        /// topic exits 78.
        #[arg(long)]
        online: bool,
    },
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For bash: cloudwarden completions bash > /etc/bash_completion.d/cloudwarden
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for cloudwarden and each subcommand into DIR.
    Man {
        /// Where to write them, such as /usr/local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Ask the running daemon's admin server whether it is healthy
    /// (/healthz, or /readyz with --ready): exit 0 when it says so, 1 when
    /// not or when it cannot be reached. For container health checks.
    Healthcheck {
        #[command(flatten)]
        config: ConfigArgs,
        /// Ask /readyz instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// The admin server's address; metrics.listen by default.
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<std::net::SocketAddr>,
    },
    /// List or test detection rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Show or make the changes that bring CloudWatch alarms to their declared state.
    #[command(subcommand)]
    Alarms(AlarmsCommand),
    /// Check the account's trails, security groups and IAM once, or show
    /// or make the changes declared settings need.
    #[command(subcommand)]
    Posture(PostureCommand),
    /// List the response actions taken, or undo one.
    ///
    /// Both read the state file, which the running daemon holds: stop the
    /// daemon first.
    #[command(subcommand)]
    Response(ResponseCommand),
    /// List or send back the queue messages the queue sources set aside.
    ///
    /// Both read the state file, which the running daemon holds: stop the
    /// daemon first.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Run CloudTrail data from files through detection, offline.
    ///
    /// Reads S3 trail files ({"Records":[...]}, .json or .json.gz), JSON
    /// arrays or NDJSON; - reads standard input. Alerts are written to stdout
    /// as JSON lines; a summary goes to stderr.
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
        /// Extra rule files or folders, on top of the configured ones.
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Leave out the built-in rule pack.
        #[arg(long)]
        no_builtin: bool,
        /// How records are read.
        #[arg(long, value_enum, default_value = "cloudtrail")]
        format: replay::InputFormat,
        /// How late an event may come and still be correlated (default:
        /// detection.late_allowance). Records are put in event-time order
        /// first, within the reorder buffer.
        #[arg(long, value_name = "DURATION")]
        late_allowance: Option<humantime::Duration>,
        /// MiB of records held to evaluate them in event-time order, whatever
        /// the order of the files (0: as read). Past it the oldest go first.
        #[arg(long, value_name = "MIB", default_value_t = 256)]
        reorder_buffer: usize,
        /// Files to replay (- for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The configuration file. Without this option, /etc/cloudwarden/cloudwarden.toml
    /// is read when it exists; otherwise the built-in defaults and CLOUDWARDEN_*
    /// environment variables are used alone.
    #[arg(short, long, value_name = "PATH", env = "CLOUDWARDEN_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Show every loaded rule: id, title, level, tags.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Leave out the built-in rule pack.
        #[arg(long)]
        no_builtin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: rules::ListFormat,
        /// Extra rule files or folders, on top of the configured ones.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run the test events stored beside rules (NAME.tests.yml next to NAME.yml).
    ///
    /// Without paths, tests every loaded rule: the built-in pack and
    /// rules.paths. With paths, tests the rules found there. Exits 1 when a
    /// test fails.
    Test {
        #[command(flatten)]
        config: ConfigArgs,
        /// Leave out the built-in rule pack.
        #[arg(long)]
        no_builtin: bool,
        /// Rule files or folders whose tests to run.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, one `key = value` line per
    /// setting, after the built-in defaults, the defaults named by
    /// CLOUDWARDEN_DEFAULTS, the file and the environment are merged.
    ///
    /// An invalid configuration exits 78 with every problem.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        /// Say after each value where it came from.
        #[arg(long)]
        origin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AlarmsCommand {
    /// Print what would change to bring the declared metric filters and
    /// alarms into place, and the wiring problems found; change nothing.
    ///
    /// Exits 0 when nothing would change, 2 when something would.
    Plan {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Make the changes once and print them.
    Apply {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Evaluate a CloudWatch Logs JSON filter pattern against sample events.
    ///
    /// Reads trail files ({"Records":[...]}), JSON arrays or one JSON event
    /// per line, and prints the events that match.
    TestPattern {
        /// The filter pattern, e.g. '{ $.eventName = "ConsoleLogin" }'.
        pattern: String,
        /// Files of events (- for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PostureCommand {
    /// Sweep once and print the findings.
    ///
    /// Exits 0 when no finding is at or above --fail-on, 3 when one is, 1
    /// when a part of the account could not be read.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// How to print the findings.
        #[arg(long, value_enum, default_value = "text")]
        format: posture::Format,
        /// The lowest severity that makes the exit code 3.
        #[arg(long, default_value = "high", value_parser = parse_level)]
        fail_on: crate::detection::Level,
    },
    /// Print the changes [posture.cloudtrail.ensure] and
    /// [[posture.security_groups.declared]] need; change nothing.
    ///
    /// Exits 0 when nothing would change, 2 when something would.
    Plan {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Make those changes once and print them.
    Apply {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ResponseCommand {
    /// The journal: each action, its mode, outcome, target and undo.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// How far back.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// How to print it.
        #[arg(long, value_enum, default_value = "text")]
        format: response::Format,
    },
    /// Put back what one action changed (re-authorize the revoked rule,
    /// re-attach the policy, re-activate the key, remove the quarantine).
    Undo {
        #[command(flatten)]
        config: ConfigArgs,
        /// The action's id, from `response list` or its alert.
        id: String,
    },
}

fn parse_level(text: &str) -> Result<crate::detection::Level, String> {
    text.parse().map_err(|_| {
        format!("unknown level \"{text}\" (expected informational, low, medium, high or critical)")
    })
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Show every message set aside: id, when, receives, size and why.
    ListSetAside {
        #[command(flatten)]
        config: ConfigArgs,
        /// Output format (json includes the bodies).
        #[arg(long, value_enum, default_value = "table")]
        format: queue::ListFormat,
    },
    /// Send set-aside messages back to their source's queue and forget them.
    Redrive {
        #[command(flatten)]
        config: ConfigArgs,
        /// Ids from list-set-aside; none means every message.
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
}

impl ConfigArgs {
    fn location(&self) -> ConfigLocation {
        match &self.config {
            Some(path) => ConfigLocation {
                path: path.clone(),
                explicit: true,
            },
            None => ConfigLocation {
                path: PathBuf::from(DEFAULT_CONFIG_PATH),
                explicit: false,
            },
        }
    }
}

/// Parses the command line, runs the command, and returns its exit code.
pub fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("cloudwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate {
            config,
            strict,
            online,
        } => validate(&config.location(), strict, online),
        Command::Run(args) => match load(&args.location()) {
            Ok(config) => run(config, args.location()),
            Err(code) => code,
        },
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(&dir),
        Command::Healthcheck {
            config,
            ready,
            addr,
        } => {
            let path = if ready { "/readyz" } else { "/healthz" };
            match addr {
                Some(addr) => healthcheck::check(addr, path),
                None => match load(&config.location()) {
                    Ok(config) => healthcheck::check(config.metrics.listen, path),
                    Err(code) => code,
                },
            }
        }
        Command::Config(ConfigCommand::Show { config, origin }) => {
            match config::show(&config.location(), origin) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprint!("cloudwarden: {errors}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Rules(RulesCommand::List {
            config,
            no_builtin,
            format,
            paths,
        }) => match load(&config.location()) {
            Ok(config) => rules::list(&config, &paths, !no_builtin, format),
            Err(code) => code,
        },
        Command::Rules(RulesCommand::Test {
            config,
            no_builtin,
            paths,
        }) => match load(&config.location()) {
            Ok(config) => rules::test(&config, &paths, !no_builtin),
            Err(code) => code,
        },
        Command::Queue(QueueCommand::ListSetAside { config, format }) => {
            match load(&config.location()) {
                Ok(config) => queue::list(&config, format),
                Err(code) => code,
            }
        }
        Command::Queue(QueueCommand::Redrive { config, ids }) => match load(&config.location()) {
            Ok(config) => queue::redrive(&config, &ids),
            Err(code) => code,
        },
        Command::Alarms(AlarmsCommand::Plan { config }) => match load(&config.location()) {
            Ok(config) => alarms::plan(&config, false),
            Err(code) => code,
        },
        Command::Alarms(AlarmsCommand::Apply { config }) => match load(&config.location()) {
            Ok(config) => alarms::plan(&config, true),
            Err(code) => code,
        },
        Command::Posture(PostureCommand::Check {
            config,
            format,
            fail_on,
        }) => match load(&config.location()) {
            Ok(config) => posture::check(&config, format, fail_on),
            Err(code) => code,
        },
        Command::Response(ResponseCommand::List {
            config,
            since,
            format,
        }) => match load(&config.location()) {
            Ok(config) => response::list(&config, since, format),
            Err(code) => code,
        },
        Command::Response(ResponseCommand::Undo { config, id }) => match load(&config.location()) {
            Ok(config) => response::undo(&config, &id),
            Err(code) => code,
        },
        Command::Posture(PostureCommand::Plan { config }) => match load(&config.location()) {
            Ok(config) => posture::plan(&config, false),
            Err(code) => code,
        },
        Command::Posture(PostureCommand::Apply { config }) => match load(&config.location()) {
            Ok(config) => posture::plan(&config, true),
            Err(code) => code,
        },
        Command::Alarms(AlarmsCommand::TestPattern { pattern, files }) => {
            alarms::test_pattern(&pattern, &files)
        }
        Command::Replay {
            config,
            rules: extra,
            no_builtin,
            format,
            late_allowance,
            reorder_buffer,
            files,
        } => match load(&config.location()) {
            Ok(mut config) => {
                if let Some(allowance) = late_allowance {
                    config.detection.late_allowance = allowance.into();
                }
                let reorder_bytes = reorder_buffer.saturating_mul(1024 * 1024);
                replay::run(&config, &files, &extra, !no_builtin, format, reorder_bytes)
            }
            Err(code) => code,
        },
    }
}

fn load(location: &ConfigLocation) -> Result<Config, ExitCode> {
    config::load(location).map_err(|errors| {
        eprint!("cloudwarden: {errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn validate(location: &ConfigLocation, strict: bool, online: bool) -> ExitCode {
    let config = match load(location) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (set, failures) = rules::load(&config, &[], true);
    if let Err(code) = known_rule_ids(location, &config, &set) {
        return code;
    }
    let file = if location.is_used() {
        location.path.display().to_string()
    } else {
        "built-in defaults and environment".to_owned()
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    println!(
        "configuration is valid: {file} ({}, {}, {} loaded{})",
        plural(config.sources.len(), "source"),
        plural(config.alerts.sns.len(), "SNS topic"),
        plural(set.rules.len() + set.correlations.len(), "rule"),
        if failures > 0 {
            format!(", {} failed to load", plural(failures, "rule"))
        } else {
            String::new()
        },
    );
    for name in &config.ignored_env {
        eprintln!(
            "cloudwarden: warning: {name} ignored: it is a Kubernetes service link, not a setting (set enableServiceLinks: false in the pod spec)"
        );
    }
    let fed_by: Vec<_> = config.sources.iter().map(|s| s.kind.logsource()).collect();
    if !fed_by.is_empty() {
        for rule in crate::rules::unfed(&set, &fed_by) {
            eprintln!(
                "cloudwarden: warning: rule {} ({}): no configured source reads events of its logsource ({})",
                rule.meta.id, rule.origin, rule.meta.logsource
            );
        }
    }
    if strict && failures > 0 {
        eprintln!(
            "cloudwarden: --strict: {} failed to load",
            plural(failures, "rule")
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    if online {
        return check_online(&config);
    }
    ExitCode::SUCCESS
}

/// Runs `work` with AWS clients as `config.aws` sets them up, on a
/// runtime of its own: the edge of the commands that call AWS once.
fn with_aws<F, Fut>(config: &Config, work: F) -> ExitCode
where
    F: FnOnce(crate::aws::Clients) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cloudwarden: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let sdk = match crate::aws::sdk_config(&config.aws).await {
            Ok(sdk) => sdk,
            Err(err) => {
                eprintln!("cloudwarden: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let metrics = match crate::telemetry::Metrics::new() {
            Ok(metrics) => metrics,
            Err(err) => {
                eprintln!("cloudwarden: {err}");
                return ExitCode::FAILURE;
            }
        };
        work(crate::aws::Clients::new(
            sdk,
            config.aws.endpoints.clone(),
            metrics.aws,
        ))
        .await
    })
}

/// `validate --online`: the SNS topics, asked of AWS.
fn check_online(config: &Config) -> ExitCode {
    with_aws(config, |clients| async move {
        let sns = crate::alerts::sinks::sns_api::SnsClient::new(clients);
        let problems = crate::alerts::topics::check(&sns, &config.alerts.sns).await;
        for problem in &problems {
            let severity = if problem.fatal { "error" } else { "warning" };
            eprintln!("cloudwarden: {severity}: SNS topic {problem}");
        }
        let fatal = problems.iter().filter(|p| p.fatal).count();
        if fatal > 0 {
            return ExitCode::from(EXIT_CONFIG);
        }
        println!("SNS topics checked: {} usable", config.alerts.sns.len());
        ExitCode::SUCCESS
    })
}

/// Refuses (exit 78, every id at its key) a configuration that names rule
/// ids no rule file defines.
fn known_rule_ids(
    location: &ConfigLocation,
    config: &Config,
    set: &crate::detection::sigma::ruleset::RuleSet,
) -> Result<(), ExitCode> {
    let unknown = crate::rules::unknown_ids(config, set);
    if unknown.is_empty() {
        return Ok(());
    }
    eprint!("cloudwarden: {}", config::problems_at(location, unknown));
    Err(ExitCode::from(EXIT_CONFIG))
}

fn run(config: Config, location: ConfigLocation) -> ExitCode {
    let (set, _) = crate::rules::load(&config.rules, config.detection.max_group_entries, &[]);
    if let Err(code) = known_rule_ids(&location, &config, &set) {
        return code;
    }
    drop(set);
    if let Err(err) = crate::telemetry::logging::init(&config.log) {
        eprintln!("cloudwarden: {err}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // The blocking pool runs state-store transactions and file reads; a
    // bound keeps the thread count inside the unit's TasksMax.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_name("cloudwarden")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cloudwarden: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");
    for name in &config.ignored_env {
        tracing::warn!(variable = %name, "ignoring a Kubernetes service-link variable (set enableServiceLinks: false in the pod spec to avoid it)");
    }
    match runtime.block_on(crate::daemon::run(config, location)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "cloudwarden stopped with an error");
            eprintln!("cloudwarden: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Reports a panic as one line, without a backtrace: a user cannot act on
/// one, and the location is enough for a bug report.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        tracing::error!(%message, location = %location, "internal error");
        eprintln!("cloudwarden: internal error{location}: {message} (please report this)");
    }));
}
