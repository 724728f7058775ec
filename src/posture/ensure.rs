//! Declared settings: desired state → plan → apply, as `alarms` does.
//!
//! Ownership: cloudwarden changes a trail or security group only when it
//! created it (it carries the `cloudwarden:managed` tag) or the declaration
//! says `adopt = true`. Anything else of the declared name is reported as
//! foreign and left alone. Nothing is ever deleted: a group's extra rules
//! are revoked only in a group cloudwarden owns, and trails and groups are
//! never removed.

use std::fmt;

use super::api::{OWNER_TAG, PostureApi};
use super::desired::{GroupSpec, RuleSpec, TrailSpec};
use super::facts::{GroupFacts, Permission, TrailFacts};
use crate::aws::AwsError;
use crate::config::PostureConfig;

/// One change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create the trail and start it logging.
    CreateTrail {
        /// Its Region.
        region: String,
        /// What to create.
        spec: TrailSpec,
    },
    /// Put the trail's settings back as declared.
    UpdateTrail {
        /// Its Region.
        region: String,
        /// What it should be.
        spec: TrailSpec,
        /// What differs.
        reasons: Vec<String>,
    },
    /// Start a trail that is not logging.
    StartLogging {
        /// Its Region.
        region: String,
        /// Its name.
        name: String,
    },
    /// Make the trail record all management events.
    RecordManagementEvents {
        /// Its Region.
        region: String,
        /// Its name.
        name: String,
    },
    /// Create the group with its rules.
    CreateGroup {
        /// Its Region.
        region: String,
        /// What to create.
        spec: GroupSpec,
    },
    /// Add missing rules to a group.
    Authorize {
        /// Its Region.
        region: String,
        /// The group's id and name.
        group: (String, String),
        /// Inbound (else outbound).
        ingress: bool,
        /// The rules.
        rules: Vec<RuleSpec>,
    },
    /// Remove rules a group should not have.
    Revoke {
        /// Its Region.
        region: String,
        /// The group's id and name.
        group: (String, String),
        /// Inbound (else outbound).
        ingress: bool,
        /// The rules.
        rules: Vec<RuleSpec>,
    },
}

impl Change {
    /// A short kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::CreateTrail { .. } => "create_trail",
            Change::UpdateTrail { .. } => "update_trail",
            Change::StartLogging { .. } => "start_logging",
            Change::RecordManagementEvents { .. } => "put_event_selectors",
            Change::CreateGroup { .. } => "create_security_group",
            Change::Authorize { .. } => "authorize_security_group",
            Change::Revoke { .. } => "revoke_security_group",
        }
    }

    /// Whether it repairs something that was in place (drift), rather
    /// than creating it.
    pub fn is_repair(&self) -> bool {
        !matches!(
            self,
            Change::CreateTrail { .. } | Change::CreateGroup { .. }
        )
    }

    /// The API call it makes, as a person would type it.
    pub fn call(&self) -> String {
        let rules = |rules: &[RuleSpec]| {
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Change::CreateTrail { region, spec } => format!(
                "cloudtrail CreateTrail {} (bucket {}) and StartLogging in {region}",
                spec.name, spec.bucket
            ),
            Change::UpdateTrail { region, spec, .. } => {
                format!("cloudtrail UpdateTrail {} in {region}", spec.name)
            }
            Change::StartLogging { region, name } => {
                format!("cloudtrail StartLogging {name} in {region}")
            }
            Change::RecordManagementEvents { region, name } => format!(
                "cloudtrail PutEventSelectors {name} (management events, read and write) in {region}"
            ),
            Change::CreateGroup { region, spec } => format!(
                "ec2 CreateSecurityGroup {} in {} ({region}) with {}",
                spec.name,
                spec.vpc,
                if spec.ingress.is_empty() {
                    "no inbound rules".to_owned()
                } else {
                    rules(&spec.ingress)
                }
            ),
            Change::Authorize {
                region,
                group,
                ingress,
                rules: r,
            } => format!(
                "ec2 AuthorizeSecurityGroup{} {} ({}) in {region}: {}",
                if *ingress { "Ingress" } else { "Egress" },
                group.0,
                group.1,
                rules(r)
            ),
            Change::Revoke {
                region,
                group,
                ingress,
                rules: r,
            } => format!(
                "ec2 RevokeSecurityGroup{} {} ({}) in {region}: {}",
                if *ingress { "Ingress" } else { "Egress" },
                group.0,
                group.1,
                rules(r)
            ),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::UpdateTrail { reasons, .. } => {
                write!(f, "{} ({})", self.call(), reasons.join("; "))
            }
            _ => f.write_str(&self.call()),
        }
    }
}

/// What would change.
#[derive(Debug, Default)]
pub struct Plan {
    /// Changes to make, in order.
    pub changes: Vec<Change>,
    /// Declared names held by something cloudwarden does not own.
    pub foreign: Vec<String>,
    /// Declarations whose current state could not be read.
    pub failed: Vec<(String, AwsError)>,
    /// How many things are declared.
    pub declared: usize,
}

/// What applying did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Changes made.
    pub done: Vec<Change>,
    /// Changes that failed.
    pub failed: Vec<(Change, AwsError)>,
}

/// Compares what is declared with what exists.
pub async fn plan<A: PostureApi>(api: &A, config: &PostureConfig, home: &str) -> Plan {
    let mut plan = Plan::default();
    if let Some(spec) = &config.cloudtrail_ensure {
        plan.declared += 1;
        let region = spec.region.clone().unwrap_or_else(|| home.to_owned());
        match api.trails(&region).await {
            Ok(trails) => match trails.iter().find(|t| t.name == spec.name) {
                None => plan.changes.push(Change::CreateTrail {
                    region,
                    spec: spec.clone(),
                }),
                Some(trail) => {
                    let owned =
                        spec.adopt || api.trail_owned(&region, &trail.arn).await.unwrap_or(false);
                    if owned {
                        plan.changes.extend(trail_changes(&region, spec, trail));
                    } else {
                        plan.foreign.push(format!(
                            "the trail {} exists and is not cloudwarden's: not changed (set adopt = true in [posture.cloudtrail.ensure] to let cloudwarden keep it as declared)",
                            spec.name
                        ));
                    }
                }
            },
            Err(err) => plan.failed.push((format!("trail {}", spec.name), err)),
        }
    }
    let mut regions: Vec<String> = config
        .security_groups
        .iter()
        .map(|g| g.region.clone().unwrap_or_else(|| home.to_owned()))
        .collect();
    regions.sort();
    regions.dedup();
    for region in regions {
        let specs: Vec<&GroupSpec> = config
            .security_groups
            .iter()
            .filter(|g| g.region.as_deref().unwrap_or(home) == region)
            .collect();
        plan.declared += specs.len();
        let groups = match api.groups(&region).await {
            Ok(groups) => groups,
            Err(err) => {
                for spec in specs {
                    plan.failed
                        .push((format!("security group {}", spec.name), err.clone()));
                }
                continue;
            }
        };
        for spec in specs {
            let existing = groups
                .iter()
                .find(|g| g.name == spec.name && g.vpc_id.as_deref() == Some(&spec.vpc));
            match existing {
                None => plan.changes.push(Change::CreateGroup { region: region.clone(), spec: spec.clone() }),
                Some(group) if spec.adopt || group.tags.iter().any(|(k, _)| k == OWNER_TAG) => {
                    plan.changes.extend(group_changes(&region, spec, group));
                }
                Some(group) => plan.foreign.push(format!(
                    "the security group {} ({}) exists and is not cloudwarden's: not changed (set adopt = true in its declaration to let cloudwarden keep it as declared)",
                    spec.name, group.id
                )),
            }
        }
    }
    plan
}

fn trail_changes(region: &str, spec: &TrailSpec, t: &TrailFacts) -> Vec<Change> {
    let mut reasons = Vec::new();
    let mut differs = |what: &str, wanted: bool, found: bool| {
        if wanted != found {
            reasons.push(format!("{what} is {found}, declared {wanted}"));
        }
    };
    differs("multi_region", spec.multi_region, t.multi_region);
    differs(
        "include_global_service_events",
        spec.include_global_service_events,
        t.global_events,
    );
    differs(
        "log_file_validation",
        spec.log_file_validation,
        t.log_file_validation,
    );
    if t.bucket.as_deref() != Some(spec.bucket.as_str()) {
        reasons.push(format!(
            "bucket is {}, declared {}",
            t.bucket.as_deref().unwrap_or("none"),
            spec.bucket
        ));
    }
    if spec.log_group_arn.is_some() && t.log_group_arn != spec.log_group_arn {
        reasons.push("its CloudWatch Logs log group differs".to_owned());
    }
    if spec.kms_key_id.is_some() && t.kms_key_id.is_none() {
        reasons.push("it is not encrypted with the declared KMS key".to_owned());
    }
    let mut out = Vec::new();
    if !reasons.is_empty() {
        out.push(Change::UpdateTrail {
            region: region.to_owned(),
            spec: spec.clone(),
            reasons,
        });
    }
    if !(t.management_read && t.management_write) {
        out.push(Change::RecordManagementEvents {
            region: region.to_owned(),
            name: spec.name.clone(),
        });
    }
    if t.logging != Some(true) {
        out.push(Change::StartLogging {
            region: region.to_owned(),
            name: spec.name.clone(),
        });
    }
    out
}

/// The rules a group has, in the declared shape (one per range).
fn current_rules(permissions: &[Permission]) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    for p in permissions {
        for (cidr, description) in &p.ranges {
            out.push(RuleSpec {
                protocol: p.protocol.clone(),
                from_port: p.from_port.unwrap_or(-1),
                to_port: p.to_port.unwrap_or(-1),
                cidr: cidr.clone(),
                description: description.clone(),
            });
        }
    }
    out
}

fn group_changes(region: &str, spec: &GroupSpec, g: &GroupFacts) -> Vec<Change> {
    let group = (g.id.clone(), g.name.clone());
    let mut out = Vec::new();
    let mut diff = |wanted: &[RuleSpec], have: &[Permission], ingress: bool| {
        let have = current_rules(have);
        let missing: Vec<RuleSpec> = wanted
            .iter()
            .filter(|w| !have.iter().any(|h| h.key() == w.key()))
            .cloned()
            .collect();
        let extra: Vec<RuleSpec> = have
            .iter()
            .filter(|h| !wanted.iter().any(|w| w.key() == h.key()))
            .cloned()
            .collect();
        // Revoke first: a port that moved is never open twice.
        if !extra.is_empty() {
            out.push(Change::Revoke {
                region: region.to_owned(),
                group: group.clone(),
                ingress,
                rules: extra,
            });
        }
        if !missing.is_empty() {
            out.push(Change::Authorize {
                region: region.to_owned(),
                group: group.clone(),
                ingress,
                rules: missing,
            });
        }
    };
    diff(&spec.ingress, &g.ingress, true);
    if let Some(egress) = &spec.egress {
        diff(egress, &g.egress, false);
    }
    out
}

/// Makes the plan's changes, in order; a failure does not stop the rest.
pub async fn apply<A: PostureApi>(api: &A, plan: &Plan) -> Applied {
    let mut applied = Applied::default();
    for change in &plan.changes {
        match make(api, change).await {
            Ok(()) => applied.done.push(change.clone()),
            Err(err) => applied.failed.push((change.clone(), err)),
        }
    }
    applied
}

async fn make<A: PostureApi>(api: &A, change: &Change) -> Result<(), AwsError> {
    match change {
        Change::CreateTrail { region, spec } => {
            api.create_trail(region, spec).await?;
            api.record_management_events(region, &spec.name).await?;
            api.start_logging(region, &spec.name).await
        }
        Change::UpdateTrail { region, spec, .. } => api.update_trail(region, spec).await,
        Change::StartLogging { region, name } => api.start_logging(region, name).await,
        Change::RecordManagementEvents { region, name } => {
            api.record_management_events(region, name).await
        }
        Change::CreateGroup { region, spec } => {
            let id = api.create_group(region, spec).await?;
            if !spec.ingress.is_empty() {
                api.authorize(region, &id, true, &spec.ingress).await?;
            }
            if let Some(egress) = &spec.egress {
                // A new group allows all outbound traffic; keep it only if declared.
                let all = RuleSpec {
                    protocol: "-1".to_owned(),
                    from_port: -1,
                    to_port: -1,
                    cidr: "0.0.0.0/0".to_owned(),
                    description: None,
                };
                let extra: Vec<RuleSpec> = [all]
                    .into_iter()
                    .filter(|a| !egress.iter().any(|e| e.key() == a.key()))
                    .collect();
                if !extra.is_empty() {
                    api.revoke(region, &id, false, &extra).await?;
                }
                let missing: Vec<RuleSpec> = egress
                    .iter()
                    .filter(|e| !(e.protocol == "-1" && e.cidr == "0.0.0.0/0"))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    api.authorize(region, &id, false, &missing).await?;
                }
            }
            Ok(())
        }
        Change::Authorize {
            region,
            group,
            ingress,
            rules,
        } => api.authorize(region, &group.0, *ingress, rules).await,
        Change::Revoke {
            region,
            group,
            ingress,
            rules,
        } => api.revoke(region, &group.0, *ingress, rules).await,
    }
}
