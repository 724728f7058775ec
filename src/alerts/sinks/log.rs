//! A log line per alert, at info: who did what where, never the event itself.

use super::{Outcomes, Sink};
use crate::alerts::route::Route;
use crate::detection::Alert;

/// Logs every alert.
#[derive(Debug)]
pub struct LogSink {
    route: std::sync::Arc<Route>,
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink {
            route: std::sync::Arc::new(Route::all()),
        }
    }
}

impl Sink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn route(&self) -> std::sync::Arc<Route> {
        std::sync::Arc::clone(&self.route)
    }

    fn deliver<'a>(&'a self, alerts: &'a [&'a Alert]) -> Outcomes<'a> {
        for alert in alerts {
            tracing::info!(
                rule = %alert.rule.id,
                title = %alert.rule.title,
                level = alert.rule.level.as_str(),
                alert = alert.id.as_deref().unwrap_or("-"),
                repeats = alert.repeats.as_ref().map_or(0, |r| r.count),
                principal = alert.principal.as_deref().unwrap_or("-"),
                account = alert.account.as_deref().unwrap_or("-"),
                region = alert.region.as_deref().unwrap_or("-"),
                event = alert.event_name.as_deref().unwrap_or("-"),
                event_time = alert.event_time.as_deref().unwrap_or("-"),
                "alert"
            );
        }
        Box::pin(std::future::ready(vec![Ok(()); alerts.len()]))
    }
}
