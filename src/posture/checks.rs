//! The checks themselves: pure functions from facts to findings, so each
//! is tested without AWS.

use super::catalog::{self, ADMIN_PORTS, Check};
use super::facts::{AccountFacts, GroupFacts, Permission, TrailFacts, UserFacts};
use crate::config::PostureConfig;

/// Where a finding lives: sweeping a scope settles every finding in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every trail of the account.
    CloudTrail,
    /// The security groups of one Region.
    Groups(String),
    /// One IAM user.
    User(String),
    /// Root and the password policy.
    Account,
}

impl Scope {
    /// The scope as kept in the state store.
    pub fn key(&self) -> String {
        match self {
            Scope::CloudTrail => "cloudtrail".to_owned(),
            Scope::Groups(region) => format!("groups:{region}"),
            Scope::User(name) => format!("user:{name}"),
            Scope::Account => "account".to_owned(),
        }
    }
}

/// One failed check about one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The check.
    pub check: &'static Check,
    /// The resource's ARN.
    pub resource: String,
    /// Its Region (`global` for IAM).
    pub region: String,
    /// Its scope.
    pub scope: Scope,
    /// What is wrong, for people.
    pub message: String,
}

impl Finding {
    /// The finding's identity across sweeps: its check and its resource.
    pub fn key(&self) -> String {
        format!("{}|{}", self.check.id, self.resource)
    }
}

/// What the checks need besides the facts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The account swept.
    pub account: String,
    /// The home Region (where account-wide trail findings are filed).
    pub home_region: String,
    /// `[posture]`.
    pub config: PostureConfig,
    /// Whether the CIS alarms are on: then a trail must feed a log group.
    pub cis_alarms: bool,
    /// Now, seconds since the epoch.
    pub now: i64,
}

impl Settings {
    fn on(&self, id: &str) -> Option<&'static Check> {
        if self.config.disabled.iter().any(|d| d == id) {
            return None;
        }
        catalog::find(id)
    }

    fn finding(
        &self,
        id: &str,
        resource: String,
        region: &str,
        scope: &Scope,
        message: String,
    ) -> Option<Finding> {
        Some(Finding {
            check: self.on(id)?,
            resource,
            region: region.to_owned(),
            scope: scope.clone(),
            message,
        })
    }
}

/// The trail checks, over every trail of the account.
pub fn trails(s: &Settings, trails: &[TrailFacts]) -> Vec<Finding> {
    let scope = Scope::CloudTrail;
    let mut out = Vec::new();
    let account_trails = format!("arn:aws:cloudtrail:{}:{}:trail/*", s.home_region, s.account);
    let complete = |t: &&TrailFacts| {
        t.multi_region && t.logging == Some(true) && t.management_read && t.management_write
    };
    if !trails.iter().any(|t| complete(&t)) {
        out.extend(s.finding(
            "cloudtrail_no_multi_region_trail",
            account_trails.clone(),
            &s.home_region,
            &scope,
            match trails.len() {
                0 => "The account has no trail.".to_owned(),
                n => format!("None of the account's {n} trails is multi-Region, logging and recording all management events."),
            },
        ));
    }
    if s.cis_alarms
        && !trails
            .iter()
            .any(|t| complete(&t) && t.log_group_arn.is_some())
    {
        out.extend(s.finding(
            "cloudtrail_no_cloudwatch_logs_delivery",
            account_trails,
            &s.home_region,
            &scope,
            "The CIS alarms are enabled, but no logging multi-Region trail delivers to CloudWatch Logs, so they count nothing.".to_owned(),
        ));
    }
    for t in trails {
        let mut found = |id: &str, message: String| {
            out.extend(s.finding(id, t.arn.clone(), &t.home_region, &scope, message));
        };
        if t.logging == Some(false) {
            found(
                "cloudtrail_trail_not_logging",
                format!("The trail {} is not logging.", t.name),
            );
        }
        if t.multi_region && !t.global_events {
            found(
                "cloudtrail_global_events_off",
                format!(
                    "The multi-Region trail {} does not record global service events (IAM, STS).",
                    t.name
                ),
            );
        }
        if !(t.management_read && t.management_write) {
            let missing = match (t.management_read, t.management_write) {
                (false, false) => "any management events",
                (false, true) => "management events that read",
                _ => "management events that write",
            };
            found(
                "cloudtrail_management_events_incomplete",
                format!("The trail {} does not record {missing}.", t.name),
            );
        }
        if !t.log_file_validation {
            found(
                "cloudtrail_log_file_validation_off",
                format!("The trail {} has log file validation off.", t.name),
            );
        }
        if t.kms_key_id.is_none() {
            found(
                "cloudtrail_not_encrypted_with_kms",
                format!(
                    "The trail {} does not encrypt its files with a KMS key.",
                    t.name
                ),
            );
        }
    }
    out
}

/// The security group checks, over one Region's groups.
pub fn groups(s: &Settings, region: &str, groups: &[GroupFacts]) -> Vec<Finding> {
    let scope = Scope::Groups(region.to_owned());
    let mut out = Vec::new();
    for g in groups {
        let mut admin = Vec::new();
        let mut other = Vec::new();
        for p in &g.ingress {
            for range in world_ranges(p) {
                match exposure(p, &s.config.world_open_allowed_ports) {
                    Exposure::Admin(what) => admin.push(format!("{what} from {range}")),
                    Exposure::Other(what) => other.push(format!("{what} from {range}")),
                    Exposure::Allowed => {}
                }
            }
        }
        let label = if g.name.is_empty() {
            g.id.clone()
        } else {
            format!("{} ({})", g.id, g.name)
        };
        if !admin.is_empty() {
            out.extend(s.finding(
                "sg_world_open_admin_port",
                g.arn(),
                region,
                &scope,
                format!("The security group {label} allows {}.", admin.join("; ")),
            ));
        }
        if !other.is_empty() {
            out.extend(s.finding(
                "sg_world_open_port",
                g.arn(),
                region,
                &scope,
                format!("The security group {label} allows {}.", other.join("; ")),
            ));
        }
        if g.name == "default" && (!g.ingress.is_empty() || !g.egress.is_empty()) {
            out.extend(s.finding(
                "sg_default_allows_traffic",
                g.arn(),
                region,
                &scope,
                format!(
                    "The default security group {} of {} has {} inbound and {} outbound rules.",
                    g.id,
                    g.vpc_id.as_deref().unwrap_or("its VPC"),
                    g.ingress.len(),
                    g.egress.len()
                ),
            ));
        }
    }
    out
}

/// The ranges of a permission that are the whole Internet.
fn world_ranges(p: &Permission) -> Vec<String> {
    let world = |cidr: &str| cidr == "0.0.0.0/0" || cidr == "::/0";
    let mut out: Vec<String> = p
        .ranges
        .iter()
        .filter(|(cidr, _)| world(cidr))
        .map(|(cidr, _)| cidr.clone())
        .collect();
    out.extend(
        p.prefix_list_ranges
            .iter()
            .filter(|(_, cidr)| world(cidr))
            .map(|(list, cidr)| format!("{cidr} (in {list})")),
    );
    out
}

enum Exposure {
    Admin(String),
    Other(String),
    Allowed,
}

/// How bad it is to open `p` to the world.
fn exposure(p: &Permission, allowed: &[u16]) -> Exposure {
    let protocol = p.protocol.as_str();
    if protocol == "-1" || protocol == "all" {
        return Exposure::Admin("all traffic".to_owned());
    }
    if matches!(protocol, "icmp" | "icmpv6" | "1" | "58") {
        return Exposure::Allowed;
    }
    let (from, to) = match (p.from_port, p.to_port) {
        (Some(f), Some(t)) if f >= 0 && t >= f => (f, t),
        _ => return Exposure::Admin(format!("{protocol}, every port")),
    };
    let what = if from == to {
        format!("{protocol}/{from}")
    } else {
        format!("{protocol}/{from}-{to}")
    };
    let admin: Vec<&str> = ADMIN_PORTS
        .iter()
        .filter(|(port, _)| (from..=to).contains(port))
        .map(|(_, name)| *name)
        .collect();
    if !admin.is_empty() {
        let mut names = admin;
        names.dedup();
        let shown = if names.len() > 4 {
            format!("{}, ...", names[..4].join(", "))
        } else {
            names.join(", ")
        };
        return Exposure::Admin(format!("{what} ({shown})"));
    }
    if (from..=to).all(|port| u16::try_from(port).is_ok_and(|p| allowed.contains(&p))) {
        Exposure::Allowed
    } else {
        Exposure::Other(what)
    }
}

/// The checks of one IAM user.
pub fn user(s: &Settings, u: &UserFacts) -> Vec<Finding> {
    let scope = Scope::User(u.name.clone());
    let mut out = Vec::new();
    let mut found = |id: &str, message: String| {
        out.extend(s.finding(id, u.arn.clone(), "global", &scope, message));
    };
    let admin: Vec<&str> = u
        .attached
        .iter()
        .filter(|p| p.name == "AdministratorAccess" || p.allows_all)
        .map(|p| p.name.as_str())
        .collect();
    if !admin.is_empty() {
        found(
            "iam_user_admin_policy_attached",
            format!(
                "The user {} has {} attached directly.",
                u.name,
                admin.join(", ")
            ),
        );
    }
    let full: Vec<&str> = u
        .attached
        .iter()
        .filter(|p| p.name.ends_with("FullAccess") && !admin.contains(&p.name.as_str()))
        .map(|p| p.name.as_str())
        .collect();
    if !full.is_empty() {
        found(
            "iam_user_full_access_policy_attached",
            format!(
                "The user {} has {} attached directly.",
                u.name,
                full.join(", ")
            ),
        );
    }
    let inline: Vec<&str> = u
        .inline
        .iter()
        .filter(|(_, all)| *all)
        .map(|(n, _)| n.as_str())
        .collect();
    if !inline.is_empty() {
        found(
            "iam_user_inline_policy_allows_all",
            format!(
                "The inline policy {} of the user {} allows every action.",
                inline.join(", "),
                u.name
            ),
        );
    }
    if u.console && !u.mfa {
        found(
            "iam_console_user_without_mfa",
            format!(
                "The user {} can sign in to the console without MFA.",
                u.name
            ),
        );
    }
    let max_age = i64::try_from(s.config.max_access_key_age.as_secs()).unwrap_or(i64::MAX);
    let days = max_age / 86_400;
    let old: Vec<String> = u
        .keys
        .iter()
        .filter(|k| k.active && s.now - k.created > max_age)
        .map(|k| format!("{} ({} days)", k.id, (s.now - k.created) / 86_400))
        .collect();
    if !old.is_empty() {
        found(
            "iam_access_key_too_old",
            format!(
                "The user {} has active access keys older than {days} days: {}.",
                u.name,
                old.join(", ")
            ),
        );
    }
    let unused: Vec<String> = u
        .keys
        .iter()
        .filter(|k| k.active && s.now - k.last_used.unwrap_or(k.created) > max_age)
        .map(|k| match k.last_used {
            Some(_) => format!(
                "{} (last used {} days ago)",
                k.id,
                (s.now - k.last_used.unwrap_or(k.created)) / 86_400
            ),
            None => format!("{} (never used)", k.id),
        })
        .collect();
    if !unused.is_empty() {
        found(
            "iam_access_key_unused",
            format!(
                "The user {} has active access keys unused for more than {days} days: {}.",
                u.name,
                unused.join(", ")
            ),
        );
    }
    out
}

/// The account-wide checks.
pub fn account(s: &Settings, a: &AccountFacts) -> Vec<Finding> {
    let scope = Scope::Account;
    let root = format!("arn:aws:iam::{}:root", s.account);
    let mut out = Vec::new();
    if a.root_access_keys {
        out.extend(s.finding(
            "iam_root_access_keys",
            root.clone(),
            "global",
            &scope,
            "The root user has access keys.".to_owned(),
        ));
    }
    if !a.root_mfa {
        out.extend(s.finding(
            "iam_root_without_mfa",
            root,
            "global",
            &scope,
            "The root user has no MFA device.".to_owned(),
        ));
    }
    let want = s.config.password_policy;
    let weak = match a.password_policy {
        None => Some("The account has no password policy.".to_owned()),
        Some(p) if p.min_length < want.min_length || p.reuse_prevention < want.reuse_prevention => {
            Some(format!(
                "The password policy asks for {} characters and remembers {} passwords; at least {} and {} are required.",
                p.min_length, p.reuse_prevention, want.min_length, want.reuse_prevention
            ))
        }
        Some(_) => None,
    };
    if let Some(message) = weak {
        out.extend(s.finding(
            "iam_password_policy_weak",
            format!("arn:aws:iam::{}:account-password-policy", s.account),
            "global",
            &scope,
            message,
        ));
    }
    out
}

#[cfg(test)]
mod tests;
