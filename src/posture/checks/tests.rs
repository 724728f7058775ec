use super::*;
use crate::posture::facts::{AttachedPolicy, KeyFacts, PasswordPolicy};

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

fn settings() -> Settings {
    Settings {
        account: "111122223333".to_owned(),
        home_region: "us-east-1".to_owned(),
        config: PostureConfig::default(),
        cis_alarms: false,
        now: NOW,
    }
}

fn ids(findings: &[Finding]) -> Vec<&'static str> {
    let mut ids: Vec<&str> = findings.iter().map(|f| f.check.id).collect();
    ids.sort_unstable();
    ids
}

fn good_trail() -> TrailFacts {
    TrailFacts {
        name: "org".to_owned(),
        arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/org".to_owned(),
        home_region: "us-east-1".to_owned(),
        multi_region: true,
        global_events: true,
        log_file_validation: true,
        kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/k".to_owned()),
        log_group_arn: Some("arn:aws:logs:us-east-1:111122223333:log-group:trail:*".to_owned()),
        bucket: Some("trail".to_owned()),
        logging: Some(true),
        management_read: true,
        management_write: true,
    }
}

#[test]
fn a_complete_trail_has_no_finding_even_with_the_cis_alarms_on() {
    let s = Settings {
        cis_alarms: true,
        ..settings()
    };
    assert!(trails(&s, &[good_trail()]).is_empty());
}

#[test]
fn no_trail_is_one_account_finding() {
    let found = trails(&settings(), &[]);
    assert_eq!(ids(&found), ["cloudtrail_no_multi_region_trail"]);
    assert_eq!(
        found[0].resource,
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/*"
    );
    assert_eq!(found[0].scope, Scope::CloudTrail);
}

#[test]
fn each_trail_setting_is_its_own_finding() {
    let stopped = TrailFacts {
        logging: Some(false),
        ..good_trail()
    };
    assert_eq!(
        ids(&trails(&settings(), &[stopped])),
        [
            "cloudtrail_no_multi_region_trail",
            "cloudtrail_trail_not_logging"
        ]
    );
    let weak = TrailFacts {
        global_events: false,
        log_file_validation: false,
        kms_key_id: None,
        management_read: false,
        ..good_trail()
    };
    assert_eq!(
        ids(&trails(&settings(), &[weak])),
        [
            "cloudtrail_global_events_off",
            "cloudtrail_log_file_validation_off",
            "cloudtrail_management_events_incomplete",
            "cloudtrail_no_multi_region_trail",
            "cloudtrail_not_encrypted_with_kms",
        ]
    );
    // A single-Region trail beside a complete one is fine.
    let regional = TrailFacts {
        name: "app".to_owned(),
        arn: "arn:app".to_owned(),
        multi_region: false,
        global_events: false,
        ..good_trail()
    };
    assert!(trails(&settings(), &[good_trail(), regional]).is_empty());
}

#[test]
fn cloudwatch_logs_delivery_is_required_only_with_the_cis_alarms() {
    let no_logs = TrailFacts {
        log_group_arn: None,
        ..good_trail()
    };
    assert!(trails(&settings(), std::slice::from_ref(&no_logs)).is_empty());
    let s = Settings {
        cis_alarms: true,
        ..settings()
    };
    assert_eq!(
        ids(&trails(&s, &[no_logs])),
        ["cloudtrail_no_cloudwatch_logs_delivery"]
    );
}

fn group(name: &str, ingress: Vec<Permission>) -> GroupFacts {
    GroupFacts {
        id: "sg-0123456789abcdef0".to_owned(),
        name: name.to_owned(),
        vpc_id: Some("vpc-1".to_owned()),
        owner: "111122223333".to_owned(),
        region: "eu-west-3".to_owned(),
        ingress,
        ..GroupFacts::default()
    }
}

fn tcp(from: i32, to: i32, cidr: &str) -> Permission {
    Permission {
        protocol: "tcp".to_owned(),
        from_port: Some(from),
        to_port: Some(to),
        ranges: vec![(cidr.to_owned(), None)],
        ..Permission::default()
    }
}

#[test]
fn web_ports_open_to_the_world_are_allowed_and_ssh_is_high() {
    let s = settings();
    let web = group(
        "WebApp-SG",
        vec![tcp(80, 80, "0.0.0.0/0"), tcp(443, 443, "::/0")],
    );
    assert!(groups(&s, "eu-west-3", &[web]).is_empty());
    let ssh = group(
        "WebApp-SG",
        vec![tcp(80, 80, "0.0.0.0/0"), tcp(22, 22, "0.0.0.0/0")],
    );
    let found = groups(&s, "eu-west-3", &[ssh]);
    assert_eq!(ids(&found), ["sg_world_open_admin_port"]);
    assert_eq!(
        found[0].resource,
        "arn:aws:ec2:eu-west-3:111122223333:security-group/sg-0123456789abcdef0"
    );
    assert!(
        found[0].message.contains("tcp/22 (SSH) from 0.0.0.0/0"),
        "{}",
        found[0].message
    );
    assert!(!found[0].message.contains("tcp/80"));
    assert_eq!(found[0].scope, Scope::Groups("eu-west-3".to_owned()));
}

#[test]
fn ranges_all_traffic_and_other_ports_are_judged_by_what_they_expose() {
    let s = settings();
    let wide = group("g", vec![tcp(1000, 4000, "0.0.0.0/0")]);
    let found = groups(&s, "eu-west-3", &[wide]);
    assert_eq!(ids(&found), ["sg_world_open_admin_port"]);
    assert!(
        found[0]
            .message
            .contains("tcp/1000-4000 (SQL Server, Oracle")
            && found[0].message.contains("..."),
        "{}",
        found[0].message
    );
    let all = group(
        "g",
        vec![Permission {
            protocol: "-1".to_owned(),
            ranges: vec![("::/0".to_owned(), None)],
            ..Permission::default()
        }],
    );
    assert_eq!(
        ids(&groups(&s, "eu-west-3", &[all])),
        ["sg_world_open_admin_port"]
    );
    let app = group("g", vec![tcp(8080, 8080, "0.0.0.0/0")]);
    assert_eq!(
        ids(&groups(&s, "eu-west-3", &[app])),
        ["sg_world_open_port"]
    );
    // Not the world: a /8, or a world range to an allowed port only.
    let private = group("g", vec![tcp(22, 22, "10.0.0.0/8")]);
    assert!(groups(&s, "eu-west-3", &[private]).is_empty());
    let mut allowed = settings();
    allowed.config.world_open_allowed_ports = vec![80, 443, 8080];
    let app = group("g", vec![tcp(8080, 8080, "0.0.0.0/0")]);
    assert!(groups(&allowed, "eu-west-3", &[app]).is_empty());
    let ping = group(
        "g",
        vec![Permission {
            protocol: "icmp".to_owned(),
            from_port: Some(8),
            to_port: Some(-1),
            ranges: vec![("0.0.0.0/0".to_owned(), None)],
            ..Permission::default()
        }],
    );
    assert!(groups(&s, "eu-west-3", &[ping]).is_empty());
}

#[test]
fn prefix_lists_holding_the_world_count_as_the_world() {
    let s = settings();
    let mut p = tcp(3389, 3389, "10.0.0.0/8");
    p.prefix_list_ranges = vec![("pl-1".to_owned(), "0.0.0.0/0".to_owned())];
    let found = groups(&s, "eu-west-3", &[group("g", vec![p])]);
    assert_eq!(ids(&found), ["sg_world_open_admin_port"]);
    assert!(found[0].message.contains("in pl-1"));
    let mut p = tcp(3389, 3389, "10.0.0.0/8");
    p.prefix_list_ranges = vec![("pl-2".to_owned(), "203.0.113.0/24".to_owned())];
    assert!(groups(&s, "eu-west-3", &[group("g", vec![p])]).is_empty());
}

#[test]
fn a_default_group_with_any_rule_is_a_finding() {
    let s = settings();
    let mut default = group("default", vec![]);
    assert!(groups(&s, "eu-west-3", std::slice::from_ref(&default)).is_empty());
    default.egress = vec![Permission {
        protocol: "-1".to_owned(),
        ranges: vec![("0.0.0.0/0".to_owned(), None)],
        ..Permission::default()
    }];
    assert_eq!(
        ids(&groups(&s, "eu-west-3", &[default])),
        ["sg_default_allows_traffic"]
    );
    let mut named = group("not-default", vec![]);
    named.egress = vec![Permission {
        protocol: "-1".to_owned(),
        ranges: vec![("0.0.0.0/0".to_owned(), None)],
        ..Permission::default()
    }];
    assert!(groups(&s, "eu-west-3", &[named]).is_empty());
}

fn john() -> UserFacts {
    UserFacts {
        name: "JohnDoe".to_owned(),
        arn: "arn:aws:iam::111122223333:user/JohnDoe".to_owned(),
        ..UserFacts::default()
    }
}

fn policy(name: &str, allows_all: bool) -> AttachedPolicy {
    AttachedPolicy {
        name: name.to_owned(),
        arn: format!("arn:aws:iam::aws:policy/{name}"),
        allows_all,
    }
}

#[test]
fn policies_attached_to_users_directly() {
    let s = settings();
    assert!(user(&s, &john()).is_empty());
    let s3 = UserFacts {
        attached: vec![policy("AmazonS3FullAccess", false)],
        ..john()
    };
    let found = user(&s, &s3);
    assert_eq!(ids(&found), ["iam_user_full_access_policy_attached"]);
    assert!(found[0].message.contains("AmazonS3FullAccess"));
    assert_eq!(found[0].scope, Scope::User("JohnDoe".to_owned()));
    let admin = UserFacts {
        attached: vec![
            policy("AdministratorAccess", true),
            policy("ReadOnlyAccess", false),
        ],
        ..john()
    };
    assert_eq!(ids(&user(&s, &admin)), ["iam_user_admin_policy_attached"]);
    let own = UserFacts {
        attached: vec![policy("do-anything", true)],
        ..john()
    };
    assert_eq!(ids(&user(&s, &own)), ["iam_user_admin_policy_attached"]);
    let narrow = UserFacts {
        attached: vec![policy("AmazonS3ReadOnlyAccess", false)],
        inline: vec![("s3-read".to_owned(), false)],
        ..john()
    };
    assert!(user(&s, &narrow).is_empty());
    let inline = UserFacts {
        inline: vec![("everything".to_owned(), true)],
        ..john()
    };
    assert_eq!(
        ids(&user(&s, &inline)),
        ["iam_user_inline_policy_allows_all"]
    );
}

#[test]
fn console_without_mfa_and_keys_by_age_and_use() {
    let s = settings();
    let console = UserFacts {
        console: true,
        ..john()
    };
    assert_eq!(ids(&user(&s, &console)), ["iam_console_user_without_mfa"]);
    assert!(
        user(
            &s,
            &UserFacts {
                console: true,
                mfa: true,
                ..john()
            }
        )
        .is_empty()
    );
    let key = |created_days: i64, used_days: Option<i64>, active: bool| KeyFacts {
        id: "AKIAEXAMPLE".to_owned(),
        active,
        created: NOW - created_days * DAY,
        last_used: used_days.map(|d| NOW - d * DAY),
    };
    let fresh = UserFacts {
        keys: vec![key(10, Some(1), true)],
        ..john()
    };
    assert!(user(&s, &fresh).is_empty());
    let old_but_used = UserFacts {
        keys: vec![key(200, Some(1), true)],
        ..john()
    };
    assert_eq!(ids(&user(&s, &old_but_used)), ["iam_access_key_too_old"]);
    let old_unused = UserFacts {
        keys: vec![key(200, None, true)],
        ..john()
    };
    assert_eq!(
        ids(&user(&s, &old_unused)),
        ["iam_access_key_too_old", "iam_access_key_unused"]
    );
    let inactive = UserFacts {
        keys: vec![key(400, None, false)],
        ..john()
    };
    assert!(user(&s, &inactive).is_empty());
    let mut shorter = settings();
    shorter.config.max_access_key_age = std::time::Duration::from_secs(5 * 86_400);
    assert_eq!(ids(&user(&shorter, &fresh)), ["iam_access_key_too_old"]);
}

#[test]
fn root_and_the_password_policy() {
    let s = settings();
    let safe = AccountFacts {
        root_access_keys: false,
        root_mfa: true,
        password_policy: Some(PasswordPolicy {
            min_length: 14,
            reuse_prevention: 24,
        }),
    };
    assert!(account(&s, &safe).is_empty());
    let unsafe_ = AccountFacts {
        root_access_keys: true,
        root_mfa: false,
        password_policy: None,
    };
    let found = account(&s, &unsafe_);
    assert_eq!(
        ids(&found),
        [
            "iam_password_policy_weak",
            "iam_root_access_keys",
            "iam_root_without_mfa"
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.check.severity >= crate::detection::Level::Medium)
    );
    let short = AccountFacts {
        password_policy: Some(PasswordPolicy {
            min_length: 8,
            reuse_prevention: 24,
        }),
        ..safe
    };
    let found = account(&s, &short);
    assert_eq!(ids(&found), ["iam_password_policy_weak"]);
    assert!(found[0].message.contains("8 characters"));
}

#[test]
fn a_disabled_check_finds_nothing() {
    let mut s = settings();
    s.config.disabled = vec!["sg_world_open_admin_port".to_owned()];
    let ssh = group("g", vec![tcp(22, 22, "0.0.0.0/0")]);
    assert!(groups(&s, "eu-west-3", &[ssh]).is_empty());
}

#[test]
fn every_check_has_a_unique_id_a_title_and_a_remediation() {
    let mut seen = std::collections::BTreeSet::new();
    for check in catalog::CHECKS {
        assert!(seen.insert(check.id), "{} twice", check.id);
        assert!(
            !check.title.is_empty() && check.remediation.len() > 20,
            "{}",
            check.id
        );
    }
}

#[test]
fn the_readme_table_lists_every_check_with_its_severity() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for check in catalog::CHECKS {
        let row = format!("| `{}` | {} |", check.id, check.severity.as_str());
        assert!(readme.contains(&row), "README.md lacks {row}");
    }
}
