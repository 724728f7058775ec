//! Starting and stopping the daemon's tasks, in order.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::DaemonError;
use crate::config::Config;
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::alerts::delivery::Delivery;
use crate::alerts::noise::NoiseControl;
use crate::alerts::outbox;
use crate::alerts::sinks::sns_api::SnsClient;
use crate::alerts::sinks::{FileSink, LogSink, RouteHandle, Sink, SnsSink};
use crate::aws::Clients;
use crate::aws::rate::RateLimits;
use crate::detection::Engine;
use crate::pipeline::stage::{DetectionStage, Reload, ReloadSlot, StageContext};
use crate::pipeline::{self, EventReceiver, EventSender};
use crate::sources::SourceContext;
use crate::sources::api::Aws;
use crate::state::StateStore;
use crate::telemetry::{Metrics, Status, admin};

/// A test fault: when this variable is set, every state store write fails
/// once the daemon has started, as on a full disk.
pub const FAIL_STATE_WRITES: &str = "CLOUDWARDEN_TEST_FAIL_STATE_WRITES";

/// How often expired state records are removed.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// A running daemon. Dropping it without [`Daemon::shutdown`] leaves tasks running.
pub struct Daemon {
    admin_addr: SocketAddr,
    metrics: Metrics,
    status: Status,
    state: StateStore,
    grace: Duration,
    /// Stops the sources and background work; the pipeline then drains.
    stop: CancellationToken,
    /// Stops the admin server, last of all.
    admin_stop: CancellationToken,
    /// Cancelled when a critical task ends on its own.
    failure: CancellationToken,
    /// The first critical task that failed, and why: the daemon's exit says so.
    cause: Arc<OnceLock<(String, String)>>,
    /// Sources, detection and background work.
    tasks: TaskTracker,
    admin: JoinHandle<std::io::Result<()>>,
    /// The configuration the daemon started with: what a reload cannot
    /// change without a restart is compared against it.
    started: Config,
    /// Where reloaded rules go to the detection stage.
    reload: ReloadSlot,
    /// Suppressions and dedup windows, shared with detection.
    noise: Arc<NoiseControl>,
    /// The routes of the SNS topics, by topic ARN, for a reload to replace.
    routes: std::sync::Mutex<Vec<(String, RouteHandle)>>,
}

impl Daemon {
    /// Starts with AWS configured from `config.aws` and the default credential chain.
    pub async fn start(config: Config) -> Result<Self, DaemonError> {
        let sdk = crate::aws::sdk_config(&config.aws).await?;
        Self::start_with(config, sdk).await
    }

    /// Starts with the given AWS SDK configuration (tests point it at an emulator).
    pub async fn start_with(config: Config, sdk: SdkConfig) -> Result<Self, DaemonError> {
        let metrics = Metrics::new()?;
        let status = Status::new(metrics.ready.clone());
        status.waiting("state", "the state store is not open yet");

        let path = config.state.path.clone();
        let state = tokio::task::spawn_blocking(move || StateStore::open(&path))
            .await
            .map_err(|err| DaemonError::Task {
                task: "open state store",
                detail: err.to_string(),
            })??
            .with_metrics(metrics.state.clone());
        status.ready("state");
        tracing::info!(path = %state.path().display(), "state store open");

        let clients = Clients::new(
            sdk.clone(),
            config.aws.endpoints.clone(),
            metrics.aws.clone(),
        );
        let sns = Arc::new(SnsClient::new(clients.clone()));
        check_topics(&sns, &config).await?;

        let listener = admin::bind(config.metrics.listen).await?;
        let admin_addr = listener.local_addr().map_err(DaemonError::Admin)?;

        let admin_stop = CancellationToken::new();
        let failure = CancellationToken::new();
        let admin = spawn_admin(listener, &metrics, &status, &admin_stop, &failure);
        let noise = Arc::new(NoiseControl::new(&config.alerts, metrics.alerts.clone()));
        log_suppressions(&noise);
        let daemon = Daemon {
            admin_addr,
            metrics: metrics.clone(),
            status,
            state,
            grace: config.daemon.shutdown_grace,
            stop: CancellationToken::new(),
            admin_stop,
            failure,
            cause: Arc::new(OnceLock::new()),
            tasks: TaskTracker::new(),
            admin,
            started: config.clone(),
            reload: ReloadSlot::default(),
            noise: Arc::clone(&noise),
            routes: std::sync::Mutex::default(),
        };

        let (events, receiver) = pipeline::channel(
            config.pipeline.channel_capacity,
            config.pipeline.channel_bytes,
            metrics.pipeline.clone(),
        );
        let outbox = Arc::new(Notify::new());
        let keys = Arc::new(outbox::Keys::default());
        let detection_done = CancellationToken::new();
        let response = crate::response::Bindings::new(&config.response)
            .map(|bindings| (bindings, Arc::new(Notify::new())));
        let (touches, rechecks) = if config.posture.enabled {
            let (tx, rx) =
                crate::posture::Rechecks::channel(metrics.posture.rechecks_dropped.clone());
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        daemon.spawn_detection(
            &config,
            receiver,
            Pipeline {
                outbox: Arc::clone(&outbox),
                keys: Arc::clone(&keys),
                noise: Arc::clone(&noise),
                done: detection_done.clone(),
                touches,
                response: response.clone(),
            },
        );
        if let Some(rechecks) = rechecks {
            daemon.spawn_posture(
                &config,
                clients.clone(),
                rechecks,
                Pipeline {
                    outbox: Arc::clone(&outbox),
                    keys: Arc::clone(&keys),
                    noise: Arc::clone(&noise),
                    done: detection_done.clone(),
                    touches: None,
                    response: response.clone(),
                },
            );
        }
        if let Some((_, wake)) = &response {
            daemon.spawn_response(
                &config,
                clients.clone(),
                Arc::clone(wake),
                Arc::clone(&keys),
                Arc::clone(&outbox),
            );
        }
        daemon.spawn_window_sweeper(noise, Arc::clone(&keys), Arc::clone(&outbox));
        daemon.spawn_alarms(&config, clients.clone(), keys, Arc::clone(&outbox));
        daemon.spawn_delivery(&config, outbox, sns, detection_done);
        daemon.start_sources(&config, events, clients.clone());
        daemon.spawn_housekeeping();
        daemon.spawn_identity_check(clients);
        if std::env::var_os(FAIL_STATE_WRITES).is_some() {
            tracing::warn!(
                variable = FAIL_STATE_WRITES,
                "test fault armed: every state store write fails from now on"
            );
            daemon.state.fail_writes();
        }
        tracing::info!(address = %admin_addr, "serving metrics, health and readiness");
        Ok(daemon)
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The daemon's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The daemon's health and readiness.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The state store, shared with the daemon's tasks.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// A token cancelled when shutdown begins.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Resolves when a critical task has ended on its own.
    pub async fn stopped_by_failure(&self) {
        self.failure.cancelled().await;
    }

    /// Stops everything along the one shutdown path, within the grace period:
    /// sources stop, detection drains, the state store closes, the admin
    /// server stops last so that readiness stays observable meanwhile.
    ///
    /// When a critical task failed, the result is that failure
    /// ([`DaemonError::Failed`]) even if the rest stopped cleanly, so that
    /// the process exits non-zero and a supervisor restarts it.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        let cause = Arc::clone(&self.cause);
        let stopped = self.stop_tasks().await;
        match (stopped, cause.get()) {
            (Ok(()), Some((task, detail))) => Err(DaemonError::Failed {
                task: task.clone(),
                detail: detail.clone(),
            }),
            (stopped, _) => stopped,
        }
    }

    async fn stop_tasks(self) -> Result<(), DaemonError> {
        let deadline = Instant::now() + self.grace;
        self.status.waiting("daemon", "shutting down");
        self.stop.cancel();
        self.tasks.close();
        if timeout_at(deadline, self.tasks.wait()).await.is_err() {
            return Err(DaemonError::ShutdownTimeout {
                grace: self.grace,
                pending: vec![format!("{} pipeline task(s)", self.tasks.len())],
            });
        }
        // Every task holding a clone has ended, so this closes and unlocks the file.
        drop(self.state);
        tracing::info!("pipeline drained and state store closed");
        self.admin_stop.cancel();
        match timeout_at(deadline, self.admin).await {
            Err(_) => Err(DaemonError::ShutdownTimeout {
                grace: self.grace,
                pending: vec!["admin server".to_owned()],
            }),
            Ok(Ok(Ok(()))) => {
                tracing::info!("stopped");
                Ok(())
            }
            Ok(Ok(Err(err))) => Err(DaemonError::Admin(err)),
            Ok(Err(err)) => Err(DaemonError::Task {
                task: "admin server",
                detail: err.to_string(),
            }),
        }
    }

    /// Runs `task` as a critical task: if it ends before shutdown, or panics,
    /// the daemon becomes unhealthy and stops.
    fn supervise(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.supervise_named(name.to_owned(), task);
    }

    /// [`Daemon::supervise`] with a name made at run time.
    fn supervise_named(&self, name: String, task: impl Future<Output = ()> + Send + 'static) {
        self.supervise_fallible(name, async move {
            task.await;
            Ok(())
        });
    }

    /// [`Daemon::supervise`] for a task that can say why it failed. An error
    /// is a failure even during shutdown (detection failing to commit while
    /// it drains, say); the first failure becomes the daemon's exit.
    fn supervise_fallible(
        &self,
        name: String,
        task: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let inner = tokio::spawn(task);
        let (stop, status, failure, cause) = (
            self.stop.clone(),
            self.status.clone(),
            self.failure.clone(),
            Arc::clone(&self.cause),
        );
        self.tasks.spawn(async move {
            let detail = match inner.await {
                Ok(Ok(())) if stop.is_cancelled() => return,
                Ok(Ok(())) => "stopped unexpectedly".to_owned(),
                Ok(Err(err)) => err,
                Err(err) if err.is_panic() => "panicked".to_owned(),
                Err(err) => err.to_string(),
            };
            tracing::error!(task = %name, detail, "critical task failed; the daemon stops and exits non-zero");
            status.failed(format!("{name} failed"));
            let _ = cause.set((name, detail));
            failure.cancel();
        });
    }

    /// Loads the rules and runs detection on a thread of its own: the engine
    /// is CPU work, kept off the async workers.
    /// Puts what `config` changes in place while running: the rules (with
    /// detection's limits) and the suppressions. Detection state, in-flight
    /// events and the outbox are kept. What only a restart changes is
    /// named in the log, and the rest is applied anyway.
    ///
    /// Refused (and `false`) when the configuration names rule ids no rule
    /// file defines; the problems are logged at their keys.
    pub fn reload(&self, config: &Config, location: &crate::config::ConfigLocation) -> bool {
        let (rules, problems) =
            crate::rules::load(&config.rules, config.detection.max_group_entries, &[]);
        let unknown = crate::rules::unknown_ids(config, &rules);
        if !unknown.is_empty() {
            let errors = crate::config::problems_at(location, unknown);
            for problem in &errors.problems {
                tracing::error!(problem = %problem, "configuration problem");
            }
            return false;
        }
        let needs_restart = restart_needed(&self.started, config);
        if !needs_restart.is_empty() {
            tracing::warn!(settings = %needs_restart.join(", "), "these settings changed but take effect only after a restart; the rest of the new configuration is applied");
        }
        let (engine, correlation_retention) = self.engine(config, rules, &problems);
        *self
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Reload {
            engine,
            correlation_retention,
        });
        self.noise.set_suppressions(&config.alerts.suppress);
        log_suppressions(&self.noise);
        // Each running topic takes its new route (min_level, rules, tags).
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for topic in &config.alerts.sns {
            if let Some((_, handle)) = routes.iter().find(|(arn, _)| *arn == topic.topic_arn) {
                *handle
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Arc::new(crate::alerts::route::Route::of_topic(topic));
            }
        }
        drop(routes);
        self.reloaded(true);
        tracing::info!("configuration reloaded: rules, suppressions and topic routes are in place");
        true
    }

    /// Counts a reload (SIGHUP) that succeeded or was refused.
    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.metrics.reloads.with_label_values(&[result]).inc();
        if ok {
            self.metrics
                .last_reload
                .set(crate::telemetry::metrics::unix_now());
        }
    }

    /// Loads the rules `config` names, logs and counts what did not load,
    /// and builds an engine for them, with the retention of correlation
    /// groups they need.
    fn engine(
        &self,
        config: &Config,
        rules: crate::detection::sigma::ruleset::RuleSet,
        problems: &[crate::rules::ReadProblem],
    ) -> (Engine, Duration) {
        for problem in problems {
            tracing::warn!(path = %problem.path.display(), problem = %problem.message, "rule file not loaded");
        }
        for error in &rules.errors {
            tracing::warn!(origin = %error.origin, line = error.line, rule = error.id.as_deref().unwrap_or("-"), problem = %error.message, "rule not loaded");
        }
        for warning in &rules.warnings {
            tracing::warn!(origin = %warning.origin, line = warning.line, rule = warning.id.as_deref().unwrap_or("-"), problem = %warning.message, "rule loaded with a warning");
        }
        let fed_by: Vec<_> = config.sources.iter().map(|s| s.kind.logsource()).collect();
        if !fed_by.is_empty() {
            for rule in crate::rules::unfed(&rules, &fed_by) {
                tracing::warn!(rule = %rule.meta.id, logsource = %rule.meta.logsource, origin = %rule.origin, "no configured source reads events of this rule's logsource: it will never match");
            }
        }
        let detection = &self.metrics.detection;
        detection.rules_loaded.set(
            i64::try_from(rules.rules.len() + rules.correlations.len() + rules.anomalies.len())
                .unwrap_or(i64::MAX),
        );
        detection
            .rules_failed
            .set(i64::try_from(rules.errors.len() + problems.len()).unwrap_or(i64::MAX));
        detection.rule_info.reset();
        let alerting = rules
            .rules
            .iter()
            .filter(|r| r.alerts && r.skipped.is_none())
            .map(|r| &r.meta)
            .chain(
                rules
                    .correlations
                    .iter()
                    .filter(|c| c.alerts)
                    .map(|c| &c.meta),
            )
            .chain(rules.anomalies.iter().filter(|a| a.alerts).map(|a| &a.meta));
        for meta in alerting {
            detection
                .rule_info
                .with_label_values(&[&meta.id, &meta.title, meta.level.as_str()])
                .set(1);
        }
        tracing::info!(
            rules = rules.rules.len(),
            correlations = rules.correlations.len(),
            anomalies = rules.anomalies.len(),
            failed = rules.errors.len() + problems.len(),
            "rules loaded"
        );
        // Saved correlation groups outlive their last event by the longest
        // timespan plus the late allowance (and an hour for a slow restart).
        let longest = rules
            .correlations
            .iter()
            .map(|c| Duration::from_millis(u64::try_from(c.spec.timespan).unwrap_or(0)))
            .max()
            .unwrap_or_default();
        let retention = longest + config.detection.late_allowance + Duration::from_secs(3600);
        (Engine::new(Arc::new(rules), config.engine()), retention)
    }

    fn spawn_detection(&self, config: &Config, receiver: EventReceiver, pipeline: Pipeline) {
        let (rules, problems) =
            crate::rules::load(&config.rules, config.detection.max_group_entries, &[]);
        let (engine, retention) = self.engine(config, rules, &problems);
        let detection = &self.metrics.detection;
        let ctx = StageContext {
            state: self.state.clone(),
            metrics: detection.clone(),
            outbox: pipeline.outbox,
            keys: pipeline.keys,
            noise: pipeline.noise,
            dedup_window: config.pipeline.dedup_window,
            correlation_retention: retention,
            reload: Some(Arc::clone(&self.reload)),
            touches: pipeline.touches,
            response: pipeline.response,
        };
        let mut stage = DetectionStage::new(receiver, engine, ctx);
        let done = pipeline.done;
        self.supervise_fallible("detection".to_owned(), async move {
            // Delivery makes its last pass once detection committed its last batch.
            let _done = done.drop_guard();
            let run = tokio::task::spawn_blocking(move || {
                let restored = stage.restore().map_err(|e| e.to_string())?;
                tracing::info!(
                    seen_ids = restored.seen,
                    correlation_groups = restored.groups,
                    anomaly_groups = restored.anomaly_groups,
                    "detection state restored"
                );
                stage.run().map_err(|e| e.to_string())
            });
            match run.await {
                Ok(Ok(summary)) => {
                    tracing::info!(
                        events = summary.events,
                        alerts = summary.alerts,
                        "detection stage drained"
                    );
                    Ok(())
                }
                Ok(Err(err)) => Err(err),
                Err(err) if err.is_panic() => Err("the detection thread panicked".to_owned()),
                Err(err) => Err(format!("the detection thread failed: {err}")),
            }
        });
    }

    /// Delivers committed alerts to the sinks until detection has drained.
    fn spawn_delivery(
        &self,
        config: &Config,
        notify: Arc<Notify>,
        sns: Arc<SnsClient>,
        detection_done: CancellationToken,
    ) {
        let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(LogSink::default())];
        if let Some(path) = &config.alerts.file {
            sinks.push(Box::new(FileSink::new(path.clone())));
        }
        let mut routes = Vec::new();
        for topic in &config.alerts.sns {
            let sink = SnsSink::new(Arc::clone(&sns), topic.clone());
            routes.push((topic.topic_arn.clone(), sink.route_handle()));
            sinks.push(Box::new(sink));
        }
        *self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = routes;
        for sink in &sinks {
            self.metrics.init_sink(sink.name());
        }
        let delivery = Delivery {
            state: self.state.clone(),
            metrics: self.metrics.alerts.clone(),
            notify,
            sinks,
        };
        self.supervise("alert delivery", delivery.run(detection_done));
    }

    /// Sweeps posture and re-checks what events touch.
    fn spawn_posture(
        &self,
        config: &Config,
        clients: Clients,
        touches: tokio::sync::mpsc::Receiver<crate::detection::touch::Touch>,
        pipeline: Pipeline,
    ) {
        let task = crate::posture::task::PostureTask {
            home_region: clients.home_region(),
            api: crate::posture::api::AwsPosture::new(clients),
            config: config.posture.clone(),
            cis_alarms: config.alarms.cis.enabled,
            state: self.state.clone(),
            keys: pipeline.keys,
            outbox: pipeline.outbox,
            noise: pipeline.noise,
            metrics: self.metrics.posture.clone(),
            touches,
            response: pipeline.response,
        };
        self.supervise("posture", task.run(self.stop.clone()));
    }

    /// Carries out response intents.
    fn spawn_response(
        &self,
        config: &Config,
        clients: Clients,
        wake: Arc<Notify>,
        keys: Arc<outbox::Keys>,
        outbox: Arc<Notify>,
    ) {
        let task = crate::response::worker::ResponseTask {
            api: crate::response::api::AwsResponse::new(clients),
            config: config.response.clone(),
            allowed_ports: config.posture.world_open_allowed_ports.clone(),
            state: self.state.clone(),
            keys,
            outbox,
            wake,
            metrics: self.metrics.response.clone(),
        };
        self.supervise("response", task.run(self.stop.clone()));
    }

    /// Keeps the declared CloudWatch alarms in place, when there are any.
    fn spawn_alarms(
        &self,
        config: &Config,
        clients: Clients,
        keys: Arc<outbox::Keys>,
        outbox: Arc<Notify>,
    ) {
        if !config.alarms.any() {
            return;
        }
        let reconciler = crate::alarms::task::Reconciler {
            api: crate::alarms::api::AwsAlarms::new(clients),
            desired: crate::alarms::desired::desired(&config.alarms),
            interval: config.alarms.interval,
            state: self.state.clone(),
            keys,
            outbox,
            metrics: self.metrics.alarms.clone(),
        };
        self.supervise("alarms", reconciler.run(self.stop.clone()));
    }

    /// Closes dedup windows when their time comes, staging their summaries.
    fn spawn_window_sweeper(
        &self,
        noise: Arc<NoiseControl>,
        keys: Arc<outbox::Keys>,
        outbox: Arc<Notify>,
    ) {
        let (state, stop) = (self.state.clone(), self.stop.clone());
        self.supervise("alert windows", async move {
            let mut ticker = tokio::time::interval(noise.tick());
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let (state, noise, keys) = (state.clone(), Arc::clone(&noise), Arc::clone(&keys));
                let swept = tokio::task::spawn_blocking(move || {
                    let closed =
                        state.write(|txn| noise.close_due(txn, SystemTime::now(), &keys))?;
                    noise.count_closed(&closed);
                    Ok::<_, crate::state::StateError>(closed)
                })
                .await;
                match swept {
                    Ok(Ok(closed)) if !closed.summaries.is_empty() => outbox.notify_one(),
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "cannot close alert dedup windows")
                    }
                    Err(err) => tracing::warn!(error = %err, "alert window task failed"),
                }
            }
        });
    }

    /// Starts every configured source. The sender for the pipeline stays
    /// alive until shutdown, so detection runs even with no source.
    fn start_sources(&self, config: &Config, events: EventSender, clients: Clients) {
        let limits = RateLimits::new(self.metrics.sources.rate_limited.clone());
        // Sources default to the Region the SDK resolved (aws.region, else
        // AWS_REGION or the profile), not to a fixed one.
        let home = clients.home_region();
        let shared = Arc::new(config.clone());
        let api = Arc::new(Aws::new(clients, limits));
        for source in &config.sources {
            let ctx = SourceContext {
                name: Arc::from(source.name.as_str()),
                kind: source.kind.name(),
                events: events.clone(),
                state: self.state.clone(),
                metrics: self.metrics.sources.clone(),
                rejected: self.metrics.detection.rejected.clone(),
                status: self.status.clone(),
                stop: self.stop.clone(),
            };
            ctx.starting();
            let queue = matches!(
                source.kind,
                crate::config::SourceKind::S3Sqs { .. }
                    | crate::config::SourceKind::EventBridgeSqs { .. }
            );
            self.metrics.init_source(&source.name, queue);
            tracing::info!(source = %source.name, kind = source.kind.name(), "source started");
            let run = crate::sources::run(
                ctx,
                Arc::clone(&api),
                source.clone(),
                Arc::clone(&shared),
                home.clone(),
            );
            self.supervise_named(format!("source {}", source.name), run);
        }
        let stop = self.stop.clone();
        self.supervise("sources", async move {
            stop.cancelled().await;
            drop(events);
        });
    }

    /// Removes expired state records every minute.
    fn spawn_housekeeping(&self) {
        let (state, stop) = (self.state.clone(), self.stop.clone());
        self.supervise("housekeeping", async move {
            let mut ticker = tokio::time::interval(PURGE_EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let state = state.clone();
                match tokio::task::spawn_blocking(move || state.purge_expired(SystemTime::now()))
                    .await
                {
                    Ok(Ok(0)) => {}
                    Ok(Ok(purged)) => tracing::debug!(purged, "expired state records removed"),
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "cannot remove expired state records")
                    }
                    Err(err) => tracing::warn!(error = %err, "state housekeeping task failed"),
                }
            }
        });
    }

    /// Logs which AWS account the daemon watches; a failure is a warning, not fatal,
    /// because sources report their own access problems as they poll.
    fn spawn_identity_check(&self, clients: Clients) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                identity = crate::aws::caller_identity(&clients) => match identity {
                    Ok(identity) => tracing::info!(account = %identity.account, principal = %identity.arn, "watching AWS account"),
                    Err(err) => tracing::warn!(error = %err, "cannot determine the AWS identity; check credentials and aws.endpoint_url"),
                },
            }
        });
    }
}

/// What detection shares with the alert path.
struct Pipeline {
    outbox: Arc<Notify>,
    keys: Arc<outbox::Keys>,
    noise: Arc<NoiseControl>,
    /// Cancelled when detection has stopped.
    done: CancellationToken,
    /// Where detection offers events that touched checked resources.
    touches: Option<crate::posture::Rechecks>,
    /// Response actions and the worker's wake-up.
    response: Option<(Arc<crate::response::Bindings>, Arc<Notify>)>,
}

/// How long the start-up topic check may take before it is left to delivery.
const TOPIC_CHECK_LIMIT: Duration = Duration::from_secs(15);

/// Refuses to start with a topic that is missing or may not be used; warns
/// about what cannot be checked now.
async fn check_topics(sns: &SnsClient, config: &Config) -> Result<(), DaemonError> {
    if config.alerts.sns.is_empty() {
        return Ok(());
    }
    let problems = match tokio::time::timeout(
        TOPIC_CHECK_LIMIT,
        crate::alerts::topics::check(sns, &config.alerts.sns),
    )
    .await
    {
        Ok(problems) => problems,
        Err(_) => {
            tracing::warn!("SNS did not answer the topic check in time; delivery will keep trying");
            return Ok(());
        }
    };
    for problem in problems.iter().filter(|p| !p.fatal) {
        tracing::warn!(topic = %problem.topic, problem = %problem.message, "alert topic");
    }
    let fatal: Vec<_> = problems.into_iter().filter(|p| p.fatal).collect();
    if fatal.is_empty() {
        for topic in &config.alerts.sns {
            tracing::info!(topic = %topic.topic_arn, min_level = topic.min_level.as_str(), "alert topic checked");
        }
        Ok(())
    } else {
        Err(DaemonError::Topics { problems: fatal })
    }
}

/// The settings that differ between `running` and `new` and that only a
/// restart puts in place: where state and the admin server are, how AWS is
/// reached, the sources (their names key checkpoints), the pipeline, logs,
/// alert routes and windows, and alarms.
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    check("aws", running.aws == new.aws);
    check("state", running.state == new.state);
    check("metrics", running.metrics == new.metrics);
    check("log", running.log == new.log);
    check("daemon", running.daemon == new.daemon);
    check("pipeline", running.pipeline == new.pipeline);
    check("sources", running.sources == new.sources);
    // A topic's route (min_level, rules, tags) changes in place; which
    // topics there are, and how each is written to, do not.
    let fixed = |topics: &[crate::config::SnsSinkConfig]| {
        topics
            .iter()
            .map(|t| (t.topic_arn.clone(), t.format, t.max_per_minute))
            .collect::<Vec<_>>()
    };
    check(
        "alerts.sns (topics, format, max_per_minute)",
        fixed(&running.alerts.sns) == fixed(&new.alerts.sns),
    );
    check("alerts.file", running.alerts.file == new.alerts.file);
    check(
        "alerts.dedup_window, alerts.aggregate, alerts.max_windows",
        (
            running.alerts.dedup_window,
            running.alerts.aggregate,
            running.alerts.max_windows,
        ) == (
            new.alerts.dedup_window,
            new.alerts.aggregate,
            new.alerts.max_windows,
        ),
    );
    check("alarms", running.alarms == new.alarms);
    check("posture", running.posture == new.posture);
    check("response", running.response == new.response);
    changed
}

/// Says which suppressions apply, and which have expired and should go.
fn log_suppressions(noise: &NoiseControl) {
    let now = jiff::Timestamp::now();
    for s in noise.suppressions().iter() {
        let c = s.config();
        if s.expired(now) {
            tracing::warn!(reason = %c.reason, "a suppression has expired and no longer applies; remove it from alerts.suppress");
        } else {
            tracing::info!(reason = %c.reason, expires = c.expires.map(|t| t.to_string()).unwrap_or_else(|| "never".to_owned()), "suppression active");
        }
    }
}

/// Serves the admin endpoints until `stop`; a server error makes the daemon unhealthy.
fn spawn_admin(
    listener: tokio::net::TcpListener,
    metrics: &Metrics,
    status: &Status,
    stop: &CancellationToken,
    failure: &CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    let (metrics, status, stop, failure) = (
        metrics.clone(),
        status.clone(),
        stop.clone(),
        failure.clone(),
    );
    tokio::spawn(async move {
        let result = admin::serve(listener, metrics, status.clone(), stop).await;
        if let Err(err) = &result {
            tracing::error!(error = %err, "admin server failed");
            status.failed(format!("admin server failed: {err}"));
            failure.cancel();
        }
        result
    })
}
