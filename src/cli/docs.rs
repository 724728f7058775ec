//! Shell completions and man pages, generated from the command-line
//! definition itself so they never drift from it.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

/// Prints the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "cloudwarden", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes `cloudwarden.1` and a page per subcommand (`cloudwarden-run.1`,
/// ...) into `dir`.
pub fn man(dir: &Path) -> ExitCode {
    if let Err(err) = std::fs::create_dir_all(dir) {
        eprintln!("cloudwarden: cannot create {}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    match clap_mangen::generate_to(Cli::command(), dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "cloudwarden: cannot write man pages to {}: {err}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
