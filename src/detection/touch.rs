//! Which checked resource an event changed, so posture re-checks it in
//! seconds instead of at the next sweep. Pure computation on the parsed
//! event: a successful call of a known name, and the resource it names.

use super::sigma::field::{Doc, FieldPath};

/// What an event touched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Touched {
    /// A trail (created, stopped, changed, deleted).
    Trails,
    /// A security group in this Region.
    Groups(String),
    /// This IAM user.
    User(String),
    /// Managed policies, which any user may have attached.
    Users,
    /// Root or the password policy.
    Account,
}

/// An event that touched a checked resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// What it touched.
    pub what: Touched,
    /// `eventName`.
    pub event_name: String,
    /// `eventID`.
    pub event_id: Option<String>,
    /// `eventTime`.
    pub event_time: Option<String>,
    /// Who acted.
    pub principal: Option<String>,
}

/// The fields read, parsed once.
#[derive(Debug)]
pub struct TouchPaths {
    name: FieldPath,
    source: FieldPath,
    error: FieldPath,
    region: FieldPath,
    id: FieldPath,
    time: FieldPath,
    principal: FieldPath,
    user: FieldPath,
    caller: FieldPath,
}

impl Default for TouchPaths {
    fn default() -> Self {
        TouchPaths {
            name: FieldPath::new("eventName"),
            source: FieldPath::new("eventSource"),
            error: FieldPath::new("errorCode"),
            region: FieldPath::new("awsRegion"),
            id: FieldPath::new("eventID"),
            time: FieldPath::new("eventTime"),
            principal: FieldPath::new("userIdentity.arn"),
            user: FieldPath::new("requestParameters.userName"),
            caller: FieldPath::new("userIdentity.userName"),
        }
    }
}

impl TouchPaths {
    /// What `doc` touched, if it is a successful call that changes a
    /// checked resource.
    pub fn touch(&self, doc: Doc<'_>) -> Option<Touch> {
        let name = self.name.first_text(doc)?;
        let source = self.source.first_text(doc)?;
        if self.error.first_text(doc).is_some_and(|e| !e.is_empty()) {
            return None;
        }
        let what = match (source, name) {
            (
                "ec2.amazonaws.com",
                "AuthorizeSecurityGroupIngress"
                | "AuthorizeSecurityGroupEgress"
                | "RevokeSecurityGroupIngress"
                | "RevokeSecurityGroupEgress"
                | "ModifySecurityGroupRules"
                | "CreateSecurityGroup"
                | "DeleteSecurityGroup"
                | "ModifyManagedPrefixList",
            ) => Touched::Groups(self.region.first_text(doc)?.to_owned()),
            (
                "cloudtrail.amazonaws.com",
                "CreateTrail" | "DeleteTrail" | "UpdateTrail" | "StartLogging" | "StopLogging"
                | "PutEventSelectors",
            ) => Touched::Trails,
            (
                "iam.amazonaws.com",
                "AttachUserPolicy"
                | "DetachUserPolicy"
                | "PutUserPolicy"
                | "DeleteUserPolicy"
                | "CreateAccessKey"
                | "DeleteAccessKey"
                | "UpdateAccessKey"
                | "EnableMFADevice"
                | "DeactivateMFADevice"
                | "CreateLoginProfile"
                | "DeleteLoginProfile"
                | "CreateUser"
                | "DeleteUser",
            ) => {
                // Without a userName, the call was about the caller itself.
                let user = self
                    .user
                    .first_text(doc)
                    .or_else(|| self.caller.first_text(doc))?;
                Touched::User(user.to_owned())
            }
            ("iam.amazonaws.com", "CreatePolicyVersion" | "SetDefaultPolicyVersion") => {
                Touched::Users
            }
            (
                "iam.amazonaws.com",
                "UpdateAccountPasswordPolicy" | "DeleteAccountPasswordPolicy",
            ) => Touched::Account,
            _ => return None,
        };
        Some(Touch {
            what,
            event_name: name.to_owned(),
            event_id: self.id.first_text(doc).map(str::to_owned),
            event_time: self.time.first_text(doc).map(str::to_owned),
            principal: self.principal.first_text(doc).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touched(event: &str) -> Option<Touched> {
        let root: sonic_rs::Value = sonic_rs::from_str(event).unwrap();
        TouchPaths::default()
            .touch(Doc::plain(&root))
            .map(|t| t.what)
    }

    #[test]
    fn successful_changes_name_what_they_touched() {
        assert_eq!(
            touched(
                r#"{"eventSource":"ec2.amazonaws.com","eventName":"AuthorizeSecurityGroupIngress","awsRegion":"eu-west-3","requestParameters":{"groupId":"sg-1"}}"#
            ),
            Some(Touched::Groups("eu-west-3".to_owned()))
        );
        assert_eq!(
            touched(
                r#"{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1"}"#
            ),
            Some(Touched::Trails)
        );
        assert_eq!(
            touched(
                r#"{"eventSource":"iam.amazonaws.com","eventName":"AttachUserPolicy","requestParameters":{"userName":"JohnDoe"},"userIdentity":{"userName":"alice"}}"#
            ),
            Some(Touched::User("JohnDoe".to_owned()))
        );
        // CreateAccessKey without a userName is about the caller.
        assert_eq!(
            touched(
                r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","requestParameters":null,"userIdentity":{"userName":"alice"}}"#
            ),
            Some(Touched::User("alice".to_owned()))
        );
        assert_eq!(
            touched(
                r#"{"eventSource":"iam.amazonaws.com","eventName":"DeleteAccountPasswordPolicy"}"#
            ),
            Some(Touched::Account)
        );
    }

    #[test]
    fn failures_reads_and_other_services_touch_nothing() {
        assert_eq!(
            touched(
                r#"{"eventSource":"ec2.amazonaws.com","eventName":"AuthorizeSecurityGroupIngress","awsRegion":"eu-west-3","errorCode":"UnauthorizedOperation"}"#
            ),
            None
        );
        assert_eq!(
            touched(
                r#"{"eventSource":"ec2.amazonaws.com","eventName":"DescribeSecurityGroups","awsRegion":"eu-west-3"}"#
            ),
            None
        );
        assert_eq!(
            touched(
                r#"{"eventSource":"s3.amazonaws.com","eventName":"StopLogging","awsRegion":"eu-west-3"}"#
            ),
            None
        );
    }
}
