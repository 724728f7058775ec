//! Sigma, the open rule format: loading, compiling and evaluating rules.
//!
//! Read bottom-up: [`yaml`] reads documents with line numbers; [`document`]
//! tells rules, correlations and filters apart and reads their metadata;
//! [`value`], [`modifiers`] and [`matcher`] turn `field|modifier: value`
//! into compiled matchers; [`condition`] parses conditions; [`detection`]
//! compiles a detection section and evaluates it on an event; [`index`]
//! picks the rules an event can match; [`legacy`] rewrites the old
//! aggregation syntax; [`ruleset`] loads files into a [`ruleset::RuleSet`];
//! [`aws_services`] maps `logsource.service` names of AWS services to the
//! CloudTrail `eventSource` values they mean.
//!
//! Supported: the whole condition grammar, every value modifier of the
//! specification's appendix that applies to JSON logs, keywords, `null`,
//! wildcards with escapes, rule collections, correlation rules (see
//! [`crate::detection::correlation`]) and filters. Refused, by name:
//! `value_percentile`, `re` with `expand`, `all` on a single value, and
//! legacy aggregations that cannot be rewritten. Rules whose `status` is
//! `deprecated` or `unsupported` load (so that they are listed) but are
//! not evaluated, as the specification says of them.

pub mod aws_services;
pub mod condition;
pub mod detection;
pub mod document;
pub mod field;
pub mod index;
pub mod legacy;
pub mod matcher;
pub mod modifiers;
pub mod ruleset;
pub mod value;
pub mod yaml;
