//! Every Prometheus metric cloudwarden exports, registered in one place.
//!
//! Names follow Prometheus conventions: the `cloudwarden_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters. Label values are bounded
//! sets (source names, outcomes, AWS operations and error codes), never
//! event content.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The metrics of the state store.
#[derive(Clone)]
pub struct StateMetrics {
    /// Committed write transactions, by outcome (`ok`, `error`).
    pub commits: IntCounterVec,
    /// How long write transactions take, including the fsync.
    pub commit_seconds: Histogram,
    /// Records removed because they expired.
    pub purged: IntCounter,
}

/// The metrics of the channels between pipeline stages.
#[derive(Clone)]
pub struct PipelineMetrics {
    /// Events that entered the pipeline, by source.
    pub events_in: IntCounterVec,
    /// Sends that found the channel full and waited: back-pressure on sources.
    pub channel_full: IntCounterVec,
    /// Events waiting in the channel to detection.
    pub queued: IntGauge,
    /// Bytes of record text waiting in the channel to detection.
    pub queued_bytes: IntGauge,
    /// Events detection has finished with, by source.
    pub events_processed: IntCounterVec,
}

impl std::fmt::Debug for PipelineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineMetrics")
    }
}

/// The metrics of detection.
#[derive(Clone)]
pub struct DetectionMetrics {
    /// Records rejected, by source and reason.
    pub rejected: IntCounterVec,
    /// Records dropped because their eventID was seen within the dedup window, by source.
    pub duplicates: IntCounterVec,
    /// Alerts raised, by rule id and level.
    pub alerts: IntCounterVec,
    /// Rules loaded and compiled.
    pub rules_loaded: IntGauge,
    /// Rules that failed to load.
    pub rules_failed: IntGauge,
    /// 1 per rule that can raise alerts, labelled with its id, title and
    /// level, to join titles onto other metrics by `rule`.
    pub rule_info: IntGaugeVec,
    /// The newest event time committed from each source, Unix seconds
    /// (never past the clock), set on every commit.
    pub newest_event: IntGaugeVec,
    /// Correlation groups held.
    pub correlation_groups: IntGauge,
    /// Correlation state evicted at a bound, by what (`groups`, `entries`).
    pub correlation_evictions: IntCounterVec,
    /// Events too late to correlate.
    pub correlation_late: IntCounter,
    /// Anomaly groups held.
    pub anomaly_groups: IntGauge,
    /// Anomaly state evicted at a bound, by which (`groups`, `values`).
    pub anomaly_evictions: IntCounterVec,
    /// Matches an anomaly rule could not judge: a group-by or watched field was missing.
    pub anomaly_missing_field: IntCounter,
    /// Events dated beyond the clock plus detection.max_future_skew.
    pub events_future: IntCounter,
    /// eventIDs remembered for dedup.
    pub dedup_ids: IntGauge,
    /// eventIDs forgotten before their window ended, at the capacity bound.
    pub dedup_evictions: IntCounter,
    /// Time to evaluate and commit one batch of events.
    pub batch_seconds: Histogram,
    /// Batch commits that failed and were retried.
    pub commit_retries: IntCounter,
}

/// The metrics of alarm reconciliation.
#[derive(Clone)]
pub struct AlarmMetrics {
    /// Metric filters and alarms declared and found in place.
    pub managed: IntGauge,
    /// Differences found, by kind (`created`, `repaired`, `drift`).
    pub changes: IntCounterVec,
    /// Changes that failed.
    pub failures: IntCounter,
    /// Wiring problems and conflicts found in the last pass.
    pub findings: IntGauge,
    /// When a pass last completed, in Unix seconds.
    pub last_success: IntGauge,
}

/// The metrics of posture checks.
#[derive(Clone)]
pub struct PostureMetrics {
    /// Open findings, by check and severity (bounded: the checks are a fixed table).
    pub findings: IntGaugeVec,
    /// Findings opened and resolved, by check and status.
    pub changes: IntCounterVec,
    /// Sweeps, by kind (`full`, `recheck`) and outcome (`ok`, `partial`).
    pub sweeps: IntCounterVec,
    /// How long sweeps take.
    pub sweep_seconds: Histogram,
    /// When a full sweep last completed without a failed call, Unix seconds.
    pub last_success: IntGauge,
    /// Sweep parts that failed, by service and AWS error code.
    pub failures: IntCounterVec,
    /// Events that touched a checked resource and were dropped because the
    /// re-check queue was full (the next sweep sees the change).
    pub rechecks_dropped: IntCounter,
    /// Declared settings put in place, by kind and outcome.
    pub applied: IntCounterVec,
}

/// The metrics of response actions.
#[derive(Clone)]
pub struct ResponseMetrics {
    /// Outcomes, by action and outcome (`done`, `already`, `dry_run`, `refused`, `failed`).
    pub actions: IntCounterVec,
    /// Refusals, by guard (`protected`, `rate_limit`, `event_age`, `own_principal`).
    pub refused: IntCounterVec,
    /// Intents waiting to be carried out.
    pub pending: IntGauge,
}

/// The metrics of alert delivery.
#[derive(Clone)]
pub struct AlertMetrics {
    /// Alerts waiting in the outbox.
    pub outbox_depth: IntGauge,
    /// Age of the oldest alert in the outbox, in seconds.
    pub outbox_oldest_seconds: IntGauge,
    /// Alerts a sink accepted, by sink.
    pub delivered: IntCounterVec,
    /// Delivery attempts that failed, by sink.
    pub failed: IntCounterVec,
    /// Alerts a sink refused for good (after retries), by sink.
    pub undeliverable: IntCounterVec,
    /// Alerts that waited for a sink's rate limit, by sink.
    pub rate_limited: IntCounterVec,
    /// Alerts dropped by a suppression, by its reason.
    pub suppressed: IntCounterVec,
    /// Repeats held back within a dedup window, by rule id.
    pub repeats: IntCounterVec,
    /// Summaries sent for repeats when their window closed, by rule id.
    pub summaries: IntCounterVec,
    /// Dedup windows open.
    pub windows: IntGauge,
    /// Windows closed before their time at the `alerts.max_windows` bound.
    pub windows_closed_early: IntCounter,
}

/// The metrics of sources.
#[derive(Clone)]
pub struct SourceMetrics {
    /// Whether each configured source has completed a poll (1) or not (0).
    pub ready: IntGaugeVec,
    /// Records read, by source.
    pub read: IntCounterVec,
    /// Polls (or queue receives), by source and outcome.
    pub polls: IntCounterVec,
    /// Now minus the newest event time read, by source.
    pub lag_seconds: IntGaugeVec,
    /// When a poll last succeeded, Unix seconds, by source.
    pub last_success: IntGaugeVec,
    /// When a source last committed progress (moved a checkpoint or
    /// deleted a handled message), Unix seconds, by source and part.
    pub checkpoint_time: IntGaugeVec,
    /// Queue messages set aside after failing too often, by source.
    pub set_aside: IntCounterVec,
    /// Set-aside messages dropped, oldest first, to stay within the store's bounds.
    pub set_aside_dropped: IntCounterVec,
    /// Objects or messages skipped on purpose (test events, digests), by source and why.
    pub skipped: IntCounterVec,
    /// Queue messages not handled this time, by source and outcome:
    /// `transient` (retried, never counted), `interrupted` (shutdown, not
    /// counted), `permanent` and `crash` (each counts towards `max_attempts`).
    pub message_failures: IntCounterVec,
    /// Calls that waited for a client-side rate limit, by operation.
    pub rate_limited: IntCounterVec,
    /// How far behind its last committed end a polled source re-reads, by source and part.
    pub reread_seconds: IntGaugeVec,
    /// The largest lateness a polled source measured recently, by source and part.
    pub lateness_seconds: IntGaugeVec,
    /// The share of its request budget a polled source's last poll needed, by source and Region.
    pub request_budget_percent: IntGaugeVec,
}

/// The metrics of AWS calls.
#[derive(Clone)]
pub struct AwsMetrics {
    /// Calls made, by service and operation.
    pub calls: IntCounterVec,
    /// Calls that failed, by service, operation and AWS error code.
    pub errors: IntCounterVec,
}

/// All of cloudwarden's metrics and the registry that exports them. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The state store.
    pub state: StateMetrics,
    /// The pipeline's channels.
    pub pipeline: PipelineMetrics,
    /// Detection.
    pub detection: DetectionMetrics,
    /// Alert delivery.
    pub alerts: AlertMetrics,
    /// Alarm reconciliation.
    pub alarms: AlarmMetrics,
    /// Posture.
    pub posture: PostureMetrics,
    /// Response.
    pub response: ResponseMetrics,
    /// Sources.
    pub sources: SourceMetrics,
    /// AWS calls.
    pub aws: AwsMetrics,
    /// 1 when `/readyz` answers 200.
    pub ready: IntGauge,
    /// Configuration reloads (SIGHUP), by result.
    pub reloads: IntCounterVec,
    /// When the configuration was last reloaded successfully, Unix seconds.
    pub last_reload: IntGauge,
}

impl Metrics {
    /// Creates the series of a source at 0, so that a dashboard shows 0
    /// rather than nothing and `increase()` sees the first event: a series
    /// that appears at 1 hides it.
    pub fn init_source(&self, name: &str, queue: bool) {
        let s = &self.sources;
        s.read.with_label_values(&[name]);
        for outcome in ["ok", "error"] {
            s.polls.with_label_values(&[name, outcome]);
        }
        s.set_aside.with_label_values(&[name]);
        s.set_aside_dropped.with_label_values(&[name]);
        if queue {
            for outcome in ["transient", "interrupted", "permanent", "crash"] {
                s.message_failures.with_label_values(&[name, outcome]);
            }
        }
        let d = &self.detection;
        d.duplicates.with_label_values(&[name]);
        for reason in crate::detection::event::Reason::ALL {
            d.rejected.with_label_values(&[name, reason.as_str()]);
        }
        let p = &self.pipeline;
        p.events_in.with_label_values(&[name]);
        p.channel_full.with_label_values(&[name]);
        p.events_processed.with_label_values(&[name]);
    }

    /// Creates the series of an alert sink at 0 (see [`Metrics::init_source`]).
    pub fn init_sink(&self, sink: &str) {
        let a = &self.alerts;
        for counter in [&a.delivered, &a.failed, &a.undeliverable, &a.rate_limited] {
            counter.with_label_values(&[sink]);
        }
    }

    /// Registers every metric, with `cloudwarden_build_info` and process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let build_info = r.gauge_vec(
            "cloudwarden_build_info",
            "Always 1; the labels say which build is running.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // The standard process_* metrics (process_start_time_seconds among
        // them), under the names every dashboard knows.
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let reloads = r.counter_vec(
            "cloudwarden_config_reloads_total",
            "Configuration reloads asked for with SIGHUP, by result (success, failure).",
            &["result"],
        )?;
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let last_reload = r.gauge(
            "cloudwarden_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (at start or by a reload), Unix seconds.",
        )?;
        last_reload.set(unix_now());
        let metrics = Metrics {
            state: StateMetrics {
                commits: r.counter_vec(
                    "cloudwarden_state_commits_total",
                    "State store write transactions, by outcome.",
                    &["outcome"],
                )?,
                commit_seconds: r.histogram(
                    "cloudwarden_state_commit_duration_seconds",
                    "Time to commit a state store write transaction, fsync included.",
                )?,
                purged: r.counter(
                    "cloudwarden_state_expired_records_purged_total",
                    "State records removed because they expired.",
                )?,
            },
            pipeline: PipelineMetrics {
                events_in: r.counter_vec(
                    "cloudwarden_pipeline_events_total",
                    "Events that entered the pipeline, by source.",
                    &["source"],
                )?,
                channel_full: r.counter_vec(
                    "cloudwarden_pipeline_channel_full_total",
                    "Sends that found the channel to detection full and waited, by source.",
                    &["source"],
                )?,
                queued: r.gauge(
                    "cloudwarden_pipeline_queued_events",
                    "Events waiting in the channel to detection.",
                )?,
                queued_bytes: r.gauge(
                    "cloudwarden_pipeline_queued_bytes",
                    "Bytes of record text waiting in the channel to detection (at most pipeline.channel_bytes).",
                )?,
                events_processed: r.counter_vec(
                    "cloudwarden_events_processed_total",
                    "Events detection has finished with, by source.",
                    &["source"],
                )?,
            },
            detection: DetectionMetrics {
                rejected: r.counter_vec(
                    "cloudwarden_events_rejected_total",
                    "Records rejected before detection, by source and reason.",
                    &["source", "reason"],
                )?,
                duplicates: r.counter_vec(
                    "cloudwarden_events_duplicate_total",
                    "Records dropped because their eventID was seen within the dedup window, by source.",
                    &["source"],
                )?,
                alerts: r.counter_vec(
                    "cloudwarden_alerts_raised_total",
                    "Alerts raised by detection, by rule id and level.",
                    &["rule", "level"],
                )?,
                rules_loaded: r.gauge("cloudwarden_rules_loaded", "Detection and correlation rules loaded.")?,
                rules_failed: r.gauge("cloudwarden_rules_failed", "Rules that failed to load (see the log).")?,
                newest_event: r.gauge_vec(
                    "cloudwarden_source_newest_event_timestamp_seconds",
                    "The newest event time detection committed from each source, Unix seconds (a time past the clock counts as now); set on every commit, whatever the source's kind.",
                    &["source"],
                )?,
                rule_info: r.gauge_vec(
                    "cloudwarden_rule_info",
                    "Always 1 per loaded rule that raises alerts; its labels give the rule's title and level, to join onto metrics labelled by rule.",
                    &["rule", "title", "level"],
                )?,
                correlation_groups: r.gauge(
                    "cloudwarden_correlation_groups",
                    "Correlation groups (for example one per principal) held in memory.",
                )?,
                correlation_evictions: r.counter_vec(
                    "cloudwarden_correlation_evictions_total",
                    "Correlation state evicted at its bound: whole groups (max_groups) or events of a group (max_group_entries).",
                    &["reason"],
                )?,
                anomaly_groups: r.gauge(
                    "cloudwarden_anomaly_groups",
                    "Anomaly groups (for example one per principal and rule) held in memory.",
                )?,
                anomaly_evictions: r.counter_vec(
                    "cloudwarden_anomaly_evictions_total",
                    "Anomaly state evicted at its bound: whole groups (detection.anomaly_max_groups) or values a first_seen group knew (detection.anomaly_max_values); an evicted value alerts again when next used.",
                    &["bound"],
                )?,
                anomaly_missing_field: r.counter(
                    "cloudwarden_anomaly_missing_field_total",
                    "Events an anomaly rule's base rules matched but that lacked a group-by or watched field (or whose source address is not an IP), not judged.",
                )?,
                correlation_late: r.counter(
                    "cloudwarden_correlation_late_events_total",
                    "Events older than the newest event time minus detection.late_allowance, not correlated.",
                )?,
                events_future: r.counter(
                    "cloudwarden_events_future_total",
                    "Events dated further ahead of the clock than detection.max_future_skew; they move event time only that far.",
                )?,
                dedup_ids: r.gauge("cloudwarden_dedup_ids", "eventIDs remembered to drop duplicates.")?,
                dedup_evictions: r.counter(
                    "cloudwarden_dedup_evictions_total",
                    "eventIDs forgotten before their dedup window ended, at pipeline.dedup_capacity.",
                )?,
                batch_seconds: r.histogram(
                    "cloudwarden_detection_batch_duration_seconds",
                    "Time to evaluate a batch of events and commit its outcome.",
                )?,
                commit_retries: r.counter(
                    "cloudwarden_detection_commit_retries_total",
                    "Detection commits that failed and were retried.",
                )?,
            },
            alarms: AlarmMetrics {
                managed: r.gauge(
                    "cloudwarden_alarms_managed",
                    "Metric filters and alarms declared and in their declared state after the last pass.",
                )?,
                changes: r.counter_vec(
                    "cloudwarden_alarm_changes_total",
                    "Metric filters and alarms put, by kind: created, repaired (after a configuration change) or drift (changed or deleted outside cloudwarden).",
                    &["kind"],
                )?,
                failures: r.counter(
                    "cloudwarden_alarm_failures_total",
                    "Reconciliation calls that failed; the next pass tries again.",
                )?,
                findings: r.gauge(
                    "cloudwarden_alarm_findings",
                    "Wiring problems and conflicts found by the last pass (each logged as a warning).",
                )?,
                last_success: r.gauge(
                    "cloudwarden_alarms_last_success_timestamp_seconds",
                    "When a reconciliation pass last completed, in Unix seconds.",
                )?,
            },
            posture: PostureMetrics {
                findings: r.gauge_vec(
                    "cloudwarden_posture_findings",
                    "Open posture findings, by check and severity.",
                    &["check", "severity"],
                )?,
                changes: r.counter_vec(
                    "cloudwarden_posture_finding_changes_total",
                    "Posture findings opened and resolved, by check and status.",
                    &["check", "status"],
                )?,
                sweeps: r.counter_vec(
                    "cloudwarden_posture_sweeps_total",
                    "Posture sweeps, by kind (full, recheck) and outcome (ok, partial: some part failed and keeps its findings as they were).",
                    &["kind", "outcome"],
                )?,
                sweep_seconds: r.register(Histogram::with_opts(
                    HistogramOpts::new(
                        "cloudwarden_posture_sweep_duration_seconds",
                        "How long posture sweeps take.",
                    )
                    .buckets(vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0]),
                )?)?,
                last_success: r.gauge(
                    "cloudwarden_posture_last_success_timestamp_seconds",
                    "When a full posture sweep last completed with every part read, in Unix seconds.",
                )?,
                failures: r.counter_vec(
                    "cloudwarden_posture_failures_total",
                    "Posture sweep parts that failed, by service and AWS error code.",
                    &["service", "code"],
                )?,
                rechecks_dropped: r.counter(
                    "cloudwarden_posture_rechecks_dropped_total",
                    "Events that changed a checked resource but found the re-check queue full; the next sweep sees the change.",
                )?,
                applied: r.counter_vec(
                    "cloudwarden_posture_changes_total",
                    "Declared settings put in place, by kind and outcome (done, failed).",
                    &["kind", "outcome"],
                )?,
            },
            response: ResponseMetrics {
                actions: r.counter_vec(
                    "cloudwarden_response_actions_total",
                    "Response action outcomes, by action and outcome (done, already, dry_run, refused, failed).",
                    &["action", "outcome"],
                )?,
                refused: r.counter_vec(
                    "cloudwarden_response_refused_total",
                    "Response actions a guard refused, by guard (protected, rate_limit, event_age, own_principal).",
                    &["guard"],
                )?,
                pending: r.gauge(
                    "cloudwarden_response_pending",
                    "Response intents committed and not yet carried out.",
                )?,
            },
            alerts: AlertMetrics {
                outbox_depth: r.gauge("cloudwarden_outbox_alerts", "Alerts committed and not yet delivered to every sink.")?,
                outbox_oldest_seconds: r.gauge(
                    "cloudwarden_outbox_oldest_age_seconds",
                    "Age of the oldest undelivered alert, 0 when the outbox is empty.",
                )?,
                delivered: r.counter_vec(
                    "cloudwarden_alerts_delivered_total",
                    "Alerts a sink accepted, by sink.",
                    &["sink"],
                )?,
                failed: r.counter_vec(
                    "cloudwarden_alert_delivery_failures_total",
                    "Alert deliveries that failed (and will be retried), by sink.",
                    &["sink"],
                )?,
                undeliverable: r.counter_vec(
                    "cloudwarden_alerts_undeliverable_total",
                    "Alerts a sink refused for good after retries, by sink; each is logged with its id.",
                    &["sink"],
                )?,
                rate_limited: r.counter_vec(
                    "cloudwarden_alerts_rate_limited_total",
                    "Alerts that waited in the outbox for a sink's rate limit, by sink.",
                    &["sink"],
                )?,
                suppressed: r.counter_vec(
                    "cloudwarden_alerts_suppressed_total",
                    "Alerts dropped by a configured suppression, by rule id (the suppression's reason is in the debug log, not a label: free text would make the label set unbounded).",
                    &["rule"],
                )?,
                repeats: r.counter_vec(
                    "cloudwarden_alerts_repeats_total",
                    "Repeats of an alert held back within its dedup window, by rule id.",
                    &["rule"],
                )?,
                summaries: r.counter_vec(
                    "cloudwarden_alert_summaries_total",
                    "Summaries sent for the repeats of a closed dedup window, by rule id.",
                    &["rule"],
                )?,
                windows: r.gauge(
                    "cloudwarden_alert_windows",
                    "Dedup windows open.",
                )?,
                windows_closed_early: r.counter(
                    "cloudwarden_alert_windows_closed_early_total",
                    "Dedup windows closed before their time at the alerts.max_windows bound.",
                )?,
            },
            sources: SourceMetrics {
                ready: r.gauge_vec(
                    "cloudwarden_source_ready",
                    "1 while a source's last poll succeeded, else 0.",
                    &["source", "kind"],
                )?,
                read: r.counter_vec(
                    "cloudwarden_source_records_read_total",
                    "Records a source read and handed to detection, by source.",
                    &["source"],
                )?,
                polls: r.counter_vec(
                    "cloudwarden_source_polls_total",
                    "Polls (or queue receives) by source and outcome (ok, error).",
                    &["source", "outcome"],
                )?,
                lag_seconds: r.gauge_vec(
                    "cloudwarden_source_lag_seconds",
                    "Now minus the newest event time a source has read.",
                    &["source"],
                )?,
                checkpoint_time: r.gauge_vec(
                    "cloudwarden_source_checkpoint_timestamp_seconds",
                    "When a source last committed progress, Unix seconds: a checkpoint moved (part: a Region, a log group) or a handled queue message deleted (part: queue).",
                    &["source", "part"],
                )?,
                last_success: r.gauge_vec(
                    "cloudwarden_source_last_success_timestamp_seconds",
                    "When a source's poll last succeeded, in Unix seconds.",
                    &["source"],
                )?,
                set_aside: r.counter_vec(
                    "cloudwarden_source_messages_set_aside_total",
                    "Queue messages set aside after failing too often (kept in the state store), by source.",
                    &["source"],
                )?,
                set_aside_dropped: r.counter_vec(
                    "cloudwarden_source_set_aside_dropped_total",
                    "Set-aside messages dropped, oldest first, because the set-aside store held 1,000 messages or 64 MiB; by the source setting one aside.",
                    &["source"],
                )?,
                skipped: r.counter_vec(
                    "cloudwarden_source_skipped_total",
                    "Messages or objects skipped on purpose, by source and reason (test_event, digest, not_cloudtrail_object).",
                    &["source", "reason"],
                )?,
                message_failures: r.counter_vec(
                    "cloudwarden_source_message_failures_total",
                    "Queue messages not handled on a receive, by source and outcome: transient and interrupted (retried, never counted), permanent and crash (counted towards max_attempts).",
                    &["source", "outcome"],
                )?,
                rate_limited: r.counter_vec(
                    "cloudwarden_aws_rate_limited_total",
                    "AWS calls that waited for cloudwarden's own rate limit, by operation.",
                    &["operation"],
                )?,
                reread_seconds: r.gauge_vec(
                    "cloudwarden_source_reread_seconds",
                    "How far behind the end of its last committed window a polled source re-reads now (at most its lookback), by source and part (Region).",
                    &["source", "part"],
                )?,
                lateness_seconds: r.gauge_vec(
                    "cloudwarden_source_event_lateness_seconds",
                    "The largest delay between an event's time and its first appearance that a polled source measured over its recent polls, by source and part.",
                    &["source", "part"],
                )?,
                request_budget_percent: r.gauge_vec(
                    "cloudwarden_source_request_budget_percent",
                    "Requests the last poll of a LookupEvents source needed in a Region, in percent of what its interval allows at CloudTrail's 2 requests a second; above 100 the source falls behind.",
                    &["source", "region"],
                )?,
            },
            aws: AwsMetrics {
                calls: r.counter_vec(
                    "cloudwarden_aws_calls_total",
                    "AWS API calls, by service and operation.",
                    &["service", "operation"],
                )?,
                errors: r.counter_vec(
                    "cloudwarden_aws_errors_total",
                    "Failed AWS API calls, by service, operation and error code.",
                    &["service", "operation", "code"],
                )?,
            },
            ready: r.gauge("cloudwarden_ready", "1 when /readyz answers 200, else 0.")?,
            reloads,
            last_reload,
            registry,
        };
        // Series with known label values start at 0 (see `init_source`).
        for outcome in ["ok", "error"] {
            metrics.state.commits.with_label_values(&[outcome]);
        }
        for kind in ["created", "repaired", "drift"] {
            metrics.alarms.changes.with_label_values(&[kind]);
        }
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for the text format; a failure would
        // leave a partial page, which Prometheus reports as a scrape error.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Creates metrics and registers them in one step.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn register<T: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: T,
    ) -> Result<T, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::new(name, help)?)
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::new(name, help)?)
    }

    fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(&self, name: &str, help: &str) -> Result<Histogram, prometheus::Error> {
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        self.register(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_follows_naming_conventions() {
        let metrics = Metrics::new().unwrap();
        metrics.pipeline.events_in.with_label_values(&["a"]).inc();
        metrics.state.commits.with_label_values(&["ok"]).inc();
        let text = metrics.render();
        let expected = format!(
            "cloudwarden_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&expected), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            // The process collector's are the standard process_* names.
            assert!(
                name.starts_with("cloudwarden_") || name.starts_with("process_"),
                "{line}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
    }
}
