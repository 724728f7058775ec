//! Event sources: where records come from, each resuming where it stopped.
//!
//! - [`cloudtrail_lookup`]: CloudTrail LookupEvents, Region by Region.
//! - [`cloudwatch_logs`]: FilterLogEvents on log groups (CloudTrail delivered
//!   to CloudWatch Logs, application logs, VPC Flow Logs).
//! - [`s3_sqs`]: CloudTrail files in S3, announced on SQS.
//! - [`eventbridge_sqs`]: CloudTrail events from EventBridge rules, on SQS.
//!
//! Every source hands records to detection through the bounded channel, with
//! an acknowledgement token per record, and moves its checkpoint (or deletes
//! its SQS message) only once every record of a page is committed. AWS
//! access goes through the narrow traits in [`api`]; [`faults`] wraps them
//! to inject failures in tests; [`context`] is what every source shares.

pub mod api;
pub mod cloudtrail_lookup;
pub mod cloudwatch_logs;
pub mod context;
pub mod eventbridge_sqs;
pub mod faults;
pub mod queue;
pub mod reread;
pub mod s3_sqs;

use std::sync::Arc;

pub use context::{SourceContext, SourceError};

use crate::config::{Config, SourceConfig, SourceKind};

/// Starts the source described by `config` on `ctx`, reading through `api`.
/// `home` is the Region the AWS SDK resolved, where a source that names
/// none reads.
pub async fn run<A>(
    ctx: SourceContext,
    api: Arc<A>,
    source: SourceConfig,
    config: Arc<Config>,
    home: String,
) where
    A: api::CloudTrailApi + api::LogsApi + api::QueueApi + api::ObjectApi,
{
    let interval = source
        .interval
        .unwrap_or(std::time::Duration::from_secs(60));
    let logsource = source.kind.logsource();
    match source.kind {
        SourceKind::CloudTrailLookup {
            regions,
            lookback,
            global_events,
        } => {
            let regions = if regions.is_empty() {
                vec![home]
            } else {
                regions
            };
            let settings = cloudtrail_lookup::Settings {
                regions,
                lookback,
                interval,
                global_events,
            };
            cloudtrail_lookup::run(ctx, api, settings).await;
        }
        SourceKind::CloudWatchLogs {
            log_group,
            filter_pattern,
            stream_prefix,
            format,
            lookback,
            region,
            logsource: _,
        } => {
            let settings = cloudwatch_logs::Settings {
                region: region.unwrap_or(home),
                groups: log_group,
                filter_pattern,
                stream_prefix,
                format,
                logsource,
                lookback,
                interval,
            };
            cloudwatch_logs::run(ctx, api, settings).await;
        }
        SourceKind::S3Sqs {
            queue_url,
            max_attempts,
            visibility_timeout,
            buckets,
            bucket_owner,
            max_object_bytes,
        } => {
            let settings = s3_sqs::Settings {
                queue: queue::QueueSettings {
                    queue_url,
                    max_attempts,
                    visibility: visibility_timeout,
                },
                region: home,
                max_record_bytes: config.detection.max_event_bytes,
                max_object_bytes,
                buckets,
                bucket_owner,
            };
            s3_sqs::run(ctx, api, settings).await;
        }
        SourceKind::EventBridgeSqs {
            queue_url,
            max_attempts,
            visibility_timeout,
            accounts,
        } => {
            let settings = queue::QueueSettings {
                queue_url,
                max_attempts,
                visibility: visibility_timeout,
            };
            eventbridge_sqs::run(ctx, api, settings, accounts).await;
        }
    }
}
