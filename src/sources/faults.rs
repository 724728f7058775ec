//! A wrapper around the AWS interfaces that injects failures: the next N
//! calls of an operation fail with a chosen error, then calls go through.
//! Tests use it to show that sources back off, recover and lose nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use super::api::{
    CloudTrailApi, LogPage, LogQuery, LogsApi, LookupPage, LookupQuery, Message, ObjectApi,
    ObjectBody, ObjectRequest, QueueApi,
};
use crate::aws::AwsError;
use crate::aws::retry::ErrorClass;

/// `inner`, with failures on demand.
pub struct Faulty<A> {
    inner: A,
    plan: Mutex<HashMap<&'static str, VecDeque<AwsError>>>,
}

impl<A> Faulty<A> {
    /// No failures planned yet.
    pub fn new(inner: A) -> Faulty<A> {
        Faulty {
            inner,
            plan: Mutex::new(HashMap::new()),
        }
    }

    /// The next `times` calls of `operation` fail with `error`.
    pub fn fail_next(&self, operation: &'static str, times: usize, error: &AwsError) {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        plan.entry(operation)
            .or_default()
            .extend(std::iter::repeat_n(error.clone(), times));
    }

    fn take(&self, operation: &'static str) -> Result<(), AwsError> {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        match plan.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The error AWS answers when a caller is too fast.
pub fn throttled(service: &'static str, operation: &'static str) -> AwsError {
    AwsError {
        service,
        operation,
        code: "ThrottlingException".to_owned(),
        message: "Rate exceeded".to_owned(),
        class: ErrorClass::Throttled,
    }
}

/// What a call to an endpoint that cannot be reached ends with.
pub fn unreachable(service: &'static str, operation: &'static str) -> AwsError {
    AwsError {
        service,
        operation,
        code: "dispatch".to_owned(),
        message: "connection refused".to_owned(),
        class: ErrorClass::Transient,
    }
}

impl<A: CloudTrailApi> CloudTrailApi for Faulty<A> {
    async fn lookup_events(
        &self,
        region: &str,
        query: &LookupQuery,
    ) -> Result<LookupPage, AwsError> {
        self.take("LookupEvents")?;
        self.inner.lookup_events(region, query).await
    }
}

impl<A: LogsApi> LogsApi for Faulty<A> {
    async fn log_groups(
        &self,
        region: &str,
        prefix: &str,
        next_token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), AwsError> {
        self.take("DescribeLogGroups")?;
        self.inner.log_groups(region, prefix, next_token).await
    }

    async fn filter_log_events(&self, region: &str, query: &LogQuery) -> Result<LogPage, AwsError> {
        self.take("FilterLogEvents")?;
        self.inner.filter_log_events(region, query).await
    }
}

impl<A: QueueApi> QueueApi for Faulty<A> {
    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> Result<Vec<Message>, AwsError> {
        self.take("ReceiveMessage")?;
        self.inner
            .receive(queue_url, max, wait_seconds, visibility_seconds)
            .await
    }

    async fn delete(&self, queue_url: &str, receipt: &str) -> Result<(), AwsError> {
        self.take("DeleteMessage")?;
        self.inner.delete(queue_url, receipt).await
    }

    async fn extend_visibility(
        &self,
        queue_url: &str,
        receipt: &str,
        seconds: i32,
    ) -> Result<(), AwsError> {
        self.take("ChangeMessageVisibility")?;
        self.inner
            .extend_visibility(queue_url, receipt, seconds)
            .await
    }
}

impl<A: ObjectApi> ObjectApi for Faulty<A> {
    async fn get_object(
        &self,
        request: &ObjectRequest<'_>,
    ) -> Result<(ObjectBody, Option<i64>), AwsError> {
        self.take("GetObject")?;
        self.inner.get_object(request).await
    }

    async fn watched_account(&self) -> Result<String, AwsError> {
        self.take("GetCallerIdentity")?;
        self.inner.watched_account().await
    }
}
