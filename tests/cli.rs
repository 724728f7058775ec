//! The command line as a user meets it: help, version, validate and exit codes.

mod support;

use support::process::run;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudwarden.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

#[test]
fn help_names_every_command() {
    let output = run(&["--help"], &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    for command in ["run", "validate", "version"] {
        assert!(text.contains(command), "{text}");
    }
    let run_help = stdout(&run(&["run", "--help"], &[]));
    assert!(
        run_help.contains("--config <PATH>")
            && run_help.contains("/etc/cloudwarden/cloudwarden.toml"),
        "{run_help}"
    );
}

#[test]
fn version_prints_the_crate_version() {
    let output = run(&["version"], &[]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("cloudwarden {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_example_configuration_validates() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cloudwarden.toml");
    let output = run(&["validate", "--config", example], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("configuration is valid"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_unknown_key_exits_78_naming_the_key_file_and_line() {
    let (_dir, path) = write_config("[metrics]\nlisten = \"127.0.0.1:9898\"\nlisen = \"x\"\n");
    let output = run(&["validate", "--config", &path], &[]);
    assert_eq!(output.status.code(), Some(78));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "{path}:3:1: metrics.lisen: unknown key (did you mean `listen`?)"
        )),
        "{text}"
    );
}

#[test]
fn all_problems_are_printed_together_and_run_refuses_to_start() {
    let (_dir, path) =
        write_config("[log]\nlevel = \"loud\"\n[daemon]\nshutdown_grace = \"forever\"\n");
    for command in ["validate", "run"] {
        let output = run(&[command, "--config", &path], &[]);
        assert_eq!(output.status.code(), Some(78), "{command}");
        let text = stderr(&output);
        assert!(
            text.contains("invalid configuration (2 problems)"),
            "{text}"
        );
        assert!(
            text.contains(":2:1: log.level: invalid log level \"loud\""),
            "{text}"
        );
        assert!(
            text.contains(":4:1: daemon.shutdown_grace: invalid duration \"forever\""),
            "{text}"
        );
        assert!(
            !text.contains("panicked") && !text.contains("backtrace"),
            "{text}"
        );
    }
}

#[test]
fn environment_overrides_are_validated_too() {
    let (_dir, path) = write_config("");
    let output = run(
        &["validate", "--config", &path],
        &[("CLOUDWARDEN_METRICS__LISTEN", "everywhere")],
    );
    assert_eq!(output.status.code(), Some(78));
    let text = stderr(&output);
    assert!(
        text.contains("environment variable CLOUDWARDEN_METRICS__LISTEN: metrics.listen"),
        "{text}"
    );
}

#[test]
fn a_missing_named_file_exits_78() {
    let output = run(
        &["validate", "--config", "/nonexistent/cloudwarden.toml"],
        &[],
    );
    assert_eq!(output.status.code(), Some(78));
    assert!(
        stderr(&output).contains("/nonexistent/cloudwarden.toml: configuration file not found")
    );
}

#[test]
fn the_config_file_can_be_named_by_environment() {
    let (_dir, path) = write_config("[log]\nlevel = \"debug\"\n");
    let output = run(&["validate"], &[("CLOUDWARDEN_CONFIG", &path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(&path));
}
