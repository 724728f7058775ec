//! What the operator declares should exist: a trail, security groups.
//! `[posture.cloudtrail.ensure]` and `[[posture.security_groups.declared]]`
//! are validated into these.

/// The trail to create or keep as declared (the mission's `create_trail`
/// and `start_logging`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailSpec {
    /// The trail's name.
    pub name: String,
    /// The bucket it delivers to (its policy must let CloudTrail write).
    pub bucket: String,
    /// Its home Region; the home Region of the daemon when not given.
    pub region: Option<String>,
    /// Whether it records every Region.
    pub multi_region: bool,
    /// Whether it records global services (IAM, STS, CloudFront).
    pub include_global_service_events: bool,
    /// Whether CloudTrail signs digest files.
    pub log_file_validation: bool,
    /// The log group it delivers to, with `role_arn`.
    pub log_group_arn: Option<String>,
    /// The role CloudTrail assumes to write to the log group.
    pub role_arn: Option<String>,
    /// The KMS key its files are encrypted with.
    pub kms_key_id: Option<String>,
    /// Whether cloudwarden may change a trail of this name it did not create.
    pub adopt: bool,
}

/// A security group to create or keep to exactly its declared rules (the
/// mission's `create_security_group` and `add_inbound_rule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Its name, unique in the VPC.
    pub name: String,
    /// The VPC it belongs to.
    pub vpc: String,
    /// Its Region; the home Region when not given.
    pub region: Option<String>,
    /// Its description (fixed at creation).
    pub description: String,
    /// Inbound rules, exactly.
    pub ingress: Vec<RuleSpec>,
    /// Outbound rules, exactly; `None` leaves outbound rules alone.
    pub egress: Option<Vec<RuleSpec>>,
    /// Whether cloudwarden may change a group of this name it did not create.
    pub adopt: bool,
}

/// One rule of a declared group: a protocol, a port range and an IP range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct RuleSpec {
    /// `tcp`, `udp`, `icmp`, `icmpv6` or `-1` (all traffic).
    pub protocol: String,
    /// The first port (or ICMP type); -1 for all.
    pub from_port: i32,
    /// The last port (or ICMP code); -1 for all.
    pub to_port: i32,
    /// The IPv4 or IPv6 range.
    pub cidr: String,
    /// The rule's description.
    pub description: Option<String>,
}

impl RuleSpec {
    /// The rule without its description: two rules that differ only there
    /// are the same rule to AWS.
    pub fn key(&self) -> (String, i32, i32, String) {
        (
            self.protocol.clone(),
            self.from_port,
            self.to_port,
            self.cidr.clone(),
        )
    }
}

impl std::fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.protocol.as_str(), self.from_port, self.to_port) {
            ("-1", _, _) => write!(f, "all traffic from {}", self.cidr),
            (p, a, b) if a == b => write!(f, "{p}/{a} from {}", self.cidr),
            (p, a, b) => write!(f, "{p}/{a}-{b} from {}", self.cidr),
        }
    }
}
