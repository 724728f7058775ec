//! The account of the mission's scripts in moto (a VPC, security groups,
//! IAM users, a trail, an EventBridge queue), for the posture and response
//! tests, and the EventBridge events about changes to it.

use aws_sdk_ec2::types::{IpPermission, IpRange};
use serde_json::{Value, json};

use super::MOTO_ACCOUNT;
use super::moto::Moto;

/// The account of the mission's scripts, in moto.
pub struct Account {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub trail: aws_sdk_cloudtrail::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub vpc: String,
}

impl Account {
    pub async fn new(moto: &Moto) -> Account {
        let sdk = moto.sdk_config().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0]
            .vpc_id()
            .unwrap()
            .to_owned();
        Account {
            ec2,
            iam: aws_sdk_iam::Client::new(&sdk),
            trail: aws_sdk_cloudtrail::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            vpc,
        }
    }

    /// `create_security_group` + `add_inbound_rule` for each port, open to the world.
    pub async fn group(&self, name: &str, ports: &[i32]) -> String {
        let id = self
            .ec2
            .create_security_group()
            .group_name(name)
            .description("web servers")
            .vpc_id(&self.vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_owned();
        for port in ports {
            self.open(&id, *port).await;
        }
        id
    }

    pub fn world(port: i32) -> IpPermission {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    }

    pub async fn open(&self, group: &str, port: i32) {
        self.ec2
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(Self::world(port))
            .send()
            .await
            .unwrap();
    }

    pub async fn close(&self, group: &str, port: i32) {
        self.ec2
            .revoke_security_group_ingress()
            .group_id(group)
            .ip_permissions(Self::world(port))
            .send()
            .await
            .unwrap();
    }

    /// Ports the group opens to the world.
    pub async fn world_ports(&self, group: &str) -> Vec<i32> {
        let out = self
            .ec2
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .unwrap();
        let mut ports: Vec<i32> = out.security_groups()[0]
            .ip_permissions()
            .iter()
            .filter(|p| {
                p.ip_ranges()
                    .iter()
                    .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
            })
            .filter_map(|p| p.from_port())
            .collect();
        ports.sort();
        ports
    }

    /// `create_user` + `attach_user_policy(AmazonS3FullAccess)`.
    pub async fn john_doe(&self) {
        self.iam
            .create_user()
            .user_name("JohnDoe")
            .send()
            .await
            .unwrap();
        self.iam
            .attach_user_policy()
            .user_name("JohnDoe")
            .policy_arn("arn:aws:iam::aws:policy/AmazonS3FullAccess")
            .send()
            .await
            .unwrap();
    }

    /// `create_trail` (multi-Region, global events), not started.
    pub async fn my_trail(&self) {
        self.s3
            .create_bucket()
            .bucket("mission-trail")
            .send()
            .await
            .unwrap();
        self.trail
            .create_trail()
            .name("MyTrail")
            .s3_bucket_name("mission-trail")
            .is_multi_region_trail(true)
            .include_global_service_events(true)
            .enable_log_file_validation(true)
            .send()
            .await
            .unwrap();
        self.trail
            .put_event_selectors()
            .trail_name("MyTrail")
            .event_selectors(
                aws_sdk_cloudtrail::types::EventSelector::builder()
                    .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
                    .include_management_events(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn logging(&self) -> bool {
        self.trail
            .get_trail_status()
            .name("MyTrail")
            .send()
            .await
            .unwrap()
            .is_logging()
            .unwrap_or(false)
    }

    pub async fn queue(&self) -> String {
        self.queue_named("cloudtrail-events").await
    }

    /// An EventBridge target queue of this name.
    pub async fn queue_named(&self, name: &str) -> String {
        self.sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned()
    }

    /// What EventBridge puts on the queue for a CloudTrail event.
    pub async fn event(&self, queue: &str, source: &str, name: &str, request: Value) {
        self.event_with(queue, source, name, request, json!({}))
            .await;
    }

    /// Like `event`, with more fields of the record (`userIdentity`,
    /// `responseElements`, `eventTime`) replaced by those in `extra`.
    pub async fn event_with(
        &self,
        queue: &str,
        source: &str,
        name: &str,
        request: Value,
        extra: Value,
    ) {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut detail = json!({
            "eventVersion": "1.09", "eventID": format!("{name}-{}", fastrand::u64(..)),
            "eventTime": now, "eventSource": source, "eventName": name,
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.17.0", "requestParameters": request,
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{MOTO_ACCOUNT}:user/alice"),
                             "accountId": MOTO_ACCOUNT, "userName": "alice"},
            "eventType": "AwsApiCall", "recipientAccountId": MOTO_ACCOUNT,
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            detail[key] = value.clone();
        }
        let envelope = json!({"version": "0", "id": format!("env-{}", fastrand::u64(..)),
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "account": MOTO_ACCOUNT,
            "time": now, "region": "us-east-1", "resources": [], "detail": detail});
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(envelope.to_string())
            .send()
            .await
            .unwrap();
    }
}
