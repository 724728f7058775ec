//! Keeping CloudWatch alarms in their declared state: the CIS AWS
//! Foundations monitoring set (a metric filter on the CloudTrail log group
//! and an alarm on its metric, per control) and alarms users declare.
//!
//! [`desired`] turns the configuration into the filters and alarms that
//! should exist; [`reconcile`] compares them with what does exist, by
//! meaning ([`pattern`] parses filter patterns), and repairs the drift;
//! [`api`] is the narrow AWS interface it goes through. Everything created
//! is marked as cloudwarden's, and nothing unmarked is ever changed.

pub mod api;
pub mod cis;
pub mod desired;
pub mod pattern;
pub mod reconcile;
pub mod task;
