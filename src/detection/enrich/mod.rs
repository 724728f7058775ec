//! Enrichment: facts computed from an event before rules read it.
//!
//! Some of what an attack changes is visible only inside documents that
//! CloudTrail records as strings, such as the IAM, KMS, S3 or SQS policy
//! given to an API call. Expressions over that text break on key order,
//! whitespace and `Condition` blocks, so this step parses those documents
//! once and adds what they say as plain fields under one top-level object,
//! `cloudwarden`, which rules match with ordinary Sigma:
//!
//! - [`policy`] reads resource, identity and trust policies into
//!   `cloudwarden.policy` (statements, principals, and derived facts such as
//!   `public` and `external_accounts`).
//!
//! Enrichment is pure computation, bounded by the event limits, and it costs
//! an event without such documents one look at the keys of its
//! `requestParameters`. It runs inside [`crate::detection::Engine::process`],
//! so the daemon, `replay` and `rules test` all see the same fields. Alerts
//! keep the record as it was read: the added fields are for matching only.

pub mod policy;

use sonic_rs::{JsonValueMutTrait, Object, Value};

use super::event::Limits;

/// The top-level key enrichment adds to an event.
pub const ROOT_KEY: &str = "cloudwarden";

/// Adds the `cloudwarden` object to `root` when something was found to add.
///
/// A record that already carries a `cloudwarden` key of its own has it
/// replaced only when enrichment adds something; rules can therefore trust
/// `cloudwarden.policy` to come from this step whenever the event holds a
/// policy document.
pub fn apply(root: &mut Value, limits: &Limits) {
    let Some(policy) = policy::enrich(root, limits) else {
        return;
    };
    let mut added = Object::new();
    added.insert("policy", policy);
    if let Some(object) = root.as_object_mut() {
        object.insert(ROOT_KEY, Value::from(added));
    }
}

/// The fields enrichment adds, as a Markdown section for `docs/rules.md`.
/// It is built from the same table the code reads, so the two stay in step.
pub fn fields_markdown() -> String {
    policy::fields_markdown()
}

#[cfg(test)]
mod tests;
