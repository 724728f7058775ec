//! Sweeps over a fake account, settled in a real state store: what opens,
//! what resolves, and what a failed Region leaves alone.

use super::*;
use crate::alerts::outbox;
use crate::alerts::suppression::Suppression;
use crate::config::{PostureConfig, SuppressionConfig};
use crate::posture::facts::{AttachedPolicy, GroupFacts, Permission, UserFacts};
use crate::posture::findings::{self, Context, Settled};
use crate::posture::testing::FakeAccount;
use crate::state::StateStore;

fn settings() -> Settings {
    Settings {
        account: "111122223333".to_owned(),
        home_region: "us-east-1".to_owned(),
        config: PostureConfig::default(),
        cis_alarms: false,
        now: 1_800_000_000,
    }
}

fn ssh_group(region: &str, id: &str) -> GroupFacts {
    GroupFacts {
        id: id.to_owned(),
        name: "WebApp-SG".to_owned(),
        owner: "111122223333".to_owned(),
        region: region.to_owned(),
        ingress: vec![Permission {
            protocol: "tcp".to_owned(),
            from_port: Some(22),
            to_port: Some(22),
            ranges: vec![("0.0.0.0/0".to_owned(), None)],
            ..Permission::default()
        }],
        ..GroupFacts::default()
    }
}

fn regions() -> Vec<String> {
    vec!["eu-west-3".to_owned(), "us-east-1".to_owned()]
}

struct Store {
    _dir: tempfile::TempDir,
    state: StateStore,
    keys: outbox::Keys,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.redb")).unwrap();
        Store {
            _dir: dir,
            state,
            keys: outbox::Keys::default(),
        }
    }

    fn settle(&self, sweep: &Sweep, suppressions: &[Suppression]) -> Settled {
        self.state
            .write(|txn| {
                findings::settle(
                    txn,
                    sweep,
                    &Context {
                        account: "111122223333",
                        cause: None,
                        suppressions,
                        keys: &self.keys,
                        now_ms: 1_800_000_000_000,
                        response: None,
                    },
                )
            })
            .unwrap()
    }

    /// (check, status, level) of every alert staged.
    fn alerts(&self) -> Vec<(String, String, String)> {
        outbox::pending(&self.state, 1000)
            .unwrap()
            .into_iter()
            .map(|(_, e)| {
                let p = e.alert.posture.unwrap();
                (p.check, p.status, e.alert.rule.level.as_str().to_owned())
            })
            .collect()
    }
}

fn run(api: &FakeAccount, targets: &[Target]) -> Sweep {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(sweep(api, &settings(), &regions(), targets))
}

#[test]
fn a_finding_alerts_when_it_opens_not_while_it_stays_and_again_when_resolved() {
    let store = Store::new();
    let mut api = FakeAccount {
        groups: vec![ssh_group("eu-west-3", "sg-1")],
        ..FakeAccount::default()
    };
    let targets = [Target::Groups("eu-west-3".to_owned())];
    let first = store.settle(&run(&api, &targets), &[]);
    assert_eq!(first.opened.len(), 1);
    let again = store.settle(&run(&api, &targets), &[]);
    assert!(again.opened.is_empty() && again.resolved.is_empty());
    assert_eq!(again.open.len(), 1);
    assert_eq!(
        store.alerts(),
        [(
            "sg_world_open_admin_port".to_owned(),
            "opened".to_owned(),
            "high".to_owned()
        )]
    );
    api.groups[0].ingress.clear();
    let fixed = store.settle(&run(&api, &targets), &[]);
    assert_eq!(fixed.resolved.len(), 1);
    assert!(fixed.open.is_empty());
    assert_eq!(
        store.alerts()[1],
        (
            "sg_world_open_admin_port".to_owned(),
            "resolved".to_owned(),
            "low".to_owned()
        )
    );
}

#[test]
fn a_region_that_fails_keeps_its_findings_and_does_not_stop_the_others() {
    let store = Store::new();
    let mut api = FakeAccount {
        groups: vec![
            ssh_group("eu-west-3", "sg-1"),
            ssh_group("us-east-1", "sg-2"),
        ],
        ..FakeAccount::default()
    };
    let all = Target::all(&regions());
    store.settle(&run(&api, &all), &[]);
    assert_eq!(
        store.alerts().len(),
        2 + 3,
        "two groups, no trail, no password policy, root without MFA"
    );
    // eu-west-3 fails, and meanwhile both groups were fixed.
    api.failing = vec!["eu-west-3".to_owned()];
    for g in &mut api.groups {
        g.ingress.clear();
    }
    let sweep = run(&api, &all);
    assert_eq!(
        sweep.failed.len(),
        2,
        "groups and trails in eu-west-3: {:?}",
        sweep.failed
    );
    assert!(
        api.calls
            .lock()
            .unwrap()
            .contains(&"groups us-east-1".to_owned()),
        "the other Region was swept"
    );
    let settled = store.settle(&sweep, &[]);
    let resolved: Vec<&str> = settled
        .resolved
        .iter()
        .map(|o| o.resource.as_str())
        .collect();
    assert_eq!(
        resolved,
        ["arn:aws:ec2:us-east-1:111122223333:security-group/sg-2"]
    );
    assert!(
        settled.open.iter().any(|o| o.resource.ends_with("sg-1")),
        "unknown, so still open"
    );
    assert!(
        settled
            .open
            .iter()
            .any(|o| o.check == "cloudtrail_no_multi_region_trail"),
        "trails were not all read: kept"
    );
    // Back: resolved then.
    api.failing.clear();
    let settled = store.settle(&run(&api, &all), &[]);
    assert!(
        settled
            .resolved
            .iter()
            .any(|o| o.resource.ends_with("sg-1"))
    );
}

#[test]
fn a_user_recheck_settles_that_user_only_and_a_full_sweep_settles_deleted_users() {
    let store = Store::new();
    let john = |name: &str| UserFacts {
        name: name.to_owned(),
        arn: format!("arn:aws:iam::111122223333:user/{name}"),
        attached: vec![AttachedPolicy {
            name: "AmazonS3FullAccess".to_owned(),
            arn: "arn:aws:iam::aws:policy/AmazonS3FullAccess".to_owned(),
            allows_all: false,
        }],
        ..UserFacts::default()
    };
    let mut api = FakeAccount {
        users: vec![john("JohnDoe"), john("JaneRoe")],
        ..FakeAccount::default()
    };
    store.settle(&run(&api, &[Target::Users]), &[]);
    // JohnDoe fixed; a re-check of JaneRoe does not settle JohnDoe.
    api.users[0].attached.clear();
    let settled = store.settle(&run(&api, &[Target::User("JaneRoe".to_owned())]), &[]);
    assert!(settled.resolved.is_empty());
    let settled = store.settle(&run(&api, &[Target::User("JohnDoe".to_owned())]), &[]);
    assert_eq!(settled.resolved.len(), 1);
    // JaneRoe deleted: only a full sweep knows.
    api.users.remove(1);
    let settled = store.settle(&run(&api, &[Target::Users]), &[]);
    assert_eq!(settled.resolved.len(), 1);
    assert!(settled.resolved[0].resource.ends_with("user/JaneRoe"));
}

#[test]
fn a_suppressed_finding_is_kept_and_counted_but_never_alerts() {
    let store = Store::new();
    let mut api = FakeAccount {
        groups: vec![
            ssh_group("eu-west-3", "sg-bastion"),
            ssh_group("eu-west-3", "sg-web"),
        ],
        ..FakeAccount::default()
    };
    let suppression = Suppression::new(SuppressionConfig {
        reason: "the bastion is meant to be reachable".to_owned(),
        rule: Some("sg_world_open_admin_port".to_owned()),
        principal: None,
        source_ip: None,
        account: None,
        user_agent: None,
        resource: Some("arn:aws:ec2:*:*:security-group/sg-bastion".to_owned()),
        expires: None,
    });
    let targets = [Target::Groups("eu-west-3".to_owned())];
    let settled = store.settle(&run(&api, &targets), std::slice::from_ref(&suppression));
    assert_eq!(settled.opened.len(), 2);
    assert_eq!(settled.opened.iter().filter(|o| o.suppressed).count(), 1);
    assert_eq!(store.alerts().len(), 1, "only sg-web alerts");
    api.groups.clear();
    store.settle(&run(&api, &targets), std::slice::from_ref(&suppression));
    assert_eq!(store.alerts().len(), 2, "only sg-web's resolution alerts");
}
