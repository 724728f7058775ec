//! Loading configurations end to end: layers, every problem at once, positions.

// figment's Jail closures return figment::Error, which is large; that is its API.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::Duration;

use figment::Jail;

use super::*;

fn location(path: &str) -> ConfigLocation {
    ConfigLocation {
        path: PathBuf::from(path),
        explicit: true,
    }
}

fn problems(path: &str) -> Vec<String> {
    load(&location(path))
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_defaults_alone_are_valid() {
    Jail::expect_with(|_| {
        let absent = ConfigLocation {
            path: PathBuf::from("/nonexistent/cloudwarden.toml"),
            explicit: false,
        };
        let config = load(&absent).unwrap();
        assert_eq!(config.metrics.listen, "127.0.0.1:9898".parse().unwrap());
        assert_eq!(
            config.state.path,
            PathBuf::from("/var/lib/cloudwarden/state.redb")
        );
        assert_eq!(config.daemon.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.log.format, LogFormat::Auto);
        assert!(config.sources.is_empty() && config.rules.builtin && !config.alarms.cis.enabled);
        Ok(())
    });
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            "[metrics]\nlisten = \"127.0.0.1:1\"\n[log]\nlevel = \"debug\"\n[aws]\nregion = \"eu-west-1\"\n",
        )?;
        jail.set_env("CLOUDWARDEN_METRICS__LISTEN", "0.0.0.0:9898");
        jail.set_env("CLOUDWARDEN_AWS__ENDPOINT_URL", "http://127.0.0.1:5000");
        jail.set_env("CLOUDWARDEN_CONFIG", "c.toml");
        let config = load(&location("c.toml")).unwrap();
        assert_eq!(config.metrics.listen, "0.0.0.0:9898".parse().unwrap());
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            config.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        Ok(())
    });
}

#[test]
fn every_problem_is_reported_at_once_with_file_key_and_line() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            r#"[metrics]
listen = "nowhere"

[log]
formt = "json"

[daemon]
shutdown_grace = "ten seconds"

[pipeline]
channel_capacity = "many"

[bogus]
x = 1

[[sources]]
kind = "cloudtrail_lookup"
name = "mgmt"
interval = 5
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"

[[sources]]
kind = "carrier_pigeon"
name = "mgmt"
"#,
        )?;
        let found = problems("c.toml");
        let expected = [
            "c.toml:2:1: metrics.listen: invalid listen address \"nowhere\"",
            "c.toml:5:1: log.formt: unknown key (did you mean `format`?)",
            "c.toml:8:1: daemon.shutdown_grace: invalid duration \"ten seconds\"",
            "c.toml:11:1: pipeline.channel_capacity: invalid type",
            "c.toml:13:2: bogus: unknown key",
            "c.toml:19:1: sources[0].interval: expected a duration written as a string",
            "c.toml:20:1: sources[0].queue_url: does not apply to sources of kind cloudtrail_lookup",
            "c.toml:23:1: sources[1].kind: invalid value \"carrier_pigeon\"",
        ];
        for prefix in expected {
            assert!(
                found.iter().any(|p| p.starts_with(prefix)),
                "missing {prefix:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        Ok(())
    });
}

#[test]
fn environment_problems_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("CLOUDWARDEN_METRICS__LISTEN", "localhost");
        jail.set_env("CLOUDWARDEN_LOG__LEVL", "debug");
        let absent = ConfigLocation {
            path: PathBuf::from("absent.toml"),
            explicit: false,
        };
        let found: Vec<String> = load(&absent)
            .unwrap_err()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            found.iter().any(|p| p.starts_with("environment variable CLOUDWARDEN_METRICS__LISTEN: metrics.listen: invalid listen address")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|p| p
                .starts_with("environment variable CLOUDWARDEN_LOG__LEVL: log.levl: unknown key")),
            "{found:#?}"
        );
        Ok(())
    });
}

#[test]
fn a_named_file_must_exist_and_parse() {
    Jail::expect_with(|jail| {
        assert_eq!(
            problems("missing.toml"),
            ["missing.toml: configuration file not found"]
        );
        jail.create_file("broken.toml", "[log]\nlevel = \"info\"\nformat = json\n")?;
        let found = problems("broken.toml");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("broken.toml:3:10: invalid TOML"),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn sources_of_each_kind_validate_with_their_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            r#"[[sources]]
kind = "cloudtrail_lookup"
name = "mgmt"

[[sources]]
kind = "cloudwatch_logs"
name = "trail-log-group"
log_group_prefix = "aws-cloudtrail-logs"
format = "json"
interval = "15s"

[[sources]]
kind = "s3_sqs"
name = "org-trail"
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/trail"

[[sources]]
kind = "eventbridge_sqs"
name = "realtime"
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/events"
"#,
        )?;
        let config = load(&location("c.toml")).unwrap();
        let [lookup, logs, s3, events] = config.sources.as_slice() else {
            panic!("{:?}", config.sources)
        };
        assert_eq!(lookup.interval, Some(Duration::from_secs(60)));
        assert_eq!(
            lookup.kind,
            SourceKind::CloudTrailLookup {
                regions: vec![],
                lookback: Duration::from_secs(900),
                global_events: true,
            }
        );
        assert_eq!(logs.interval, Some(Duration::from_secs(15)));
        assert!(matches!(
            &logs.kind,
            SourceKind::CloudWatchLogs { log_group: LogGroupSelector::Prefix(p), format: RecordFormat::Json, .. } if p == "aws-cloudtrail-logs"
        ));
        assert_eq!(s3.interval, None);
        assert_eq!(
            s3.kind,
            SourceKind::S3Sqs {
                queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/trail".into(),
                max_attempts: 5,
                visibility_timeout: Duration::from_secs(20),
                buckets: vec![],
                bucket_owner: None,
                max_object_bytes: 1 << 30,
            }
        );
        assert_eq!(events.kind.name(), "eventbridge_sqs");
        Ok(())
    });
}

#[test]
fn cross_key_rules_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            r#"[[sources]]
kind = "cloudwatch_logs"
name = "a"
log_group = "x"
log_group_prefix = "y"

[[sources]]
kind = "s3_sqs"
name = "b"
max_attempts = 0
visibility_timeout = "1s"
buckets = ["trail-logs", "arn:aws:s3:us-east-1:111122223333:accesspoint/x", "logs-ab12--ol-s3"]
bucket_owner = "12"

[[sources]]
kind = "cloudwatch_logs"
name = "c"
log_group = "g"
logsource = { product = "nginx", flavour = "x" }

[alarms.cis]
enabled = true

[[alerts.sns]]
topic_arn = "arn:aws:sns:us-east-1:123456789012:alerts"
min_level = "severe"
"#,
        )?;
        let found = problems("c.toml");
        for expected in [
            "c.toml:5:1: sources[0].log_group_prefix: set either log_group or log_group_prefix, not both",
            "c.toml:7:1: sources[1].queue_url: missing required key",
            "c.toml:10:1: sources[1].max_attempts: 0 is out of range: it must be between 1 and 100",
            "c.toml:11:1: sources[1].visibility_timeout: duration \"1s\" is out of range",
            "sources[1].buckets[1]: \"arn:aws:s3:us-east-1:111122223333:accesspoint/x\" is an ARN, not a bucket name",
            "sources[1].buckets[2]: \"logs-ab12--ol-s3\" is an Object Lambda access point alias",
            "c.toml:13:1: sources[1].bucket_owner:",
            "c.toml:19:34: sources[2].logsource.flavour: unknown key (expected product, service or category)",
            "c.toml:21:9: alarms.cis.log_group: missing: required when alarms.cis.enabled = true",
            "c.toml:21:9: alarms.cis.topic_arn: missing: required when alarms.cis.enabled = true",
            "c.toml:26:1: alerts.sns[0].min_level: unknown level \"severe\"",
        ] {
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        Ok(())
    });
}

#[test]
fn the_example_configuration_is_valid() {
    Jail::expect_with(|_| {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cloudwarden.toml");
        let config = load(&location(example)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.alerts.sns.len(), 1);
        Ok(())
    });
}

#[test]
fn a_lookback_and_its_interval_must_fit_in_the_dedup_window() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            r#"[pipeline]
dedup_window = "1h"

[[sources]]
kind = "cloudtrail_lookup"
name = "exactly"
lookback = "59m"
interval = "1m"

[[sources]]
kind = "cloudtrail_lookup"
name = "fits"
lookback = "50m"
interval = "1m"
"#,
        )?;
        let found = problems("c.toml");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("sources[0].lookback")
                && found[0].contains("not shorter than pipeline.dedup_window"),
            "{found:#?}"
        );
        Ok(())
    });
}

#[test]
fn posture_declarations_are_read_and_their_problems_reported_at_once() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "good.toml",
            r#"[posture]
enabled = true
mode = "enforce"
regions = ["us-east-1", "eu-west-3"]
world_open_allowed_ports = [80, 443, 8443]
disabled = ["iam_access_key_unused"]

[posture.cloudtrail.ensure]
name = "MyTrail"
bucket = "trail-bucket"

[[posture.security_groups.declared]]
name = "WebApp-SG"
vpc = "vpc-0a1b2c3d"
ingress = [{ protocol = "tcp", port = 443, cidr = "0.0.0.0/0" }, { protocol = "tcp", from_port = 8000, to_port = 8010, cidr = "10.0.0.0/8" }]
"#,
        )?;
        let config = load(&location("good.toml")).unwrap();
        let p = &config.posture;
        assert!(p.enabled && p.enforce && config.engine().touches);
        assert_eq!(p.world_open_allowed_ports, [80, 443, 8443]);
        let trail = p.cloudtrail_ensure.as_ref().unwrap();
        assert!(trail.multi_region && trail.log_file_validation && !trail.adopt);
        assert_eq!(p.security_groups[0].ingress[1].from_port, 8000);
        assert_eq!(p.security_groups[0].ingress[1].to_port, 8010);
        assert_eq!(p.security_groups[0].egress, None);

        jail.create_file(
            "bad.toml",
            r#"[posture]
mode = "yolo"
disabled = ["no_such_check"]
regions = ["Mars"]

[posture.cloudtrail.ensure]
name = "x"

[[posture.security_groups.declared]]
name = "sg-bad"
vpc = "my-vpc"
ingress = [{ protocol = "tcp", cidr = "0.0.0.0/0" }]
"#,
        )?;
        let found = problems("bad.toml");
        let expected = [
            "bad.toml:2:1: posture.mode: invalid value \"yolo\"",
            "bad.toml:3:1: posture.disabled: unknown posture check \"no_such_check\"",
            "bad.toml:4:1: posture.regions: invalid AWS Region \"Mars\"",
            "bad.toml:7:1: posture.cloudtrail.ensure.name: invalid trail name",
            "bad.toml:6:21: posture.cloudtrail.ensure.bucket: missing required key",
            "bad.toml:10:1: posture.security_groups.declared[0].name: invalid security group name",
            "bad.toml:11:1: posture.security_groups.declared[0].vpc: invalid VPC id",
            "posture.security_groups.declared[0].ingress[0]: give either `port`, or `from_port` and `to_port`",
        ];
        for prefix in expected {
            assert!(
                found.iter().any(|p| p.contains(prefix)),
                "missing {prefix:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        Ok(())
    });
}
