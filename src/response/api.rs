//! The AWS calls response actions make, behind a narrow interface: each
//! action reads the current state first (so that a repeat finds it done)
//! and then makes one change. [`AwsResponse`] is the SDK.

use std::future::Future;

use aws_sdk_iam::types::StatusType;

use super::actions::Target;
use super::selectors::Selectors;
use crate::aws::{AwsError, Clients};
use crate::posture::desired::RuleSpec;

/// The name of the deny-all inline policy `quarantine_principal` attaches.
pub const QUARANTINE_POLICY: &str = "cloudwarden-quarantine";

/// The deny-all document, the way AWS's own compromised-key policy denies.
pub const QUARANTINE_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"CloudwardenQuarantine","Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// AWS, as response actions need it.
pub trait ResponseApi: Send + Sync {
    /// cloudwarden's own principal (its ARN).
    fn caller(&self) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// The group's ingress rules from the whole Internet, one per range.
    fn world_ingress(
        &self,
        region: &str,
        group: &str,
    ) -> impl Future<Output = Result<Vec<RuleSpec>, AwsError>> + Send;
    /// Removes ingress rules.
    fn revoke(
        &self,
        region: &str,
        group: &str,
        rules: &[RuleSpec],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Adds ingress rules (undo).
    fn authorize(
        &self,
        region: &str,
        group: &str,
        rules: &[RuleSpec],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Whether the trail is logging.
    fn logging(
        &self,
        region: &str,
        trail: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
    /// The trail's event selectors.
    fn selectors(
        &self,
        region: &str,
        trail: &str,
    ) -> impl Future<Output = Result<Selectors, AwsError>> + Send;
    /// Puts the trail's event selectors.
    fn put_selectors(
        &self,
        region: &str,
        trail: &str,
        selectors: &Selectors,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Starts (or, to undo, stops) the trail.
    fn set_logging(
        &self,
        region: &str,
        trail: &str,
        on: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The managed policies attached to the user.
    fn attached(&self, user: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// Detaches (or, to undo, attaches) a managed policy.
    fn set_attached(
        &self,
        user: &str,
        policy_arn: &str,
        attached: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Whether the key is active; `None` when it does not exist.
    fn key_active(
        &self,
        user: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<bool>, AwsError>> + Send;
    /// Sets the key's status.
    fn set_key(
        &self,
        user: &str,
        key: &str,
        active: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Whether the quarantine policy is on the user or role.
    fn quarantined(
        &self,
        principal: &Target,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
    /// Puts (or, to undo, deletes) the quarantine policy.
    fn set_quarantine(
        &self,
        principal: &Target,
        on: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Whether the user has a console password.
    fn login_profile(&self, user: &str) -> impl Future<Output = Result<bool, AwsError>> + Send;
    /// Deletes the user's console password.
    fn delete_login_profile(&self, user: &str)
    -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The SDK.
pub struct AwsResponse {
    clients: Clients,
}

impl AwsResponse {
    /// Response actions through `clients`.
    pub fn new(clients: Clients) -> AwsResponse {
        AwsResponse { clients }
    }
}

fn absent(err: &AwsError) -> bool {
    matches!(err.code.as_str(), "NoSuchEntity" | "NoSuchEntityException")
}

impl ResponseApi for AwsResponse {
    async fn caller(&self) -> Result<String, AwsError> {
        Ok(crate::aws::caller_identity(&self.clients).await?.arn)
    }

    async fn world_ingress(&self, region: &str, group: &str) -> Result<Vec<RuleSpec>, AwsError> {
        let client = self.clients.ec2(region);
        let out = self
            .clients
            .call(
                "ec2",
                "DescribeSecurityGroups",
                client.describe_security_groups().group_ids(group).send(),
            )
            .await?;
        let mut rules = Vec::new();
        for g in out.security_groups() {
            for p in g.ip_permissions() {
                let cidrs = p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip())
                    .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
                    .filter(|c| *c == "0.0.0.0/0" || *c == "::/0");
                for cidr in cidrs {
                    rules.push(RuleSpec {
                        protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
                        from_port: p.from_port().unwrap_or(-1),
                        to_port: p.to_port().unwrap_or(-1),
                        cidr: cidr.to_owned(),
                        description: None,
                    });
                }
            }
        }
        Ok(rules)
    }

    async fn revoke(&self, region: &str, group: &str, rules: &[RuleSpec]) -> Result<(), AwsError> {
        let client = self.clients.ec2(region);
        let call = client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(crate::posture::api::ip_permissions(rules)))
            .send();
        self.clients
            .call("ec2", "RevokeSecurityGroupIngress", call)
            .await?;
        Ok(())
    }

    async fn authorize(
        &self,
        region: &str,
        group: &str,
        rules: &[RuleSpec],
    ) -> Result<(), AwsError> {
        let client = self.clients.ec2(region);
        let call = client
            .authorize_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(crate::posture::api::ip_permissions(rules)))
            .send();
        self.clients
            .call("ec2", "AuthorizeSecurityGroupIngress", call)
            .await?;
        Ok(())
    }

    async fn logging(&self, region: &str, trail: &str) -> Result<bool, AwsError> {
        let client = self.clients.cloudtrail(region);
        let out = self
            .clients
            .call(
                "cloudtrail",
                "GetTrailStatus",
                client.get_trail_status().name(trail).send(),
            )
            .await?;
        Ok(out.is_logging().unwrap_or(false))
    }

    async fn selectors(&self, region: &str, trail: &str) -> Result<Selectors, AwsError> {
        let client = self.clients.cloudtrail(region);
        let out = self
            .clients
            .call(
                "cloudtrail",
                "GetEventSelectors",
                client.get_event_selectors().trail_name(trail).send(),
            )
            .await?;
        Ok(Selectors::from(&out))
    }

    async fn put_selectors(
        &self,
        region: &str,
        trail: &str,
        selectors: &Selectors,
    ) -> Result<(), AwsError> {
        let client = self.clients.cloudtrail(region);
        let mut call = client.put_event_selectors().trail_name(trail);
        if selectors.advanced.is_empty() {
            call = call.set_event_selectors(Some(selectors.sdk_basic()));
        } else {
            let advanced = selectors.sdk_advanced().map_err(|message| AwsError {
                service: "cloudtrail",
                operation: "PutEventSelectors",
                code: "construction".to_owned(),
                message,
                class: crate::aws::retry::ErrorClass::Permanent,
            })?;
            call = call.set_advanced_event_selectors(Some(advanced));
        }
        self.clients
            .call("cloudtrail", "PutEventSelectors", call.send())
            .await?;
        Ok(())
    }

    async fn set_logging(&self, region: &str, trail: &str, on: bool) -> Result<(), AwsError> {
        let client = self.clients.cloudtrail(region);
        if on {
            self.clients
                .call(
                    "cloudtrail",
                    "StartLogging",
                    client.start_logging().name(trail).send(),
                )
                .await?;
        } else {
            self.clients
                .call(
                    "cloudtrail",
                    "StopLogging",
                    client.stop_logging().name(trail).send(),
                )
                .await?;
        }
        Ok(())
    }

    async fn attached(&self, user: &str) -> Result<Vec<String>, AwsError> {
        let client = self.clients.iam();
        let out = self
            .clients
            .call(
                "iam",
                "ListAttachedUserPolicies",
                client.list_attached_user_policies().user_name(user).send(),
            )
            .await?;
        Ok(out
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect())
    }

    async fn set_attached(
        &self,
        user: &str,
        policy_arn: &str,
        attached: bool,
    ) -> Result<(), AwsError> {
        let client = self.clients.iam();
        if attached {
            let call = client
                .attach_user_policy()
                .user_name(user)
                .policy_arn(policy_arn)
                .send();
            self.clients.call("iam", "AttachUserPolicy", call).await?;
        } else {
            let call = client
                .detach_user_policy()
                .user_name(user)
                .policy_arn(policy_arn)
                .send();
            self.clients.call("iam", "DetachUserPolicy", call).await?;
        }
        Ok(())
    }

    async fn key_active(&self, user: &str, key: &str) -> Result<Option<bool>, AwsError> {
        let client = self.clients.iam();
        let out = self
            .clients
            .call(
                "iam",
                "ListAccessKeys",
                client.list_access_keys().user_name(user).send(),
            )
            .await?;
        Ok(out
            .access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(key))
            .map(|k| k.status() == Some(&StatusType::Active)))
    }

    async fn set_key(&self, user: &str, key: &str, active: bool) -> Result<(), AwsError> {
        let client = self.clients.iam();
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        let call = client
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(status)
            .send();
        self.clients.call("iam", "UpdateAccessKey", call).await?;
        Ok(())
    }

    async fn quarantined(&self, principal: &Target) -> Result<bool, AwsError> {
        let client = self.clients.iam();
        let result = match principal {
            Target::User { name, .. } => self
                .clients
                .call(
                    "iam",
                    "GetUserPolicy",
                    client
                        .get_user_policy()
                        .user_name(name)
                        .policy_name(QUARANTINE_POLICY)
                        .send(),
                )
                .await
                .map(|_| true),
            Target::Role { name, .. } => self
                .clients
                .call(
                    "iam",
                    "GetRolePolicy",
                    client
                        .get_role_policy()
                        .role_name(name)
                        .policy_name(QUARANTINE_POLICY)
                        .send(),
                )
                .await
                .map(|_| true),
            _ => Ok(false),
        };
        match result {
            Err(err) if absent(&err) => Ok(false),
            other => other,
        }
    }

    async fn set_quarantine(&self, principal: &Target, on: bool) -> Result<(), AwsError> {
        let client = self.clients.iam();
        match (principal, on) {
            (Target::User { name, .. }, true) => {
                let call = client
                    .put_user_policy()
                    .user_name(name)
                    .policy_name(QUARANTINE_POLICY)
                    .policy_document(QUARANTINE_DOCUMENT)
                    .send();
                self.clients.call("iam", "PutUserPolicy", call).await?;
            }
            (Target::User { name, .. }, false) => {
                let call = client
                    .delete_user_policy()
                    .user_name(name)
                    .policy_name(QUARANTINE_POLICY)
                    .send();
                self.clients.call("iam", "DeleteUserPolicy", call).await?;
            }
            (Target::Role { name, .. }, true) => {
                let call = client
                    .put_role_policy()
                    .role_name(name)
                    .policy_name(QUARANTINE_POLICY)
                    .policy_document(QUARANTINE_DOCUMENT)
                    .send();
                self.clients.call("iam", "PutRolePolicy", call).await?;
            }
            (Target::Role { name, .. }, false) => {
                let call = client
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(QUARANTINE_POLICY)
                    .send();
                self.clients.call("iam", "DeleteRolePolicy", call).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn login_profile(&self, user: &str) -> Result<bool, AwsError> {
        let client = self.clients.iam();
        match self
            .clients
            .call(
                "iam",
                "GetLoginProfile",
                client.get_login_profile().user_name(user).send(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if absent(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn delete_login_profile(&self, user: &str) -> Result<(), AwsError> {
        let client = self.clients.iam();
        self.clients
            .call(
                "iam",
                "DeleteLoginProfile",
                client.delete_login_profile().user_name(user).send(),
            )
            .await?;
        Ok(())
    }
}
