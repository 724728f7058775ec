//! Carrying out one action: read the current state, then make the one
//! change (or, in dry run, say which call it would be). Reading first
//! makes every action idempotent: a repeat after a crash finds the change
//! made and reports `already`.

use serde::{Deserialize, Serialize};

use super::actions::{Action, Target};
use super::api::{QUARANTINE_POLICY, ResponseApi};
use crate::aws::AwsError;
use crate::posture::desired::RuleSpec;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made.
    Done,
    /// It was already as the action would leave it.
    Already,
    /// Dry run: the change was described, not made.
    DryRun,
    /// A guard refused it.
    Refused,
    /// AWS refused it (a permanent error), or it kept failing.
    Failed,
}

impl Outcome {
    /// The lowercase name, for metrics and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Already => "already",
            Outcome::DryRun => "dry_run",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// How to put back what an action changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// Authorize the revoked rules again.
    Authorize {
        /// Region.
        region: String,
        /// Group.
        group_id: String,
        /// The rules revoked.
        rules: Vec<RuleSpec>,
    },
    /// Put the trail's previous event selectors back.
    PutSelectors {
        /// Region.
        region: String,
        /// Trail.
        name: String,
        /// The selectors before the action.
        selectors: super::selectors::Selectors,
    },
    /// Stop the trail again.
    StopLogging {
        /// Region.
        region: String,
        /// Trail.
        name: String,
    },
    /// Attach the policy again.
    AttachUserPolicy {
        /// User.
        user: String,
        /// Policy.
        policy_arn: String,
    },
    /// Activate the key again.
    ActivateKey {
        /// User.
        user: String,
        /// Key.
        key_id: String,
    },
    /// Remove the quarantine policy.
    RemoveQuarantine {
        /// The user or role.
        principal: Target,
    },
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undo::Authorize {
                region,
                group_id,
                rules,
            } => write!(
                f,
                "ec2 AuthorizeSecurityGroupIngress {group_id} in {region}: {}",
                rules
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Undo::StopLogging { region, name } => {
                write!(f, "cloudtrail StopLogging {name} in {region}")
            }
            Undo::PutSelectors { region, name, .. } => write!(
                f,
                "cloudtrail PutEventSelectors {name} in {region} with the selectors it had before"
            ),
            Undo::AttachUserPolicy { user, policy_arn } => {
                write!(f, "iam AttachUserPolicy {policy_arn} to {user}")
            }
            Undo::ActivateKey { user, key_id } => {
                write!(f, "iam UpdateAccessKey {key_id} of {user} to Active")
            }
            Undo::RemoveQuarantine { principal } => {
                write!(
                    f,
                    "iam Delete{}Policy {QUARANTINE_POLICY} from {principal}",
                    kind(principal)
                )
            }
        }
    }
}

fn kind(principal: &Target) -> &'static str {
    match principal {
        Target::Role { .. } => "Role",
        _ => "User",
    }
}

/// What carrying out an action came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Performed {
    /// How it ended.
    pub outcome: Outcome,
    /// The call made, or that would be made, or why none.
    pub call: String,
    /// How to put it back, when something changed.
    pub undo: Option<Undo>,
}

impl Performed {
    fn new(outcome: Outcome, call: String, undo: Option<Undo>) -> Performed {
        Performed {
            outcome,
            call,
            undo,
        }
    }
}

/// Carries out `action` on `target`. `Err` is a failure worth retrying or
/// reporting (the caller decides by its class); nothing is changed in dry
/// run. `allowed` are the ports that may stay open to the world when a
/// finding gave no ports.
pub async fn perform<A: ResponseApi>(
    api: &A,
    action: Action,
    target: &Target,
    enforce: bool,
    allowed: &[u16],
) -> Result<Performed, AwsError> {
    let made = |call: String, undo: Undo| {
        if enforce {
            Performed::new(Outcome::Done, call, Some(undo))
        } else {
            Performed::new(Outcome::DryRun, format!("would call {call}"), None)
        }
    };
    match (action, target) {
        (
            Action::RevokeSecurityGroupIngress,
            Target::SecurityGroup {
                region,
                group_id,
                ports,
                admin_only,
            },
        ) => {
            let open = api.world_ingress(region, group_id).await?;
            let revoke: Vec<RuleSpec> = open
                .into_iter()
                .filter(|r| {
                    if *admin_only {
                        r.protocol == "-1"
                            || crate::posture::catalog::ADMIN_PORTS
                                .iter()
                                .any(|(p, _)| (r.from_port..=r.to_port).contains(p))
                    } else if ports.is_empty() {
                        let port_ok = |p: i32| u16::try_from(p).is_ok_and(|p| allowed.contains(&p));
                        !(r.protocol != "-1"
                            && r.from_port >= 0
                            && (r.from_port..=r.to_port).all(port_ok))
                    } else {
                        ports.iter().any(|(p, from, to)| {
                            (p == &r.protocol || p == "-1")
                                && *from <= r.to_port
                                && r.from_port <= *to
                                || (p == "-1" && r.protocol == "-1")
                        })
                    }
                })
                .collect();
            let call = format!(
                "ec2 RevokeSecurityGroupIngress {group_id} in {region}: {}",
                revoke
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if revoke.is_empty() {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("{target}: no such rule open to the world"),
                    None,
                ));
            }
            if enforce {
                api.revoke(region, group_id, &revoke).await?;
            }
            Ok(made(
                call,
                Undo::Authorize {
                    region: region.clone(),
                    group_id: group_id.clone(),
                    rules: revoke,
                },
            ))
        }
        (Action::StartLogging, Target::Trail { region, name }) => {
            if api.logging(region, name).await? {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("{target} is logging"),
                    None,
                ));
            }
            if enforce {
                api.set_logging(region, name, true).await?;
            }
            Ok(made(
                format!("cloudtrail StartLogging {name} in {region}"),
                Undo::StopLogging {
                    region: region.clone(),
                    name: name.clone(),
                },
            ))
        }
        (Action::RestoreEventSelectors, Target::Trail { region, name }) => {
            let before = api.selectors(region, name).await?;
            if before.records_management() {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("{target} records management events of both kinds"),
                    None,
                ));
            }
            let after = before.with_management();
            if enforce {
                api.put_selectors(region, name, &after).await?;
            }
            Ok(made(
                format!(
                    "cloudtrail PutEventSelectors {name} in {region} (management events, read and write; data events kept)"
                ),
                Undo::PutSelectors {
                    region: region.clone(),
                    name: name.clone(),
                    selectors: before,
                },
            ))
        }
        (Action::DetachUserPolicy, Target::UserPolicy { user, policy_arn }) => {
            if !api.attached(user).await?.contains(policy_arn) {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("{policy_arn} is not attached to {user}"),
                    None,
                ));
            }
            if enforce {
                api.set_attached(user, policy_arn, false).await?;
            }
            Ok(made(
                format!("iam DetachUserPolicy {policy_arn} from {user}"),
                Undo::AttachUserPolicy {
                    user: user.clone(),
                    policy_arn: policy_arn.clone(),
                },
            ))
        }
        (Action::DeactivateAccessKey, Target::AccessKey { user, key_id }) => {
            match api.key_active(user, key_id).await? {
                None => Ok(Performed::new(
                    Outcome::Already,
                    format!("{target} no longer exists"),
                    None,
                )),
                Some(false) => Ok(Performed::new(
                    Outcome::Already,
                    format!("{target} is inactive"),
                    None,
                )),
                Some(true) => {
                    if enforce {
                        api.set_key(user, key_id, false).await?;
                    }
                    Ok(made(
                        format!("iam UpdateAccessKey {key_id} of {user} to Inactive"),
                        Undo::ActivateKey {
                            user: user.clone(),
                            key_id: key_id.clone(),
                        },
                    ))
                }
            }
        }
        (Action::QuarantinePrincipal, principal @ (Target::User { .. } | Target::Role { .. })) => {
            if api.quarantined(principal).await? {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("{principal} is quarantined"),
                    None,
                ));
            }
            if enforce {
                api.set_quarantine(principal, true).await?;
            }
            Ok(made(
                format!(
                    "iam Put{}Policy {QUARANTINE_POLICY} (deny all) on {principal}",
                    kind(principal)
                ),
                Undo::RemoveQuarantine {
                    principal: principal.clone(),
                },
            ))
        }
        (Action::DeleteLoginProfile, Target::User { name, .. }) => {
            if !api.login_profile(name).await? {
                return Ok(Performed::new(
                    Outcome::Already,
                    format!("user {name} has no console password"),
                    None,
                ));
            }
            if enforce {
                api.delete_login_profile(name).await?;
            }
            // A deleted password cannot be put back: the user sets a new one.
            Ok(if enforce {
                Performed::new(
                    Outcome::Done,
                    format!("iam DeleteLoginProfile {name}"),
                    None,
                )
            } else {
                Performed::new(
                    Outcome::DryRun,
                    format!("would call iam DeleteLoginProfile {name}"),
                    None,
                )
            })
        }
        (action, target) => Ok(Performed::new(
            Outcome::Failed,
            format!("{} cannot act on {target}", action.name()),
            None,
        )),
    }
}

/// Puts back what an action changed.
pub async fn undo<A: ResponseApi>(api: &A, undo: &Undo) -> Result<(), AwsError> {
    match undo {
        Undo::Authorize {
            region,
            group_id,
            rules,
        } => api.authorize(region, group_id, rules).await,
        Undo::StopLogging { region, name } => api.set_logging(region, name, false).await,
        Undo::PutSelectors {
            region,
            name,
            selectors,
        } => api.put_selectors(region, name, selectors).await,
        Undo::AttachUserPolicy { user, policy_arn } => {
            api.set_attached(user, policy_arn, true).await
        }
        Undo::ActivateKey { user, key_id } => api.set_key(user, key_id, true).await,
        Undo::RemoveQuarantine { principal } => api.set_quarantine(principal, false).await,
    }
}
