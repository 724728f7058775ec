//! The actions, what each needs from an event or a finding, and the
//! target it works out: pure computation, tested without AWS.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A response action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Remove the world-open ingress rules an event added or a finding names.
    RevokeSecurityGroupIngress,
    /// Start a trail that was stopped.
    StartLogging,
    /// Make a trail record management events of both kinds again.
    RestoreEventSelectors,
    /// Detach the managed policy an event attached to a user.
    DetachUserPolicy,
    /// Set an access key to Inactive.
    DeactivateAccessKey,
    /// Attach a deny-all inline policy to the acting user or role.
    QuarantinePrincipal,
    /// Remove a console password created for a user.
    DeleteLoginProfile,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 7] = [
        Action::RevokeSecurityGroupIngress,
        Action::StartLogging,
        Action::RestoreEventSelectors,
        Action::DetachUserPolicy,
        Action::DeactivateAccessKey,
        Action::QuarantinePrincipal,
        Action::DeleteLoginProfile,
    ];

    /// Its configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Action::RevokeSecurityGroupIngress => "revoke_security_group_ingress",
            Action::StartLogging => "start_logging",
            Action::RestoreEventSelectors => "restore_event_selectors",
            Action::DetachUserPolicy => "detach_user_policy",
            Action::DeactivateAccessKey => "deactivate_access_key",
            Action::QuarantinePrincipal => "quarantine_principal",
            Action::DeleteLoginProfile => "delete_login_profile",
        }
    }

    /// The action of this name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The event field it needs, and the events that carry it; `None`
    /// events means any event (the field is about who acted).
    pub fn needs(self) -> (&'static str, Option<&'static [&'static str]>) {
        match self {
            Action::RevokeSecurityGroupIngress => (
                "requestParameters.groupId",
                Some(&["AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"]),
            ),
            Action::StartLogging => ("requestParameters.name", Some(&["StopLogging"])),
            Action::RestoreEventSelectors => {
                ("requestParameters.trailName", Some(&["PutEventSelectors"]))
            }
            Action::DetachUserPolicy => (
                "requestParameters.userName and requestParameters.policyArn",
                Some(&["AttachUserPolicy"]),
            ),
            Action::DeactivateAccessKey => (
                "responseElements.accessKey.accessKeyId or userIdentity.accessKeyId",
                None,
            ),
            Action::QuarantinePrincipal => ("userIdentity (an IAM user or role)", None),
            Action::DeleteLoginProfile => (
                "requestParameters.userName",
                Some(&["CreateLoginProfile", "UpdateLoginProfile"]),
            ),
        }
    }

    /// The posture checks whose findings it can act on.
    pub fn checks(self) -> &'static [&'static str] {
        match self {
            Action::RevokeSecurityGroupIngress => {
                &["sg_world_open_admin_port", "sg_world_open_port"]
            }
            Action::StartLogging => &["cloudtrail_trail_not_logging"],
            Action::RestoreEventSelectors => &["cloudtrail_management_events_incomplete"],
            _ => &[],
        }
    }

    /// Whether it can act on findings of `check`.
    pub fn serves_check(self, check: &str) -> bool {
        self.checks().contains(&check)
    }
}

/// What an action works on, worked out from the event or finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A security group's world-open ingress.
    SecurityGroup {
        /// Its Region.
        region: String,
        /// `sg-...`.
        group_id: String,
        /// The ports the event opened (protocol, from, to); empty: every
        /// world-open port not allowed.
        ports: Vec<(String, i32, i32)>,
        /// Only rules to administration and database ports, or all traffic
        /// (for `sg_world_open_admin_port` findings).
        #[serde(default)]
        admin_only: bool,
    },
    /// A trail.
    Trail {
        /// Its Region.
        region: String,
        /// Its name or ARN.
        name: String,
    },
    /// A managed policy on a user.
    UserPolicy {
        /// The user.
        user: String,
        /// The policy's ARN.
        policy_arn: String,
    },
    /// An access key.
    AccessKey {
        /// Its user.
        user: String,
        /// `AKIA...`.
        key_id: String,
    },
    /// An IAM user.
    User {
        /// Its name.
        name: String,
        /// Its ARN, when known.
        arn: Option<String>,
    },
    /// An IAM role.
    Role {
        /// Its name.
        name: String,
        /// Its ARN, when known.
        arn: Option<String>,
    },
}

impl Target {
    /// Identifiers protections are matched against.
    pub fn identifiers(&self) -> Vec<String> {
        match self {
            Target::SecurityGroup {
                group_id, region, ..
            } => {
                vec![
                    group_id.clone(),
                    format!("arn:aws:ec2:{region}:*:security-group/{group_id}"),
                ]
            }
            Target::Trail { name, .. } => vec![name.clone()],
            Target::UserPolicy { user, policy_arn } => vec![user.clone(), policy_arn.clone()],
            Target::AccessKey { user, key_id } => vec![user.clone(), key_id.clone()],
            Target::User { name, arn } | Target::Role { name, arn } => {
                let mut ids = vec![name.clone()];
                ids.extend(arn.clone());
                ids
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::SecurityGroup {
                group_id,
                region,
                ports,
                ..
            } if ports.is_empty() => {
                write!(f, "security group {group_id} in {region}")
            }
            Target::SecurityGroup {
                group_id,
                region,
                ports,
                ..
            } => write!(
                f,
                "security group {group_id} in {region} ({})",
                ports
                    .iter()
                    .map(|(p, a, b)| if a == b {
                        format!("{p}/{a}")
                    } else {
                        format!("{p}/{a}-{b}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Target::Trail { name, region } => write!(f, "trail {name} in {region}"),
            Target::UserPolicy { user, policy_arn } => {
                write!(f, "policy {policy_arn} on user {user}")
            }
            Target::AccessKey { user, key_id } => write!(f, "access key {key_id} of user {user}"),
            Target::User { name, .. } => write!(f, "user {name}"),
            Target::Role { name, .. } => write!(f, "role {name}"),
        }
    }
}

fn text<'v>(event: &'v Value, path: &str) -> Option<&'v str> {
    path.split('.')
        .try_fold(event, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The target of `action` for `event`, or why there is none.
pub fn from_event(action: Action, event: &Value) -> Result<Target, String> {
    let (field, _) = action.needs();
    let missing = || format!("the event has no {field}");
    let region = text(event, "awsRegion").unwrap_or("us-east-1").to_owned();
    match action {
        Action::RevokeSecurityGroupIngress => {
            let group_id = text(event, "requestParameters.groupId")
                .ok_or_else(missing)?
                .to_owned();
            let items = event
                .pointer("/requestParameters/ipPermissions/items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ports = items
                .iter()
                .filter_map(|p| {
                    let protocol = p.get("ipProtocol")?.as_str()?.to_owned();
                    let from = p.get("fromPort").and_then(Value::as_i64).unwrap_or(-1);
                    let to = p.get("toPort").and_then(Value::as_i64).unwrap_or(-1);
                    Some((protocol, i32::try_from(from).ok()?, i32::try_from(to).ok()?))
                })
                .collect();
            Ok(Target::SecurityGroup {
                region,
                group_id,
                ports,
                admin_only: false,
            })
        }
        Action::StartLogging => {
            let name = text(event, "requestParameters.name")
                .ok_or_else(missing)?
                .to_owned();
            Ok(Target::Trail { region, name })
        }
        Action::RestoreEventSelectors => {
            let name = text(event, "requestParameters.trailName")
                .ok_or_else(missing)?
                .to_owned();
            Ok(Target::Trail { region, name })
        }
        Action::DetachUserPolicy => {
            let user = text(event, "requestParameters.userName")
                .ok_or_else(missing)?
                .to_owned();
            let policy_arn = text(event, "requestParameters.policyArn")
                .ok_or_else(missing)?
                .to_owned();
            Ok(Target::UserPolicy { user, policy_arn })
        }
        Action::DeactivateAccessKey => {
            if let Some(key_id) = text(event, "responseElements.accessKey.accessKeyId") {
                let user = text(event, "responseElements.accessKey.userName")
                    .or_else(|| text(event, "requestParameters.userName"))
                    .or_else(|| text(event, "userIdentity.userName"))
                    .ok_or_else(missing)?;
                return Ok(Target::AccessKey {
                    user: user.to_owned(),
                    key_id: key_id.to_owned(),
                });
            }
            let key_id = text(event, "userIdentity.accessKeyId").ok_or_else(missing)?;
            if !key_id.starts_with("AKIA") {
                return Err(format!(
                    "the caller used {key_id}, a temporary key: it cannot be deactivated (quarantine the principal instead)"
                ));
            }
            let user = text(event, "userIdentity.userName").ok_or_else(missing)?;
            Ok(Target::AccessKey {
                user: user.to_owned(),
                key_id: key_id.to_owned(),
            })
        }
        Action::QuarantinePrincipal => match text(event, "userIdentity.type") {
            Some("IAMUser") => Ok(Target::User {
                name: text(event, "userIdentity.userName")
                    .ok_or_else(missing)?
                    .to_owned(),
                arn: text(event, "userIdentity.arn").map(str::to_owned),
            }),
            Some("AssumedRole") => {
                let issuer = "userIdentity.sessionContext.sessionIssuer";
                if text(event, &format!("{issuer}.type")) != Some("Role") {
                    return Err(missing());
                }
                Ok(Target::Role {
                    name: text(event, &format!("{issuer}.userName"))
                        .ok_or_else(missing)?
                        .to_owned(),
                    arn: text(event, &format!("{issuer}.arn")).map(str::to_owned),
                })
            }
            Some(other) => Err(format!("the caller is {other}, not an IAM user or role")),
            None => Err(missing()),
        },
        Action::DeleteLoginProfile => {
            let user = text(event, "requestParameters.userName")
                .ok_or_else(missing)?
                .to_owned();
            Ok(Target::User {
                name: user,
                arn: None,
            })
        }
    }
}

/// The target of `action` for a posture finding about `resource` (an ARN).
pub fn from_finding(action: Action, check: &str, resource: &str) -> Result<Target, String> {
    if !action.serves_check(check) {
        return Err(format!(
            "{} does not act on {check} findings",
            action.name()
        ));
    }
    // arn:aws:SERVICE:REGION:ACCOUNT:TYPE/ID
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    let (Some(region), Some(rest)) = (parts.get(3), parts.get(5)) else {
        return Err(format!("cannot read the resource ARN {resource}"));
    };
    let id = rest.split_once('/').map_or(*rest, |(_, id)| id);
    match action {
        Action::RevokeSecurityGroupIngress => Ok(Target::SecurityGroup {
            region: (*region).to_owned(),
            group_id: id.to_owned(),
            ports: Vec::new(),
            admin_only: check == "sg_world_open_admin_port",
        }),
        Action::StartLogging | Action::RestoreEventSelectors => Ok(Target::Trail {
            region: (*region).to_owned(),
            name: resource.to_owned(),
        }),
        _ => Err(format!("{} does not act on findings", action.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_come_from_the_fields_each_action_needs() {
        let open = json!({"eventName": "AuthorizeSecurityGroupIngress", "awsRegion": "eu-west-3",
            "requestParameters": {"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22}]}}});
        assert_eq!(
            from_event(Action::RevokeSecurityGroupIngress, &open).unwrap(),
            Target::SecurityGroup {
                region: "eu-west-3".into(),
                group_id: "sg-1".into(),
                ports: vec![("tcp".into(), 22, 22)],
                admin_only: false,
            }
        );
        let attach = json!({"requestParameters": {"userName": "JohnDoe", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}});
        assert!(matches!(
            from_event(Action::DetachUserPolicy, &attach),
            Ok(Target::UserPolicy { .. })
        ));
        let created = json!({"userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "ASIAXYZ"},
            "requestParameters": {"userName": "backup-admin"},
            "responseElements": {"accessKey": {"accessKeyId": "AKIANEW", "userName": "backup-admin"}}});
        assert_eq!(
            from_event(Action::DeactivateAccessKey, &created).unwrap(),
            Target::AccessKey {
                user: "backup-admin".into(),
                key_id: "AKIANEW".into()
            }
        );
        let session = json!({"userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "ASIAXYZ"}});
        assert!(
            from_event(Action::DeactivateAccessKey, &session)
                .unwrap_err()
                .contains("temporary")
        );
        let role = json!({"userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "dev", "arn": "arn:aws:iam::1:role/dev"}}}});
        assert_eq!(
            from_event(Action::QuarantinePrincipal, &role).unwrap(),
            Target::Role {
                name: "dev".into(),
                arn: Some("arn:aws:iam::1:role/dev".into())
            }
        );
        let root = json!({"userIdentity": {"type": "Root"}});
        assert!(from_event(Action::QuarantinePrincipal, &root).is_err());
        let stop = json!({"awsRegion": "us-east-1", "eventName": "CreateUser"});
        assert!(
            from_event(Action::StartLogging, &stop)
                .unwrap_err()
                .contains("requestParameters.name")
        );
    }

    #[test]
    fn findings_give_targets_only_to_the_actions_that_serve_them() {
        let sg = "arn:aws:ec2:eu-west-3:111122223333:security-group/sg-0abc";
        assert_eq!(
            from_finding(
                Action::RevokeSecurityGroupIngress,
                "sg_world_open_admin_port",
                sg
            )
            .unwrap(),
            Target::SecurityGroup {
                region: "eu-west-3".into(),
                group_id: "sg-0abc".into(),
                ports: vec![],
                admin_only: true,
            }
        );
        assert!(from_finding(Action::DetachUserPolicy, "sg_world_open_admin_port", sg).is_err());
        let trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/MyTrail";
        assert!(matches!(
            from_finding(Action::StartLogging, "cloudtrail_trail_not_logging", trail),
            Ok(Target::Trail { .. })
        ));
    }
}
