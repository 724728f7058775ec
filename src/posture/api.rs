//! The AWS calls posture makes, behind a narrow interface: [`AwsPosture`]
//! is the SDK; tests wrap it to inject failures.
//!
//! Reads return facts ([`super::facts`]); the few writes are those
//! declared settings need. Each service gets a rate limiter below its
//! documented or observed limits, so a sweep never throttles the account's
//! own tools.

use std::future::Future;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, Tag as Ec2Tag, TagSpecification,
};
use aws_sdk_iam::types::{EntityType, StatusType, SummaryKeyType};

use super::desired::{GroupSpec, RuleSpec, TrailSpec};
use super::facts::{
    AccountFacts, AttachedPolicy, GroupFacts, KeyFacts, PasswordPolicy, Permission, TrailFacts,
    UserFacts,
};
use crate::aws::rate::RateLimiter;
use crate::aws::{AwsError, Clients};

/// The tag cloudwarden puts on what it creates; what carries it is its own.
pub const OWNER_TAG: &str = "cloudwarden:managed";

/// Most pages any listing reads: a bound, far above real accounts.
const MAX_PAGES: usize = 1000;

/// AWS, as posture needs it.
pub trait PostureApi: Send + Sync {
    /// The account swept.
    fn account(&self) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// The Regions the account has enabled.
    fn regions(&self) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// The trails created in `region`, with status and selectors.
    fn trails(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Vec<TrailFacts>, AwsError>> + Send;
    /// Whether the trail carries cloudwarden's tag.
    fn trail_owned(
        &self,
        region: &str,
        arn: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
    /// The security groups of `region`, prefix lists resolved.
    fn groups(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Vec<GroupFacts>, AwsError>> + Send;
    /// IAM users: every one, or only the one named.
    fn users(
        &self,
        only: Option<&str>,
    ) -> impl Future<Output = Result<Vec<UserFacts>, AwsError>> + Send;
    /// Root and the password policy.
    fn account_facts(&self) -> impl Future<Output = Result<AccountFacts, AwsError>> + Send;
    /// Creates the trail, tagged as cloudwarden's.
    fn create_trail(
        &self,
        region: &str,
        spec: &TrailSpec,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Sets the trail's settings to `spec`'s.
    fn update_trail(
        &self,
        region: &str,
        spec: &TrailSpec,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Starts the trail logging.
    fn start_logging(
        &self,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Sets the trail to record all management events.
    fn record_management_events(
        &self,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Creates the group, tagged as cloudwarden's, with no rules (AWS adds
    /// an outbound allow-all); returns its id.
    fn create_group(
        &self,
        region: &str,
        spec: &GroupSpec,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// Adds rules to a group.
    fn authorize(
        &self,
        region: &str,
        group_id: &str,
        ingress: bool,
        rules: &[RuleSpec],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Removes rules from a group.
    fn revoke(
        &self,
        region: &str,
        group_id: &str,
        ingress: bool,
        rules: &[RuleSpec],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The SDK.
pub struct AwsPosture {
    clients: Clients,
    iam: RateLimiter,
    ec2: RateLimiter,
    cloudtrail: RateLimiter,
}

impl AwsPosture {
    /// Posture through `clients`.
    pub fn new(clients: Clients) -> AwsPosture {
        AwsPosture {
            clients,
            // IAM's control plane is shared by the whole account: stay well
            // below what it allows, so deployments are never throttled.
            iam: RateLimiter::per_second(10),
            ec2: RateLimiter::per_second(20),
            cloudtrail: RateLimiter::per_second(5),
        }
    }
}

fn seconds(time: Option<&aws_smithy_types::DateTime>) -> Option<i64> {
    time.map(aws_smithy_types::DateTime::secs)
}

/// Whether a policy document (as IAM returns it: URL-encoded JSON, or
/// JSON) allows every action on every resource.
pub fn allows_all(document: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&decoded) else {
        return false;
    };
    let one_or_many = |v: Option<&serde_json::Value>| -> Vec<String> {
        match v {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(list)) => list.clone(),
        Some(one @ serde_json::Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && one_or_many(s.get("Action"))
                .iter()
                .any(|a| a == "*" || a == "*:*")
            && one_or_many(s.get("Resource")).iter().any(|r| r == "*")
    })
}

fn permissions(list: &[IpPermission], prefix_lists: &[(String, Vec<String>)]) -> Vec<Permission> {
    list.iter()
        .map(|p| {
            let mut ranges: Vec<(String, Option<String>)> = p
                .ip_ranges()
                .iter()
                .filter_map(|r| Some((r.cidr_ip()?.to_owned(), r.description().map(str::to_owned))))
                .collect();
            ranges.extend(p.ipv6_ranges().iter().filter_map(|r| {
                Some((
                    r.cidr_ipv6()?.to_owned(),
                    r.description().map(str::to_owned),
                ))
            }));
            let prefix_list_ranges = p
                .prefix_list_ids()
                .iter()
                .filter_map(|id| id.prefix_list_id())
                .flat_map(|id| {
                    prefix_lists
                        .iter()
                        .filter(move |(list, _)| list == id)
                        .flat_map(|(list, cidrs)| cidrs.iter().map(|c| (list.clone(), c.clone())))
                })
                .collect();
            Permission {
                protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                ranges,
                prefix_list_ranges,
                groups: p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect(),
            }
        })
        .collect()
}

pub(crate) fn ip_permissions(rules: &[RuleSpec]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|r| {
            let mut p = IpPermission::builder().ip_protocol(&r.protocol);
            if r.protocol != "-1" {
                p = p.from_port(r.from_port).to_port(r.to_port);
            }
            if r.cidr.contains(':') {
                let mut range = Ipv6Range::builder().cidr_ipv6(&r.cidr);
                if let Some(d) = &r.description {
                    range = range.description(d);
                }
                p = p.ipv6_ranges(range.build());
            } else {
                let mut range = IpRange::builder().cidr_ip(&r.cidr);
                if let Some(d) = &r.description {
                    range = range.description(d);
                }
                p = p.ip_ranges(range.build());
            }
            p.build()
        })
        .collect()
}

impl PostureApi for AwsPosture {
    async fn account(&self) -> Result<String, AwsError> {
        Ok(crate::aws::caller_identity(&self.clients).await?.account)
    }

    async fn regions(&self) -> Result<Vec<String>, AwsError> {
        self.ec2.acquire().await;
        let client = self.clients.ec2(&self.clients.home_region());
        let out = self
            .clients
            .call("ec2", "DescribeRegions", client.describe_regions().send())
            .await?;
        let mut regions: Vec<String> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(str::to_owned))
            .collect();
        regions.sort();
        Ok(regions)
    }

    async fn trails(&self, region: &str) -> Result<Vec<TrailFacts>, AwsError> {
        let client = self.clients.cloudtrail(region);
        self.cloudtrail.acquire().await;
        let listed = self
            .clients
            .call(
                "cloudtrail",
                "DescribeTrails",
                client.describe_trails().include_shadow_trails(false).send(),
            )
            .await?;
        let mut out = Vec::new();
        for t in listed.trail_list() {
            let (Some(name), Some(arn)) = (t.name(), t.trail_arn()) else {
                continue;
            };
            // Only the trails created here: a multi-Region trail shows in
            // every Region, and is read once, in its home.
            if t.home_region().is_some_and(|home| home != region) {
                continue;
            }
            self.cloudtrail.acquire().await;
            let status = self
                .clients
                .call(
                    "cloudtrail",
                    "GetTrailStatus",
                    client.get_trail_status().name(arn).send(),
                )
                .await?;
            self.cloudtrail.acquire().await;
            let selectors = self
                .clients
                .call(
                    "cloudtrail",
                    "GetEventSelectors",
                    client.get_event_selectors().trail_name(arn).send(),
                )
                .await?;
            let (mut read, mut write) = (false, false);
            for s in selectors.event_selectors() {
                if s.include_management_events() != Some(false) {
                    match s.read_write_type().map(|t| t.as_str()) {
                        Some("ReadOnly") => read = true,
                        Some("WriteOnly") => write = true,
                        _ => (read, write) = (true, true),
                    }
                }
            }
            for a in selectors.advanced_event_selectors() {
                let fields = a.field_selectors();
                let management = fields.iter().any(|f| {
                    f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management")
                });
                if !management {
                    continue;
                }
                let read_only = fields.iter().find(|f| f.field() == "readOnly");
                match read_only
                    .and_then(|f| f.equals().first())
                    .map(String::as_str)
                {
                    Some("true") => read = true,
                    Some("false") => write = true,
                    _ => (read, write) = (true, true),
                }
            }
            out.push(TrailFacts {
                name: name.to_owned(),
                arn: arn.to_owned(),
                home_region: t.home_region().unwrap_or(region).to_owned(),
                multi_region: t.is_multi_region_trail().unwrap_or(false),
                global_events: t.include_global_service_events().unwrap_or(false),
                log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
                kms_key_id: t.kms_key_id().map(str::to_owned),
                log_group_arn: t.cloud_watch_logs_log_group_arn().map(str::to_owned),
                bucket: t.s3_bucket_name().map(str::to_owned),
                logging: Some(status.is_logging().unwrap_or(false)),
                management_read: read,
                management_write: write,
            });
        }
        Ok(out)
    }

    async fn trail_owned(&self, region: &str, arn: &str) -> Result<bool, AwsError> {
        self.cloudtrail.acquire().await;
        let client = self.clients.cloudtrail(region);
        let out = self
            .clients
            .call(
                "cloudtrail",
                "ListTags",
                client.list_tags().resource_id_list(arn).send(),
            )
            .await?;
        Ok(out
            .resource_tag_list()
            .iter()
            .flat_map(|r| r.tags_list())
            .any(|t| t.key() == OWNER_TAG))
    }

    async fn groups(&self, region: &str) -> Result<Vec<GroupFacts>, AwsError> {
        let client = self.clients.ec2(region);
        let mut raw = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            self.ec2.acquire().await;
            let page = self
                .clients
                .call(
                    "ec2",
                    "DescribeSecurityGroups",
                    client
                        .describe_security_groups()
                        .set_next_token(token)
                        .send(),
                )
                .await?;
            raw.extend(page.security_groups().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        // Prefix lists named by any rule, resolved once each.
        let mut lists: Vec<String> = raw
            .iter()
            .flat_map(|g| g.ip_permissions().iter())
            .flat_map(|p| p.prefix_list_ids().iter())
            .filter_map(|p| p.prefix_list_id().map(str::to_owned))
            .collect();
        lists.sort();
        lists.dedup();
        let mut resolved = Vec::new();
        for list in lists {
            self.ec2.acquire().await;
            let entries = self
                .clients
                .call(
                    "ec2",
                    "GetManagedPrefixListEntries",
                    client
                        .get_managed_prefix_list_entries()
                        .prefix_list_id(&list)
                        .send(),
                )
                .await;
            match entries {
                Ok(out) => {
                    let cidrs = out
                        .entries()
                        .iter()
                        .filter_map(|e| e.cidr().map(str::to_owned))
                        .collect();
                    resolved.push((list, cidrs));
                }
                // AWS-managed lists (S3, CloudFront) cannot always be read;
                // they hold AWS's ranges, never the whole Internet.
                Err(err) if !err.class.is_retriable() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(raw
            .iter()
            .map(|g| GroupFacts {
                id: g.group_id().unwrap_or_default().to_owned(),
                name: g.group_name().unwrap_or_default().to_owned(),
                vpc_id: g.vpc_id().map(str::to_owned),
                owner: g.owner_id().unwrap_or_default().to_owned(),
                region: region.to_owned(),
                ingress: permissions(g.ip_permissions(), &resolved),
                egress: permissions(g.ip_permissions_egress(), &resolved),
                tags: g
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
            })
            .collect())
    }

    async fn users(&self, only: Option<&str>) -> Result<Vec<UserFacts>, AwsError> {
        let client = self.clients.iam();
        // One listing gives every user with its policies, and the
        // account's own policies with their documents.
        let mut details = Vec::new();
        let mut own_policies: Vec<(String, bool)> = Vec::new();
        let mut marker = None;
        for _ in 0..MAX_PAGES {
            self.iam.acquire().await;
            let page = self
                .clients
                .call(
                    "iam",
                    "GetAccountAuthorizationDetails",
                    client
                        .get_account_authorization_details()
                        .filter(EntityType::User)
                        .filter(EntityType::LocalManagedPolicy)
                        .set_marker(marker)
                        .send(),
                )
                .await?;
            details.extend(page.user_detail_list().iter().cloned());
            for p in page.policies() {
                let all = p
                    .policy_version_list()
                    .iter()
                    .filter(|v| v.is_default_version())
                    .any(|v| v.document().is_some_and(allows_all));
                own_policies.push((p.arn().unwrap_or_default().to_owned(), all));
            }
            marker = page.marker().map(str::to_owned);
            if !page.is_truncated() || marker.is_none() {
                break;
            }
        }
        let mut out = Vec::new();
        for d in details {
            let name = d.user_name().unwrap_or_default().to_owned();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let mut user = UserFacts {
                arn: d.arn().unwrap_or_default().to_owned(),
                attached: d
                    .attached_managed_policies()
                    .iter()
                    .map(|p| {
                        let arn = p.policy_arn().unwrap_or_default().to_owned();
                        AttachedPolicy {
                            name: p.policy_name().unwrap_or_default().to_owned(),
                            allows_all: own_policies.iter().any(|(a, all)| *a == arn && *all),
                            arn,
                        }
                    })
                    .collect(),
                inline: d
                    .user_policy_list()
                    .iter()
                    .map(|p| {
                        (
                            p.policy_name().unwrap_or_default().to_owned(),
                            p.policy_document().is_some_and(allows_all),
                        )
                    })
                    .collect(),
                name: name.clone(),
                ..UserFacts::default()
            };
            self.iam.acquire().await;
            let profile = self
                .clients
                .call(
                    "iam",
                    "GetLoginProfile",
                    client.get_login_profile().user_name(&name).send(),
                )
                .await;
            user.console = match profile {
                Ok(_) => true,
                Err(err) if err.code == "NoSuchEntity" => false,
                Err(err) => return Err(err),
            };
            self.iam.acquire().await;
            let mfa = self
                .clients
                .call(
                    "iam",
                    "ListMFADevices",
                    client.list_mfa_devices().user_name(&name).send(),
                )
                .await?;
            user.mfa = !mfa.mfa_devices().is_empty();
            self.iam.acquire().await;
            let keys = self
                .clients
                .call(
                    "iam",
                    "ListAccessKeys",
                    client.list_access_keys().user_name(&name).send(),
                )
                .await?;
            for k in keys.access_key_metadata() {
                let id = k.access_key_id().unwrap_or_default().to_owned();
                let active = k.status() == Some(&StatusType::Active);
                let last_used = if active {
                    self.iam.acquire().await;
                    let used = self
                        .clients
                        .call(
                            "iam",
                            "GetAccessKeyLastUsed",
                            client.get_access_key_last_used().access_key_id(&id).send(),
                        )
                        .await?;
                    seconds(used.access_key_last_used().and_then(|u| u.last_used_date()))
                } else {
                    None
                };
                user.keys.push(KeyFacts {
                    id,
                    active,
                    created: seconds(k.create_date()).unwrap_or(0),
                    last_used,
                });
            }
            out.push(user);
        }
        Ok(out)
    }

    async fn account_facts(&self) -> Result<AccountFacts, AwsError> {
        let client = self.clients.iam();
        self.iam.acquire().await;
        let summary = self
            .clients
            .call(
                "iam",
                "GetAccountSummary",
                client.get_account_summary().send(),
            )
            .await?;
        let value = |key: SummaryKeyType| {
            summary
                .summary_map()
                .and_then(|m| m.get(&key).copied())
                .unwrap_or(0)
        };
        self.iam.acquire().await;
        let policy = self
            .clients
            .call(
                "iam",
                "GetAccountPasswordPolicy",
                client.get_account_password_policy().send(),
            )
            .await;
        let password_policy = match policy {
            Ok(out) => out.password_policy().map(|p| PasswordPolicy {
                min_length: u32::try_from(p.minimum_password_length().unwrap_or(0)).unwrap_or(0),
                reuse_prevention: u32::try_from(p.password_reuse_prevention().unwrap_or(0))
                    .unwrap_or(0),
            }),
            Err(err) if err.code == "NoSuchEntity" => None,
            Err(err) => return Err(err),
        };
        Ok(AccountFacts {
            root_access_keys: value(SummaryKeyType::AccountAccessKeysPresent) > 0,
            root_mfa: value(SummaryKeyType::AccountMfaEnabled) > 0,
            password_policy,
        })
    }

    async fn create_trail(&self, region: &str, spec: &TrailSpec) -> Result<(), AwsError> {
        self.cloudtrail.acquire().await;
        let client = self.clients.cloudtrail(region);
        let call = client
            .create_trail()
            .name(&spec.name)
            .s3_bucket_name(&spec.bucket)
            .is_multi_region_trail(spec.multi_region)
            .include_global_service_events(spec.include_global_service_events)
            .enable_log_file_validation(spec.log_file_validation)
            .set_cloud_watch_logs_log_group_arn(spec.log_group_arn.clone())
            .set_cloud_watch_logs_role_arn(spec.role_arn.clone())
            .set_kms_key_id(spec.kms_key_id.clone())
            .tags_list(
                aws_sdk_cloudtrail::types::Tag::builder()
                    .key(OWNER_TAG)
                    .value("true")
                    .build()
                    .map_err(|e| construction("cloudtrail", "CreateTrail", e.to_string()))?,
            )
            .send();
        self.clients.call("cloudtrail", "CreateTrail", call).await?;
        Ok(())
    }

    async fn update_trail(&self, region: &str, spec: &TrailSpec) -> Result<(), AwsError> {
        self.cloudtrail.acquire().await;
        let client = self.clients.cloudtrail(region);
        let call = client
            .update_trail()
            .name(&spec.name)
            .s3_bucket_name(&spec.bucket)
            .is_multi_region_trail(spec.multi_region)
            .include_global_service_events(spec.include_global_service_events)
            .enable_log_file_validation(spec.log_file_validation)
            .set_cloud_watch_logs_log_group_arn(spec.log_group_arn.clone())
            .set_cloud_watch_logs_role_arn(spec.role_arn.clone())
            .set_kms_key_id(spec.kms_key_id.clone())
            .send();
        self.clients.call("cloudtrail", "UpdateTrail", call).await?;
        Ok(())
    }

    async fn start_logging(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.cloudtrail.acquire().await;
        let client = self.clients.cloudtrail(region);
        self.clients
            .call(
                "cloudtrail",
                "StartLogging",
                client.start_logging().name(name).send(),
            )
            .await?;
        Ok(())
    }

    async fn record_management_events(&self, region: &str, name: &str) -> Result<(), AwsError> {
        self.cloudtrail.acquire().await;
        let client = self.clients.cloudtrail(region);
        let selector = aws_sdk_cloudtrail::types::EventSelector::builder()
            .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
            .include_management_events(true)
            .build();
        self.clients
            .call(
                "cloudtrail",
                "PutEventSelectors",
                client
                    .put_event_selectors()
                    .trail_name(name)
                    .event_selectors(selector)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn create_group(&self, region: &str, spec: &GroupSpec) -> Result<String, AwsError> {
        self.ec2.acquire().await;
        let client = self.clients.ec2(region);
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::SecurityGroup)
            .tags(Ec2Tag::builder().key(OWNER_TAG).value("true").build())
            .tags(Ec2Tag::builder().key("Name").value(&spec.name).build())
            .build();
        let out = self
            .clients
            .call(
                "ec2",
                "CreateSecurityGroup",
                client
                    .create_security_group()
                    .group_name(&spec.name)
                    .description(&spec.description)
                    .vpc_id(&spec.vpc)
                    .tag_specifications(tags)
                    .send(),
            )
            .await?;
        Ok(out.group_id().unwrap_or_default().to_owned())
    }

    async fn authorize(
        &self,
        region: &str,
        group_id: &str,
        ingress: bool,
        rules: &[RuleSpec],
    ) -> Result<(), AwsError> {
        self.ec2.acquire().await;
        let client = self.clients.ec2(region);
        let permissions = ip_permissions(rules);
        if ingress {
            let call = client
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send();
            self.clients
                .call("ec2", "AuthorizeSecurityGroupIngress", call)
                .await?;
        } else {
            let call = client
                .authorize_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send();
            self.clients
                .call("ec2", "AuthorizeSecurityGroupEgress", call)
                .await?;
        }
        Ok(())
    }

    async fn revoke(
        &self,
        region: &str,
        group_id: &str,
        ingress: bool,
        rules: &[RuleSpec],
    ) -> Result<(), AwsError> {
        self.ec2.acquire().await;
        let client = self.clients.ec2(region);
        let permissions = ip_permissions(rules);
        if ingress {
            let call = client
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send();
            self.clients
                .call("ec2", "RevokeSecurityGroupIngress", call)
                .await?;
        } else {
            let call = client
                .revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send();
            self.clients
                .call("ec2", "RevokeSecurityGroupEgress", call)
                .await?;
        }
        Ok(())
    }
}

fn construction(service: &'static str, operation: &'static str, message: String) -> AwsError {
    AwsError {
        service,
        operation,
        code: "construction".to_owned(),
        message,
        class: crate::aws::retry::ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::allows_all;

    #[test]
    fn only_allow_every_action_on_every_resource_counts_as_all() {
        assert!(allows_all(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        ));
        assert!(allows_all(
            r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject","*"],"Resource":["*"]}}"#
        ));
        // As IAM returns documents: URL-encoded.
        assert!(allows_all(
            "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"
        ));
        assert!(!allows_all(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        ));
        assert!(!allows_all(
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#
        ));
        assert!(!allows_all(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/*"}]}"#
        ));
        assert!(!allows_all("not json"));
    }
}
