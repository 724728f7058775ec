//! The command line: `run`, `validate`, `version`, and the exit codes they end with.
//!
//! This is the binary's edge: errors become a message on stderr and an exit
//! code (0 success, 1 runtime failure, 78 configuration error), never a
//! backtrace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    /// Check the configuration and print every problem at once.
    ///
    /// Exits 0 when valid and 78 when not, so it can guard a deployment or a
    /// systemd ExecStartPre.
    Validate(ConfigArgs),
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
        Command::Validate(args) => validate(&args.location()),
        Command::Run(args) => match load(&args.location()) {
            Ok(config) => run(config),
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

fn validate(location: &ConfigLocation) -> ExitCode {
    match load(location) {
        Ok(config) => {
            let file = if location.is_used() {
                location.path.display().to_string()
            } else {
                "built-in defaults and environment".to_owned()
            };
            println!(
                "configuration is valid: {file} ({} source{}, {} SNS topic{})",
                config.sources.len(),
                if config.sources.len() == 1 { "" } else { "s" },
                config.alerts.sns.len(),
                if config.alerts.sns.len() == 1 {
                    ""
                } else {
                    "s"
                },
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(config: Config) -> ExitCode {
    if let Err(err) = crate::telemetry::logging::init(&config.log) {
        eprintln!("cloudwarden: {err}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
    match runtime.block_on(crate::daemon::run(config)) {
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
