//! One sweep: read the facts of the targets asked for, run the checks on
//! them, and say which scopes were read completely. A part that fails
//! leaves its scopes uncovered, so their findings stay as they were rather
//! than being resolved by an empty answer.

use super::api::PostureApi;
use super::checks::{self, Finding, Settings};
use crate::aws::AwsError;
use crate::detection::touch::Touched;

/// What to sweep.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Every trail.
    Trails,
    /// One Region's security groups.
    Groups(String),
    /// Every IAM user.
    Users,
    /// One IAM user.
    User(String),
    /// Root and the password policy.
    Account,
}

impl Target {
    /// Every target, over `regions`.
    pub fn all(regions: &[String]) -> Vec<Target> {
        let mut out = vec![Target::Trails, Target::Users, Target::Account];
        out.extend(regions.iter().cloned().map(Target::Groups));
        out
    }

    /// The target an event's change calls for.
    pub fn of(touched: &Touched) -> Target {
        match touched {
            Touched::Trails => Target::Trails,
            Touched::Groups(region) => Target::Groups(region.clone()),
            Touched::User(name) => Target::User(name.clone()),
            Touched::Users => Target::Users,
            Touched::Account => Target::Account,
        }
    }
}

/// A scope read completely: its findings are now exactly those found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// One scope (its key).
    Scope(String),
    /// Every scope whose key starts so (every user, including deleted ones).
    Prefix(&'static str),
}

impl Cover {
    /// Whether a finding of scope `key` is settled by this.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Cover::Scope(scope) => scope == key,
            Cover::Prefix(prefix) => key.starts_with(prefix),
        }
    }
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// The findings in the covered scopes.
    pub findings: Vec<Finding>,
    /// The scopes read completely.
    pub covered: Vec<Cover>,
    /// The parts that failed.
    pub failed: Vec<(String, AwsError)>,
}

/// Sweeps `targets`; `regions` are those trails are read in.
pub async fn sweep<A: PostureApi>(
    api: &A,
    settings: &Settings,
    regions: &[String],
    targets: &[Target],
) -> Sweep {
    let mut out = Sweep::default();
    for target in targets {
        match target {
            Target::Trails => {
                let mut trails = Vec::new();
                let mut complete = true;
                for region in regions {
                    match api.trails(region).await {
                        Ok(found) => trails.extend(found),
                        Err(err) => {
                            complete = false;
                            out.failed.push((format!("trails in {region}"), err));
                        }
                    }
                }
                // Account-wide checks need every Region; without one, no
                // finding of the scope is settled.
                if complete {
                    out.findings.extend(checks::trails(settings, &trails));
                    out.covered
                        .push(Cover::Scope(checks::Scope::CloudTrail.key()));
                }
            }
            Target::Groups(region) => match api.groups(region).await {
                Ok(groups) => {
                    out.findings
                        .extend(checks::groups(settings, region, &groups));
                    out.covered
                        .push(Cover::Scope(checks::Scope::Groups(region.clone()).key()));
                }
                Err(err) => out
                    .failed
                    .push((format!("security groups in {region}"), err)),
            },
            Target::Users => match api.users(None).await {
                Ok(users) => {
                    for user in &users {
                        out.findings.extend(checks::user(settings, user));
                    }
                    out.covered.push(Cover::Prefix("user:"));
                }
                Err(err) => out.failed.push(("IAM users".to_owned(), err)),
            },
            Target::User(name) => match api.users(Some(name)).await {
                Ok(users) => {
                    for user in &users {
                        out.findings.extend(checks::user(settings, user));
                    }
                    out.covered
                        .push(Cover::Scope(checks::Scope::User(name.clone()).key()));
                }
                Err(err) => out.failed.push((format!("IAM user {name}"), err)),
            },
            Target::Account => match api.account_facts().await {
                Ok(facts) => {
                    out.findings.extend(checks::account(settings, &facts));
                    out.covered.push(Cover::Scope(checks::Scope::Account.key()));
                }
                Err(err) => out.failed.push(("IAM account settings".to_owned(), err)),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests;
