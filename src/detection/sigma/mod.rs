//! Sigma, the open rule format: loading, compiling and evaluating rules.
//!
//! Read bottom-up: [`yaml`] reads documents with line numbers; [`document`]
//! tells rules, correlations and filters apart and reads their metadata;
//! [`value`], [`modifiers`] and [`matcher`] turn `field|modifier: value`
//! into compiled matchers; [`condition`] parses conditions; [`detection`]
//! compiles a detection section and evaluates it on an event; [`index`]
//! picks the rules an event can match; [`legacy`] rewrites the old
//! aggregation syntax; [`ruleset`] loads files into a [`ruleset::RuleSet`].
//!
//! Supported: the whole condition grammar, every value modifier of the
//! specification's appendix that applies to JSON logs, keywords, `null`,
//! wildcards with escapes, rule collections, correlation rules (see
//! [`crate::detection::correlation`]) and filters. Refused, by name:
//! `value_percentile`, and legacy aggregations that cannot be rewritten.

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
