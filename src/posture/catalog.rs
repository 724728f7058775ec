//! Every posture check: its id, severity, CIS AWS Foundations control and
//! what to do about a finding. The README's checks table is this table.

use crate::detection::Level;

/// What a check looks at; a sweep of one family in one scope settles every
/// finding of that family there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Trails, account-wide.
    CloudTrail,
    /// Security groups, per Region.
    SecurityGroups,
    /// IAM users, per user.
    Users,
    /// Root and the password policy.
    Account,
}

/// One check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Its id: alerts carry it as their rule id, suppressions name it.
    pub id: &'static str,
    /// What it looks at.
    pub family: Family,
    /// How bad a finding is.
    pub severity: Level,
    /// The CIS AWS Foundations Benchmark (v3.0) control, where there is one.
    pub cis: Option<&'static str>,
    /// A title for alerts and the table.
    pub title: &'static str,
    /// What to do.
    pub remediation: &'static str,
}

/// The checks.
pub const CHECKS: &[Check] = &[
    Check {
        id: "cloudtrail_no_multi_region_trail",
        family: Family::CloudTrail,
        severity: Level::High,
        cis: Some("3.1"),
        title: "No Multi-Region Trail Is Logging Management Events",
        remediation: "Create a multi-Region trail that records management events, read and write (aws cloudtrail create-trail --is-multi-region-trail, then start-logging), or declare one in [posture.cloudtrail.ensure].",
    },
    Check {
        id: "cloudtrail_trail_not_logging",
        family: Family::CloudTrail,
        severity: Level::High,
        cis: Some("3.1"),
        title: "Trail Is Not Logging",
        remediation: "Find who stopped it (cloudtrail StopLogging in CloudTrail or the trail's last status), then start it again: aws cloudtrail start-logging --name TRAIL.",
    },
    Check {
        id: "cloudtrail_global_events_off",
        family: Family::CloudTrail,
        severity: Level::Medium,
        cis: Some("3.1"),
        title: "Multi-Region Trail Does Not Record Global Service Events",
        remediation: "aws cloudtrail update-trail --name TRAIL --include-global-service-events, so IAM, STS and CloudFront calls are recorded.",
    },
    Check {
        id: "cloudtrail_management_events_incomplete",
        family: Family::CloudTrail,
        severity: Level::Medium,
        cis: Some("3.1"),
        title: "Trail Does Not Record All Management Events",
        remediation: "Set the trail's event selectors to record management events of both kinds (ReadWriteType All): aws cloudtrail put-event-selectors.",
    },
    Check {
        id: "cloudtrail_log_file_validation_off",
        family: Family::CloudTrail,
        severity: Level::Medium,
        cis: Some("3.2"),
        title: "Trail Log File Validation Is Off",
        remediation: "aws cloudtrail update-trail --name TRAIL --enable-log-file-validation, so tampering with delivered files can be detected.",
    },
    Check {
        id: "cloudtrail_not_encrypted_with_kms",
        family: Family::CloudTrail,
        severity: Level::Low,
        cis: Some("3.5"),
        title: "Trail Files Are Not Encrypted With KMS",
        remediation: "aws cloudtrail update-trail --name TRAIL --kms-key-id KEY, with a key policy that lets CloudTrail encrypt and your readers decrypt.",
    },
    Check {
        id: "cloudtrail_no_cloudwatch_logs_delivery",
        family: Family::CloudTrail,
        severity: Level::Medium,
        cis: None,
        title: "No Logging Trail Delivers To CloudWatch Logs",
        remediation: "The CIS alarms count events in a log group: set the multi-Region trail's CloudWatch Logs log group and role (aws cloudtrail update-trail --cloud-watch-logs-log-group-arn ... --cloud-watch-logs-role-arn ...).",
    },
    Check {
        id: "sg_world_open_admin_port",
        family: Family::SecurityGroups,
        severity: Level::High,
        cis: Some("5.2"),
        title: "Security Group Opens An Administration Or Database Port To The World",
        remediation: "Revoke the rule (aws ec2 revoke-security-group-ingress --group-id SG --security-group-rule-ids RULE) and reach the port through a bastion, SSM Session Manager or a VPN, from known ranges only.",
    },
    Check {
        id: "sg_world_open_port",
        family: Family::SecurityGroups,
        severity: Level::Medium,
        cis: None,
        title: "Security Group Opens A Port To The World",
        remediation: "Narrow the rule to the ranges that need it, or add the port to posture.world_open_allowed_ports if it is meant to be public.",
    },
    Check {
        id: "sg_default_allows_traffic",
        family: Family::SecurityGroups,
        severity: Level::Medium,
        cis: Some("5.4"),
        title: "Default Security Group Allows Traffic",
        remediation: "Remove every rule from the VPC's default security group and give resources groups of their own.",
    },
    Check {
        id: "iam_user_admin_policy_attached",
        family: Family::Users,
        severity: Level::High,
        cis: Some("1.16"),
        title: "Administrator Policy Attached Directly To A User",
        remediation: "Detach the policy (aws iam detach-user-policy) and grant what the user needs through a group or a role it assumes, scoped to the task.",
    },
    Check {
        id: "iam_user_full_access_policy_attached",
        family: Family::Users,
        severity: Level::Medium,
        cis: Some("1.15"),
        title: "Full-Access Policy Attached Directly To A User",
        remediation: "Detach the *FullAccess policy (aws iam detach-user-policy) and grant the actions the user needs through a group, on the resources it needs.",
    },
    Check {
        id: "iam_user_inline_policy_allows_all",
        family: Family::Users,
        severity: Level::High,
        cis: Some("1.16"),
        title: "Inline User Policy Allows Every Action",
        remediation: "Replace the inline policy (aws iam delete-user-policy) with a managed policy that names the actions needed, attached to a group.",
    },
    Check {
        id: "iam_console_user_without_mfa",
        family: Family::Users,
        severity: Level::Medium,
        cis: Some("1.10"),
        title: "Console User Without MFA",
        remediation: "Have the user enrol an MFA device, or remove the console password (aws iam delete-login-profile) if the user does not sign in.",
    },
    Check {
        id: "iam_access_key_too_old",
        family: Family::Users,
        severity: Level::Medium,
        cis: Some("1.14"),
        title: "Access Key Older Than Allowed",
        remediation: "Rotate the key: create a new one, move its users to it, deactivate and then delete the old one.",
    },
    Check {
        id: "iam_access_key_unused",
        family: Family::Users,
        severity: Level::Low,
        cis: Some("1.12"),
        title: "Active Access Key Unused For Too Long",
        remediation: "Deactivate the key (aws iam update-access-key --status Inactive) and delete it once nothing breaks.",
    },
    Check {
        id: "iam_root_access_keys",
        family: Family::Account,
        severity: Level::Critical,
        cis: Some("1.4"),
        title: "Root Has Access Keys",
        remediation: "Delete the root user's access keys (signed in as root: Security credentials) and use IAM roles instead.",
    },
    Check {
        id: "iam_root_without_mfa",
        family: Family::Account,
        severity: Level::Critical,
        cis: Some("1.5"),
        title: "Root Has No MFA",
        remediation: "Enrol an MFA device for the root user, preferably a hardware key kept apart.",
    },
    Check {
        id: "iam_password_policy_weak",
        family: Family::Account,
        severity: Level::Medium,
        cis: Some("1.8"),
        title: "Password Policy Weaker Than Required",
        remediation: "aws iam update-account-password-policy --minimum-password-length N --password-reuse-prevention N, at least the values in [posture.password_policy].",
    },
];

/// The check with this id.
pub fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Ports that give control of a host or its data: a world-open rule to one
/// of these is `high`.
pub const ADMIN_PORTS: &[(i32, &str)] = &[
    (20, "FTP data"),
    (21, "FTP"),
    (22, "SSH"),
    (23, "Telnet"),
    (135, "RPC"),
    (139, "NetBIOS"),
    (445, "SMB"),
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (2375, "Docker"),
    (2376, "Docker TLS"),
    (2379, "etcd"),
    (3306, "MySQL"),
    (3389, "RDP"),
    (5432, "PostgreSQL"),
    (5601, "Kibana"),
    (5900, "VNC"),
    (5984, "CouchDB"),
    (5985, "WinRM"),
    (5986, "WinRM TLS"),
    (6379, "Redis"),
    (6443, "Kubernetes API"),
    (7001, "WebLogic"),
    (8020, "Hadoop"),
    (8086, "InfluxDB"),
    (8888, "Jupyter"),
    (9042, "Cassandra"),
    (9092, "Kafka"),
    (9200, "Elasticsearch"),
    (9300, "Elasticsearch transport"),
    (10250, "kubelet"),
    (11211, "Memcached"),
    (27017, "MongoDB"),
    (27018, "MongoDB"),
];
