//! `[posture]`: the account's trails, security groups and IAM checked
//! continuously, and the settings cloudwarden is told to put in place.
//!
//! The raw sections live here beside their validation, since nothing else
//! reads them.

use std::collections::BTreeMap;
use std::time::Duration;

use figment::value::Value;
use ipnet::IpNet;
use serde::Deserialize;

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::Leaf;
use crate::posture::catalog;
use crate::posture::desired::{GroupSpec, RuleSpec, TrailSpec};

/// `[posture]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostureConfig {
    /// Whether the daemon sweeps (the `posture` commands work regardless).
    pub enabled: bool,
    /// Whether the daemon makes the changes declared settings need
    /// (`mode = "enforce"`), or only logs them (`"dry_run"`, the default).
    pub enforce: bool,
    /// Time between full sweeps.
    pub interval: Duration,
    /// The Regions swept; empty means those the account has enabled.
    pub regions: Vec<String>,
    /// How long an event-driven re-check waits for more events about the
    /// same resources, so a burst of changes costs one re-check.
    pub recheck_delay: Duration,
    /// Ports that may be open to the world without a finding.
    pub world_open_allowed_ports: Vec<u16>,
    /// Access keys older than this, or unused for as long, are findings.
    pub max_access_key_age: Duration,
    /// Check ids not run.
    pub disabled: Vec<String>,
    /// The weakest password policy accepted.
    pub password_policy: PasswordPolicyConfig,
    /// The trail to create or keep as declared.
    pub cloudtrail_ensure: Option<TrailSpec>,
    /// Security groups to create or keep as declared.
    pub security_groups: Vec<GroupSpec>,
}

impl PostureConfig {
    /// Whether anything is declared to be put in place.
    pub fn declares(&self) -> bool {
        self.cloudtrail_ensure.is_some() || !self.security_groups.is_empty()
    }
}

impl Default for PostureConfig {
    fn default() -> Self {
        PostureConfig {
            enabled: false,
            enforce: false,
            interval: Duration::from_secs(3600),
            regions: Vec::new(),
            recheck_delay: Duration::from_secs(2),
            world_open_allowed_ports: vec![80, 443],
            max_access_key_age: Duration::from_secs(90 * 86_400),
            disabled: Vec::new(),
            password_policy: PasswordPolicyConfig::default(),
            cloudtrail_ensure: None,
            security_groups: Vec::new(),
        }
    }
}

/// `[posture.password_policy]`: the minimum the account's policy must ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicyConfig {
    /// Minimum password length (CIS: 14).
    pub min_length: u32,
    /// Previous passwords that may not be reused (CIS: 24).
    pub reuse_prevention: u32,
}

impl Default for PasswordPolicyConfig {
    fn default() -> Self {
        PasswordPolicyConfig {
            min_length: 14,
            reuse_prevention: 24,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPosture {
    enabled: Leaf,
    mode: Leaf,
    interval: Leaf,
    regions: Leaf,
    recheck_delay: Leaf,
    world_open_allowed_ports: Leaf,
    max_access_key_age: Leaf,
    disabled: Leaf,
    password_policy: Option<Value>,
    cloudtrail: Option<Value>,
    security_groups: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPasswordPolicy {
    min_length: Leaf,
    reuse_prevention: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCloudTrail {
    ensure: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEnsure {
    name: Leaf,
    bucket: Leaf,
    region: Leaf,
    multi_region: Leaf,
    include_global_service_events: Leaf,
    log_file_validation: Leaf,
    log_group_arn: Leaf,
    role_arn: Leaf,
    kms_key_id: Leaf,
    adopt: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSecurityGroups {
    declared: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawGroup {
    name: Leaf,
    vpc: Leaf,
    region: Leaf,
    description: Leaf,
    ingress: Option<Vec<Value>>,
    egress: Option<Vec<Value>>,
    adopt: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRule {
    protocol: Leaf,
    from_port: Leaf,
    to_port: Leaf,
    port: Leaf,
    cidr: Leaf,
    description: Leaf,
}

const DAY: Duration = Duration::from_secs(86_400);

/// Validates `[posture]`; `None` means problems were recorded in `c`.
pub(super) fn posture(c: &mut Checker<'_>, raw: Option<&Value>) -> Option<PostureConfig> {
    let k = KeyPath::root("posture");
    let r: RawPosture = c.section(&k, raw);
    let defaults = PostureConfig::default();
    let enabled: Option<bool> = c.value(&k.key("enabled"), &r.enabled);
    let enforce = c.parsed(&k.key("mode"), &r.mode, |t| {
        formats::one_of(t, &[("dry_run", false), ("enforce", true)])
    });
    let interval = c.duration(
        &k.key("interval"),
        &r.interval,
        Duration::from_secs(60),
        DAY,
    );
    let recheck_delay = c.duration(
        &k.key("recheck_delay"),
        &r.recheck_delay,
        Duration::ZERO,
        Duration::from_secs(4),
    );
    let key_age = c.duration(
        &k.key("max_access_key_age"),
        &r.max_access_key_age,
        DAY,
        3650 * DAY,
    );
    let regions = string_list(c, &k.key("regions"), &r.regions, formats::region);
    let ports: Option<Vec<u16>> = c.value(
        &k.key("world_open_allowed_ports"),
        &r.world_open_allowed_ports,
    );
    let disabled = string_list(c, &k.key("disabled"), &r.disabled, |id| {
        if catalog::find(id).is_some() {
            Ok(id.to_owned())
        } else {
            Err(format!(
                "unknown posture check \"{id}\" (expected one of: {})",
                catalog::CHECKS
                    .iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    });
    let policy = password_policy(c, &k.key("password_policy"), r.password_policy.as_ref());
    let ensure = {
        let ck = k.key("cloudtrail");
        let rc: RawCloudTrail = c.section(&ck, r.cloudtrail.as_ref());
        rc.ensure
            .as_ref()
            .map(|v| trail_spec(c, &ck.key("ensure"), v))
    };
    let groups = {
        let gk = k.key("security_groups");
        let rg: RawSecurityGroups = c.section(&gk, r.security_groups.as_ref());
        let mut groups = Some(Vec::new());
        let mut names: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for (i, entry) in rg.declared.iter().flatten().enumerate() {
            let key = gk.key("declared").index(i);
            let group = group_spec(c, &key, entry);
            if let Some(g) = &group {
                let id = (
                    g.region.clone().unwrap_or_default(),
                    g.vpc.clone(),
                    g.name.clone(),
                );
                if let Some(first) = names.insert(id, i) {
                    c.report(
                        &key.key("name"),
                        format!("security_groups.declared[{first}] already declares this name in this VPC"),
                    );
                    groups = None;
                }
            }
            match (groups.as_mut(), group) {
                (Some(list), Some(group)) => list.push(group),
                _ => groups = None,
            }
        }
        groups
    };
    let bad = (r.interval.is_some() && interval.is_none())
        || (r.recheck_delay.is_some() && recheck_delay.is_none())
        || (r.max_access_key_age.is_some() && key_age.is_none())
        || (r.world_open_allowed_ports.is_some() && ports.is_none())
        || (r.enabled.is_some() && enabled.is_none())
        || (r.mode.is_some() && enforce.is_none())
        || matches!(ensure, Some(None));
    if bad {
        return None;
    }
    Some(PostureConfig {
        enabled: enabled.unwrap_or(defaults.enabled),
        enforce: enforce.unwrap_or(defaults.enforce),
        interval: interval.unwrap_or(defaults.interval),
        regions: regions?,
        recheck_delay: recheck_delay.unwrap_or(defaults.recheck_delay),
        world_open_allowed_ports: ports.unwrap_or(defaults.world_open_allowed_ports),
        max_access_key_age: key_age.unwrap_or(defaults.max_access_key_age),
        disabled: disabled?,
        password_policy: policy?,
        cloudtrail_ensure: ensure.flatten(),
        security_groups: groups?,
    })
}

/// A list of strings, each passed through `parse`; `None` when one failed.
fn string_list(
    c: &mut Checker<'_>,
    key: &KeyPath,
    leaf: &Leaf,
    parse: impl Fn(&str) -> Result<String, String>,
) -> Option<Vec<String>> {
    let Some(items) = c.value::<Vec<String>>(key, leaf) else {
        return if leaf.is_some() {
            None
        } else {
            Some(Vec::new())
        };
    };
    let mut out = Some(Vec::new());
    for item in items {
        match parse(&item) {
            Ok(item) => {
                if let Some(out) = out.as_mut() {
                    out.push(item);
                }
            }
            Err(message) => {
                c.report(key, message);
                out = None;
            }
        }
    }
    out
}

fn password_policy(
    c: &mut Checker<'_>,
    k: &KeyPath,
    raw: Option<&Value>,
) -> Option<PasswordPolicyConfig> {
    let r: RawPasswordPolicy = c.section(k, raw);
    let defaults = PasswordPolicyConfig::default();
    let min_length = c.count(&k.key("min_length"), &r.min_length, 6, 128);
    let reuse = c.count(&k.key("reuse_prevention"), &r.reuse_prevention, 0, 24);
    if (r.min_length.is_some() && min_length.is_none())
        || (r.reuse_prevention.is_some() && reuse.is_none())
    {
        return None;
    }
    Some(PasswordPolicyConfig {
        min_length: min_length.map_or(defaults.min_length, |n| u32::try_from(n).unwrap_or(14)),
        reuse_prevention: reuse.map_or(defaults.reuse_prevention, |n| {
            u32::try_from(n).unwrap_or(24)
        }),
    })
}

fn trail_spec(c: &mut Checker<'_>, k: &KeyPath, raw: &Value) -> Option<TrailSpec> {
    let r: RawEnsure = c.section(k, Some(raw));
    let name = c.parsed(&k.key("name"), &r.name, trail_name);
    let name = c.required(&k.key("name"), name, &r.name);
    let bucket = c.parsed(&k.key("bucket"), &r.bucket, formats::non_empty);
    let bucket = c.required(&k.key("bucket"), bucket, &r.bucket);
    let region = c.parsed(&k.key("region"), &r.region, formats::region);
    let flag = |c: &mut Checker<'_>, key: &str, leaf: &Leaf| -> Option<bool> {
        let value = c.value(&k.key(key), leaf);
        if leaf.is_some() { value } else { Some(true) }
    };
    let multi_region = flag(c, "multi_region", &r.multi_region);
    let global = flag(
        c,
        "include_global_service_events",
        &r.include_global_service_events,
    );
    let validation = flag(c, "log_file_validation", &r.log_file_validation);
    let adopt: Option<bool> = c.value(&k.key("adopt"), &r.adopt);
    let log_group_arn = c.parsed(&k.key("log_group_arn"), &r.log_group_arn, arn);
    let role_arn = c.parsed(&k.key("role_arn"), &r.role_arn, arn);
    let kms_key_id = c.parsed(&k.key("kms_key_id"), &r.kms_key_id, formats::non_empty);
    if log_group_arn.is_some() != role_arn.is_some()
        && (r.log_group_arn.is_some() || r.role_arn.is_some())
    {
        c.report(k, "log_group_arn and role_arn go together: CloudTrail needs the role to deliver to the log group");
        return None;
    }
    if (r.region.is_some() && region.is_none())
        || (r.adopt.is_some() && adopt.is_none())
        || (r.log_group_arn.is_some() && log_group_arn.is_none())
        || (r.role_arn.is_some() && role_arn.is_none())
        || (r.kms_key_id.is_some() && kms_key_id.is_none())
    {
        return None;
    }
    Some(TrailSpec {
        name: name?,
        bucket: bucket?,
        region,
        multi_region: multi_region?,
        include_global_service_events: global?,
        log_file_validation: validation?,
        log_group_arn,
        role_arn,
        kms_key_id,
        adopt: adopt.unwrap_or(false),
    })
}

fn group_spec(c: &mut Checker<'_>, k: &KeyPath, raw: &Value) -> Option<GroupSpec> {
    let r: RawGroup = c.section(k, Some(raw));
    let name = c.parsed(&k.key("name"), &r.name, group_name);
    let name = c.required(&k.key("name"), name, &r.name);
    let vpc = c.parsed(&k.key("vpc"), &r.vpc, vpc_id);
    let vpc = c.required(&k.key("vpc"), vpc, &r.vpc);
    let region = c.parsed(&k.key("region"), &r.region, formats::region);
    let description = c.parsed(&k.key("description"), &r.description, formats::non_empty);
    let adopt: Option<bool> = c.value(&k.key("adopt"), &r.adopt);
    let mut rules_ok = true;
    let mut rules = |list: &Option<Vec<Value>>, name: &str| -> Option<Vec<RuleSpec>> {
        let list = list.as_ref()?;
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            match rule_spec(c, &k.key(name).index(i), entry) {
                Some(rule) => out.push(rule),
                None => rules_ok = false,
            }
        }
        Some(out)
    };
    let ingress = rules(&r.ingress, "ingress").unwrap_or_default();
    let egress = rules(&r.egress, "egress");
    if !rules_ok
        || (r.region.is_some() && region.is_none())
        || (r.description.is_some() && description.is_none())
        || (r.adopt.is_some() && adopt.is_none())
    {
        return None;
    }
    let name = name?;
    Some(GroupSpec {
        description: description.unwrap_or_else(|| format!("{name}, kept by cloudwarden")),
        name,
        vpc: vpc?,
        region,
        ingress,
        egress,
        adopt: adopt.unwrap_or(false),
    })
}

fn rule_spec(c: &mut Checker<'_>, k: &KeyPath, raw: &Value) -> Option<RuleSpec> {
    let r: RawRule = c.section(k, Some(raw));
    let protocol = c.parsed(&k.key("protocol"), &r.protocol, |t| match t {
        "tcp" | "udp" | "icmp" | "icmpv6" => Ok(t.to_owned()),
        "all" | "-1" => Ok("-1".to_owned()),
        other => Err(format!(
            "unknown protocol \"{other}\" (expected one of: tcp, udp, icmp, icmpv6, all)"
        )),
    });
    let protocol = c.required(&k.key("protocol"), protocol, &r.protocol);
    let port: Option<i32> = c.value(&k.key("port"), &r.port);
    let from: Option<i32> = c.value(&k.key("from_port"), &r.from_port);
    let to: Option<i32> = c.value(&k.key("to_port"), &r.to_port);
    let cidr = c.parsed(&k.key("cidr"), &r.cidr, |t| {
        t.parse::<IpNet>()
            .map(|net| net.trunc().to_string())
            .map_err(|_| {
                format!("invalid CIDR \"{t}\" (expected one such as 203.0.113.0/24 or ::/0)")
            })
    });
    let cidr = c.required(&k.key("cidr"), cidr, &r.cidr);
    let description = c.parsed(&k.key("description"), &r.description, formats::non_empty);
    let protocol = protocol?;
    let (from, to) = match (port, from, to) {
        _ if protocol == "-1" => (-1, -1),
        (Some(p), None, None) => (p, p),
        (None, Some(f), Some(t)) if f <= t => (f, t),
        (None, Some(_), Some(_)) => {
            c.report(&k.key("to_port"), "to_port must not be below from_port");
            return None;
        }
        _ => {
            c.report(k, "give either `port`, or `from_port` and `to_port`");
            return None;
        }
    };
    let ranged = !matches!(protocol.as_str(), "-1" | "icmp" | "icmpv6");
    if ranged && !((0..=65_535).contains(&from) && (0..=65_535).contains(&to)) {
        c.report(k, "ports are between 0 and 65535");
        return None;
    }
    Some(RuleSpec {
        protocol,
        from_port: from,
        to_port: to,
        cidr: cidr?,
        description,
    })
}

fn trail_name(text: &str) -> Result<String, String> {
    let ok = (3..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid trail name \"{text}\" (3 to 128 letters, digits, periods, underscores or dashes)"
        ))
    }
}

fn group_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 255 || text.starts_with("sg-") || text == "default" {
        Err(format!(
            "invalid security group name \"{text}\" (1 to 255 characters, not starting with sg-, not \"default\")"
        ))
    } else {
        Ok(text.to_owned())
    }
}

fn vpc_id(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("vpc-").unwrap_or_default();
    if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid VPC id \"{text}\" (expected one such as vpc-0a1b2c3d)"
        ))
    }
}

fn arn(text: &str) -> Result<String, String> {
    if text.starts_with("arn:aws") && text.split(':').count() >= 6 {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid ARN \"{text}\""))
    }
}
