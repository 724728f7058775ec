//! What a sweep reads from AWS, in the shape the checks need. The checks
//! ([`super::checks`]) are pure functions of these, so they are tested
//! without AWS, and the API layer ([`super::api`]) is the only place that
//! knows how each fact is fetched.

/// One trail, with its status and selectors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrailFacts {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The Region it was created in.
    pub home_region: String,
    /// Whether it records every Region.
    pub multi_region: bool,
    /// Whether it records global services.
    pub global_events: bool,
    /// Whether log file validation is on.
    pub log_file_validation: bool,
    /// The KMS key its files are encrypted with.
    pub kms_key_id: Option<String>,
    /// The log group it delivers to.
    pub log_group_arn: Option<String>,
    /// Its S3 bucket.
    pub bucket: Option<String>,
    /// Whether it is logging now; `None` when the status could not be read.
    pub logging: Option<bool>,
    /// Whether its selectors record management events that read.
    pub management_read: bool,
    /// Whether its selectors record management events that write.
    pub management_write: bool,
}

/// One security group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFacts {
    /// `sg-...`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// The account that owns it.
    pub owner: String,
    /// Its Region.
    pub region: String,
    /// Inbound permissions.
    pub ingress: Vec<Permission>,
    /// Outbound permissions.
    pub egress: Vec<Permission>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl GroupFacts {
    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ec2:{}:{}:security-group/{}",
            self.region, self.owner, self.id
        )
    }
}

/// One permission of a group: a protocol and port range, and where from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` (all) or a protocol number.
    pub protocol: String,
    /// First port; `None` for all.
    pub from_port: Option<i32>,
    /// Last port; `None` for all.
    pub to_port: Option<i32>,
    /// IPv4 and IPv6 ranges, each with its rule's description.
    pub ranges: Vec<(String, Option<String>)>,
    /// Ranges of the managed prefix lists it names, resolved.
    pub prefix_list_ranges: Vec<(String, String)>,
    /// Other groups it names.
    pub groups: Vec<String>,
}

/// One IAM user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFacts {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Managed policies attached directly: (name, ARN, allows every action).
    pub attached: Vec<AttachedPolicy>,
    /// Inline policies: (name, allows every action).
    pub inline: Vec<(String, bool)>,
    /// Whether it has a console password.
    pub console: bool,
    /// Whether it has an MFA device.
    pub mfa: bool,
    /// Its access keys.
    pub keys: Vec<KeyFacts>,
}

/// A managed policy attached to a user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttachedPolicy {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Whether its default version allows every action on every resource
    /// (known for the account's own policies; AWS's go by name).
    pub allows_all: bool,
}

/// One access key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyFacts {
    /// `AKIA...`.
    pub id: String,
    /// Whether it is active.
    pub active: bool,
    /// When it was created, seconds since the epoch.
    pub created: i64,
    /// When it was last used, seconds since the epoch.
    pub last_used: Option<i64>,
}

/// Account-wide IAM settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountFacts {
    /// Whether root has access keys.
    pub root_access_keys: bool,
    /// Whether root has MFA.
    pub root_mfa: bool,
    /// The password policy; `None` when there is none.
    pub password_policy: Option<PasswordPolicy>,
}

/// The parts of the password policy the checks read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length.
    pub min_length: u32,
    /// Previous passwords remembered.
    pub reuse_prevention: u32,
}
