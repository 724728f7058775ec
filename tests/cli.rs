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
fn kubernetes_service_links_are_ignored_with_a_warning_and_other_unknown_variables_refused() {
    let (_dir, path) = write_config("");
    // What a Service named `cloudwarden` puts in every pod of its namespace.
    let links = [
        ("CLOUDWARDEN_PORT", "tcp://10.96.0.12:9898"),
        ("CLOUDWARDEN_PORT_9898_TCP", "tcp://10.96.0.12:9898"),
        ("CLOUDWARDEN_PORT_9898_TCP_ADDR", "10.96.0.12"),
        ("CLOUDWARDEN_PORT_9898_TCP_PORT", "9898"),
        ("CLOUDWARDEN_PORT_9898_TCP_PROTO", "tcp"),
        ("CLOUDWARDEN_SERVICE_HOST", "10.96.0.12"),
        ("CLOUDWARDEN_SERVICE_PORT", "9898"),
        ("CLOUDWARDEN_SERVICE_PORT_METRICS", "9898"),
    ];
    let output = run(&["validate", "--config", &path], &links);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("warning: CLOUDWARDEN_PORT ignored: it is a Kubernetes service link"),
        "{text}"
    );
    assert!(
        text.contains("CLOUDWARDEN_SERVICE_PORT_METRICS ignored"),
        "{text}"
    );
    let mut with_typo = links.to_vec();
    with_typo.push(("CLOUDWARDEN_LOGG__LEVEL", "debug"));
    let output = run(&["validate", "--config", &path], &with_typo);
    assert_eq!(output.status.code(), Some(78));
    assert!(
        stderr(&output).contains("environment variable CLOUDWARDEN_LOGG: logg: unknown key"),
        "{}",
        stderr(&output)
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

#[test]
fn the_file_outranks_the_container_defaults_and_config_show_says_where_each_value_came_from() {
    let (_dir, path) = write_config(
        "[state]\npath = \"/data/cloudwarden.redb\"\n\n[metrics]\nlisten = \"127.0.0.1:9100\"\n",
    );
    let env = [
        ("CLOUDWARDEN_DEFAULTS", "container"),
        ("CLOUDWARDEN_LOG__LEVEL", "warn"),
    ];
    let output = run(&["config", "show", "--origin", "--config", &path], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    let says = |key: &str, value: &str, origin: &str| {
        let line = line(key);
        assert!(
            line.starts_with(&format!("{key} = {value} "))
                && line.ends_with(&format!("# {origin}")),
            "{line}"
        );
    };
    says(
        "state.path",
        "\"/data/cloudwarden.redb\"",
        &format!("{path}:2:1"),
    );
    says(
        "metrics.listen",
        "\"127.0.0.1:9100\"",
        &format!("{path}:5:1"),
    );
    says(
        "log.format",
        "\"json\"",
        "container defaults (CLOUDWARDEN_DEFAULTS=container)",
    );
    says(
        "log.level",
        "\"warn\"",
        "environment variable CLOUDWARDEN_LOG__LEVEL",
    );
    says("pipeline.channel_capacity", "1024", "built-in default");
    // Without --origin: the values alone.
    let plain = stdout(&run(&["config", "show", "--config", &path], &env));
    assert!(
        plain
            .lines()
            .any(|l| l == "state.path = \"/data/cloudwarden.redb\""),
        "{plain}"
    );
    // An unknown layer, like any bad setting, exits 78.
    let output = run(
        &["config", "show", "--config", &path],
        &[("CLOUDWARDEN_DEFAULTS", "pod")],
    );
    assert_eq!(output.status.code(), Some(78));
    assert!(stderr(&output).contains("unknown defaults \"pod\""));
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&["completions", shell], &[]);
        assert_eq!(output.status.code(), Some(0));
        let script = stdout(&output);
        for command in ["healthcheck", "replay", "list-set-aside"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run(&["man", &dir.path().display().to_string()], &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let page = std::fs::read_to_string(dir.path().join("cloudwarden.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH cloudwarden"),
        "{page}"
    );
    let show = std::fs::read_to_string(dir.path().join("cloudwarden-config-show.1")).unwrap();
    assert!(show.contains("origin"), "{show}");
}

#[test]
fn rule_ids_no_rule_defines_are_configuration_errors_at_their_keys() {
    let (_dir, path) = write_config(
        r#"[rules]
disabled = ["iam_bb_user_created", "no-such-rule"]

[[alerts.sns]]
topic_arn = "arn:aws:sns:us-east-1:123456789012:alerts"
rules = ["iam_bb_user_created", "cloudwarden-alarm-drift", "cloudwarden-alarm-wiring"]

[[alerts.suppress]]
reason = "typo"
rule = "f886f4c6-0000-0000-0000-000000000000"
"#,
    );
    for command in ["validate", "run"] {
        let output = run(
            &[command, "--config", &path],
            &[("AWS_REGION", "us-east-1")],
        );
        assert_eq!(output.status.code(), Some(78), "{command}: {output:?}");
        let text = stderr(&output);
        for expected in [
            format!("{path}:2:36: rules.disabled[1]: no rule has the id or name \"no-such-rule\""),
            format!(
                "{path}:6:10: alerts.sns[0].rules[0]: \"iam_bb_user_created\" is a rule's name; alerts are matched by rule id"
            ),
            format!(
                "{path}:10:1: alerts.suppress[0].rule: no rule has the id \"f886f4c6-0000-0000-0000-000000000000\""
            ),
        ] {
            assert!(
                text.contains(&expected),
                "{command}: missing {expected:?} in {text}"
            );
        }
        assert!(
            !text.contains("disabled[0]"),
            "a name is fine in rules.disabled: {text}"
        );
    }
}
