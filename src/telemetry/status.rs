//! What `/healthz` and `/readyz` answer, and what the systemd watchdog checks.
//!
//! *Healthy* means the process can do its work: no critical task has died.
//! *Ready* means it is doing it: the state store is open and every
//! configured source has completed a poll. A component that is not ready
//! says why, and `/readyz` shows every such reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::IntGauge;

/// Shared health and readiness. Cheap to clone.
#[derive(Clone)]
pub struct Status {
    inner: Arc<Mutex<Inner>>,
    ready_gauge: IntGauge,
}

#[derive(Default)]
struct Inner {
    /// Component → why it is not ready yet, or `None` once ready.
    components: BTreeMap<String, Option<String>>,
    /// Critical tasks that stopped unexpectedly, with why.
    failures: Vec<String>,
}

/// The answer to "is it ready?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether every component is ready and nothing has failed.
    pub ready: bool,
    /// Each component that is not ready, with why.
    pub waiting: BTreeMap<String, String>,
}

impl Status {
    /// A status with no components, reflected in `ready_gauge`.
    pub fn new(ready_gauge: IntGauge) -> Self {
        Status {
            inner: Arc::default(),
            ready_gauge,
        }
    }

    fn update<T>(&self, change: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding this lock cannot leave Inner half-updated
        // (every change is one map or vec operation), so poisoning is ignored.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let result = change(&mut inner);
        let ready = inner.failures.is_empty() && inner.components.values().all(Option::is_none);
        self.ready_gauge.set(i64::from(ready));
        result
    }

    /// Adds a component that is not ready yet, with why.
    pub fn waiting(&self, component: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.update(|inner| inner.components.insert(component.to_owned(), Some(reason)));
    }

    /// Marks a component ready.
    pub fn ready(&self, component: &str) {
        self.update(|inner| inner.components.insert(component.to_owned(), None));
    }

    /// Records that a critical task stopped; the process is unhealthy from now on.
    pub fn failed(&self, what: impl Into<String>) {
        let what = what.into();
        self.update(|inner| inner.failures.push(what));
    }

    /// Whether no critical task has failed.
    pub fn healthy(&self) -> Result<(), Vec<String>> {
        self.update(|inner| {
            if inner.failures.is_empty() {
                Ok(())
            } else {
                Err(inner.failures.clone())
            }
        })
    }

    /// Whether every component is ready and the process is healthy.
    pub fn readiness(&self) -> Readiness {
        self.update(|inner| {
            let mut waiting: BTreeMap<String, String> = inner
                .components
                .iter()
                .filter_map(|(name, reason)| Some((name.clone(), reason.clone()?)))
                .collect();
            for failure in &inner.failures {
                waiting.insert("health".to_owned(), failure.clone());
            }
            Readiness {
                ready: waiting.is_empty(),
                waiting,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let status = Status::new(gauge.clone());
        status.ready("state");
        status.waiting("source a", "no poll completed yet");
        let readiness = status.readiness();
        assert!(!readiness.ready);
        assert_eq!(readiness.waiting["source a"], "no poll completed yet");
        assert_eq!(gauge.get(), 0);
        status.ready("source a");
        assert!(status.readiness().ready);
        assert_eq!(gauge.get(), 1);
        status.failed("pipeline stopped");
        assert!(!status.readiness().ready && status.healthy().is_err());
    }
}
