//! One YAML document of a rule file, read into what it declares: a
//! detection rule, a correlation rule or a filter, with its metadata.
//!
//! Sigma allows arbitrary custom attributes, so unknown top-level keys are
//! kept out of the way rather than refused; the known ones are checked.

use std::time::Duration;

use super::yaml::{Node, Value};
use crate::detection::Level;

/// Which logs a rule applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogSource {
    /// `category`, lowercase.
    pub category: Option<String>,
    /// `product`, lowercase.
    pub product: Option<String>,
    /// `service`, lowercase.
    pub service: Option<String>,
}

/// Whether two logsource attributes agree: equal, or one of them unset.
fn agree(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl std::fmt::Display for LogSource {
    /// `product: aws, service: iam`, or `any` when it names nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("category", &self.category),
            ("product", &self.product),
            ("service", &self.service),
        ]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}: {v}")))
        .collect();
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl LogSource {
    /// CloudTrail records: product `aws`, service `cloudtrail`.
    pub fn cloudtrail() -> LogSource {
        LogSource {
            category: None,
            product: Some("aws".to_owned()),
            service: Some("cloudtrail".to_owned()),
        }
    }

    /// Whether a filter with this logsource can apply to a rule with
    /// `rule`'s: no part that both give differs.
    pub fn compatible(&self, rule: &LogSource) -> bool {
        let ok = agree;
        ok(&self.category, &rule.category)
            && ok(&self.product, &rule.product)
            && (ok(&self.service, &rule.service) || self.service_of(rule) || rule.service_of(self))
    }

    /// Whether a rule declaring `self` applies to events from `events`: each
    /// attribute the rule names must be the events' own, when they have one.
    ///
    /// A rule for the CloudTrail events of one AWS service (`product: aws,
    /// service: iam`) applies to CloudTrail records; the engine then reads
    /// only those whose `eventSource` is that service's (see
    /// [`aws_services`](super::aws_services)).
    pub fn admits(&self, events: &LogSource) -> bool {
        let ok = agree;
        ok(&self.category, &events.category)
            && ok(&self.product, &events.product)
            && (ok(&self.service, &events.service) || self.service_of(events))
    }

    /// Whether `self` names an AWS service whose events `events` (CloudTrail) carries.
    fn service_of(&self, events: &LogSource) -> bool {
        events.service.as_deref() == Some("cloudtrail")
            && super::aws_services::is_service_of_trail(
                self.product.as_deref(),
                self.service.as_deref(),
            )
    }

    /// The event sources a rule with this logsource reads from CloudTrail
    /// records, when it names one AWS service.
    pub fn trail_event_sources(&self) -> Option<Vec<String>> {
        if !super::aws_services::is_service_of_trail(
            self.product.as_deref(),
            self.service.as_deref(),
        ) {
            return None;
        }
        super::aws_services::event_sources(self.service.as_deref()?)
    }
}

/// What every kind of document carries.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `id`, or a stable stand-in (`name`, else file and document number).
    pub id: String,
    /// `name`, used by correlations to refer to rules.
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `level`; medium when absent.
    pub level: Level,
    /// Whether `level` was written (correlations inherit a referenced rule's otherwise).
    pub level_set: bool,
    /// `status`.
    pub status: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `tags`, lowercase.
    pub tags: Vec<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
    /// `references`.
    pub references: Vec<String>,
    /// `author`.
    pub author: Option<String>,
    /// `logsource`.
    pub logsource: LogSource,
    /// The custom attribute `dedup_fields`: fields whose values, with the rule
    /// id, identify repeats of one alert (default: principal and account).
    pub dedup_fields: Vec<String>,
    /// The line the document starts on.
    pub line: usize,
}

/// A detection rule document.
#[derive(Debug, Clone)]
pub struct RuleDoc {
    /// Metadata.
    pub meta: Meta,
    /// The `detection` map.
    pub detection: Node,
    /// `detection.condition`, one or several.
    pub conditions: Vec<String>,
    /// The legacy `detection.timeframe` of aggregation conditions.
    pub timeframe: Option<Duration>,
}

/// The correlation types of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// `event_count`.
    EventCount,
    /// `value_count`.
    ValueCount,
    /// `value_sum`.
    ValueSum,
    /// `value_avg`.
    ValueAvg,
    /// `temporal`.
    Temporal,
    /// `temporal_ordered`.
    TemporalOrdered,
}

impl CorrelationType {
    /// The name used in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::ValueSum => "value_sum",
            CorrelationType::ValueAvg => "value_avg",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// One bound of a correlation condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// `gt`.
    Gt(f64),
    /// `gte`.
    Gte(f64),
    /// `lt`.
    Lt(f64),
    /// `lte`.
    Lte(f64),
    /// `eq`.
    Eq(f64),
    /// `neq`.
    Neq(f64),
}

impl Bound {
    /// Whether `value` satisfies the bound.
    pub fn holds(self, value: f64) -> bool {
        match self {
            Bound::Gt(n) => value > n,
            Bound::Gte(n) => value >= n,
            Bound::Lt(n) => value < n,
            Bound::Lte(n) => value <= n,
            Bound::Eq(n) => value == n,
            Bound::Neq(n) => value != n,
        }
    }

    /// The number the bound compares with.
    pub fn threshold(self) -> f64 {
        match self {
            Bound::Gt(n)
            | Bound::Gte(n)
            | Bound::Lt(n)
            | Bound::Lte(n)
            | Bound::Eq(n)
            | Bound::Neq(n) => n,
        }
    }

    /// Whether more events can only keep the bound satisfied once it is.
    pub fn monotone(self) -> bool {
        matches!(self, Bound::Gt(_) | Bound::Gte(_))
    }
}

/// A correlation rule document.
#[derive(Debug, Clone)]
pub struct CorrelationDoc {
    /// Metadata.
    pub meta: Meta,
    /// `correlation.type`.
    pub kind: CorrelationType,
    /// `correlation.rules`: ids or names.
    pub rules: Vec<String>,
    /// `correlation.group-by`.
    pub group_by: Vec<String>,
    /// `correlation.timespan`.
    pub timespan: Duration,
    /// `correlation.condition` bounds (AND-ed).
    pub bounds: Vec<Bound>,
    /// `correlation.condition.field` for value_* types.
    pub field: Option<String>,
    /// `correlation.aliases`: alias → (rule name → field).
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    /// `correlation.generate`: the referenced rules also alert on their own.
    pub generate: bool,
}

/// A filter (meta filter) document.
#[derive(Debug, Clone)]
pub struct FilterDoc {
    /// Metadata.
    pub meta: Meta,
    /// `filter.rules`: ids or names the filter applies to.
    pub rules: Vec<String>,
    /// The filter's search identifiers (its map without `rules` and `condition`).
    pub detection: Node,
    /// `filter.condition`.
    pub condition: String,
}

/// The anomaly detector kinds (cloudwarden's extension to Sigma).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyType {
    /// A value the group has not used within `history`.
    FirstSeen,
    /// A bucket of events far over the group's own baseline.
    Rate,
}

impl AnomalyType {
    /// The name used in rule files and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyType::FirstSeen => "first_seen",
            AnomalyType::Rate => "rate",
        }
    }
}

/// An anomaly document: `anomaly:` beside `correlation:`.
#[derive(Debug, Clone)]
pub struct AnomalyDoc {
    /// Metadata.
    pub meta: Meta,
    /// `anomaly.type`.
    pub kind: AnomalyType,
    /// `anomaly.rules`: ids or names of detection rules.
    pub rules: Vec<String>,
    /// `anomaly.group-by`: fields, with optional transforms (`userIdentity|principal`).
    pub group_by: Vec<String>,
    /// `anomaly.fields`: the watched value of a first_seen detector.
    pub fields: Vec<String>,
    /// `anomaly.history`.
    pub history: Duration,
    /// `anomaly.learning`: how much of its own history a group needs before it alerts.
    pub learning: Duration,
    /// `anomaly.bucket` of a rate detector.
    pub bucket: Duration,
    /// `anomaly.threshold.factor` of a rate detector.
    pub factor: f64,
    /// `anomaly.threshold.min` of a rate detector.
    pub min: u32,
    /// `anomaly.generate`: the referenced rules also alert on their own.
    pub generate: bool,
}

/// What a document declares.
#[derive(Debug, Clone)]
pub enum Document {
    /// A detection rule.
    Rule(RuleDoc),
    /// A correlation rule.
    Correlation(CorrelationDoc),
    /// A filter.
    Filter(FilterDoc),
    /// An anomaly detector.
    Anomaly(AnomalyDoc),
}

impl Document {
    /// Metadata of any kind of document.
    pub fn meta(&self) -> &Meta {
        match self {
            Document::Rule(r) => &r.meta,
            Document::Correlation(c) => &c.meta,
            Document::Filter(f) => &f.meta,
            Document::Anomaly(a) => &a.meta,
        }
    }
}

/// A document that is not a valid rule: as much of its identity as could be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    /// The rule id, when the document has one.
    pub id: Option<String>,
    /// The title, when the document has one.
    pub title: Option<String>,
    /// The line the problem is on (or the document's first line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads one document; `fallback_id` names it when it has neither id nor name.
pub fn read(doc: &Node, fallback_id: &str) -> Result<Document, DocError> {
    let id = doc.get("id").and_then(Node::scalar_text);
    let title = doc.get("title").and_then(Node::scalar_text);
    let fail = |line: usize, message: String| DocError {
        id: id.clone(),
        title: title.clone(),
        line,
        message,
    };
    if !matches!(doc.value, Value::Map(_)) {
        return Err(fail(
            doc.line,
            format!("a rule must be a map, found {}", doc.kind()),
        ));
    }
    let meta = read_meta(doc, fallback_id).map_err(|(line, m)| fail(line, m))?;
    let has = |key: &str| doc.get(key).is_some();
    match (
        has("detection"),
        has("correlation"),
        has("filter"),
        has("anomaly"),
    ) {
        (true, false, false, false) => read_rule(doc, meta).map(Document::Rule),
        (false, true, false, false) => read_correlation(doc, meta).map(Document::Correlation),
        (false, false, true, false) => read_filter(doc, meta).map(Document::Filter),
        (false, false, false, true) => read_anomaly(doc, meta).map(Document::Anomaly),
        (false, false, false, false) => Err((
            doc.line,
            "not a Sigma rule: it has no detection, correlation, filter or anomaly section"
                .to_owned(),
        )),
        _ => Err((
            doc.line,
            "a document has exactly one of detection, correlation, filter and anomaly".to_owned(),
        )),
    }
    .map_err(|(line, m)| fail(line, m))
}

type Fail = (usize, String);

fn text(doc: &Node, key: &str) -> Result<Option<String>, Fail> {
    match doc.get(key) {
        None => Ok(None),
        Some(Node {
            value: Value::Null, ..
        }) => Ok(None),
        Some(node) => node.scalar_text().map(Some).ok_or_else(|| {
            (
                node.line,
                format!("{key} must be a string, found {}", node.kind()),
            )
        }),
    }
}

fn texts(doc: &Node, key: &str) -> Result<Vec<String>, Fail> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(node) => match &node.value {
            Value::Null => Ok(Vec::new()),
            Value::Seq(items) => items
                .iter()
                .map(|i| {
                    i.scalar_text()
                        .ok_or_else(|| (i.line, format!("{key} must be a list of strings")))
                })
                .collect(),
            _ => node
                .scalar_text()
                .map(|t| vec![t])
                .ok_or_else(|| (node.line, format!("{key} must be a list of strings"))),
        },
    }
}

fn read_meta(doc: &Node, fallback_id: &str) -> Result<Meta, Fail> {
    let title = text(doc, "title")?.ok_or((doc.line, "missing title".to_owned()))?;
    let name = text(doc, "name")?;
    let id = text(doc, "id")?
        .or_else(|| name.clone())
        .unwrap_or_else(|| fallback_id.to_owned());
    let level_text = text(doc, "level")?;
    let level = match &level_text {
        None => Level::Medium,
        Some(t) => t.parse().map_err(|e: String| (line_of(doc, "level"), e))?,
    };
    let logsource = match doc.get("logsource") {
        None => LogSource::default(),
        Some(node) => {
            if !matches!(node.value, Value::Map(_) | Value::Null) {
                return Err((node.line, "logsource must be a map".to_owned()));
            }
            let lower = |k| text(node, k).map(|v| v.map(|s| s.to_lowercase()));
            LogSource {
                category: lower("category")?,
                product: lower("product")?,
                service: lower("service")?,
            }
        }
    };
    Ok(Meta {
        id,
        name,
        title,
        level,
        level_set: level_text.is_some(),
        status: text(doc, "status")?,
        description: text(doc, "description")?,
        tags: texts(doc, "tags")?
            .into_iter()
            .map(|t| t.to_lowercase())
            .collect(),
        falsepositives: texts(doc, "falsepositives")?,
        references: texts(doc, "references")?,
        author: text(doc, "author")?,
        logsource,
        dedup_fields: texts(doc, "dedup_fields")?,
        line: doc.line,
    })
}

fn line_of(doc: &Node, key: &str) -> usize {
    doc.get(key).map_or(doc.line, |n| n.line)
}

fn read_rule(doc: &Node, meta: Meta) -> Result<RuleDoc, Fail> {
    let detection = doc.get("detection").cloned().unwrap_or(Node {
        line: doc.line,
        value: Value::Null,
    });
    if !matches!(detection.value, Value::Map(_)) {
        return Err((detection.line, "detection must be a map".to_owned()));
    }
    let conditions = texts(&detection, "condition")?;
    if conditions.is_empty() {
        return Err((detection.line, "detection has no condition".to_owned()));
    }
    let timeframe = match text(&detection, "timeframe")? {
        None => None,
        Some(t) => Some(timespan(&t).map_err(|e| (line_of(&detection, "timeframe"), e))?),
    };
    Ok(RuleDoc {
        meta,
        detection,
        conditions,
        timeframe,
    })
}

/// A Sigma timespan: a number and one of `s`, `m`, `h`, `d` (`90m`, `1d`).
pub fn timespan(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.len().saturating_sub(1));
    let n: u64 = digits.parse().map_err(|_| {
        format!("invalid timespan \"{text}\" (expected a number and s, m, h or d, such as 15m)")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "invalid timespan \"{text}\" (expected a number and s, m, h or d, such as 15m)"
            ));
        }
    };
    if secs == 0 {
        return Err(format!("timespan \"{text}\" must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

fn read_correlation(doc: &Node, meta: Meta) -> Result<CorrelationDoc, Fail> {
    let Some(c) = doc
        .get("correlation")
        .filter(|c| matches!(c.value, Value::Map(_)))
    else {
        return Err((
            line_of(doc, "correlation"),
            "correlation must be a map".to_owned(),
        ));
    };
    let type_text = text(c, "type")?.ok_or((c.line, "correlation.type is missing".to_owned()))?;
    let kind = match type_text.as_str() {
        "event_count" => CorrelationType::EventCount,
        "value_count" => CorrelationType::ValueCount,
        "value_sum" => CorrelationType::ValueSum,
        "value_avg" => CorrelationType::ValueAvg,
        "temporal" => CorrelationType::Temporal,
        "temporal_ordered" => CorrelationType::TemporalOrdered,
        "value_percentile" => {
            return Err((
                line_of(c, "type"),
                "correlation type value_percentile is not supported: its meaning is not defined precisely enough to evaluate on a stream".to_owned(),
            ));
        }
        other => {
            return Err((
                line_of(c, "type"),
                format!(
                    "unknown correlation type \"{other}\" (expected event_count, value_count, value_sum, value_avg, temporal or temporal_ordered)"
                ),
            ));
        }
    };
    let rules = texts(c, "rules")?;
    if rules.is_empty() {
        return Err((
            c.line,
            "correlation.rules must name at least one rule".to_owned(),
        ));
    }
    let timespan_text = text(c, "timespan")?
        .or(text(c, "timeframe")?)
        .ok_or((c.line, "correlation.timespan is missing".to_owned()))?;
    let timespan = timespan(&timespan_text).map_err(|e| (line_of(c, "timespan"), e))?;
    let group_by = texts(c, "group-by")?;
    let mut bounds = Vec::new();
    let mut field = None;
    if let Some(cond) = c.get("condition") {
        let Value::Map(entries) = &cond.value else {
            return Err((
                cond.line,
                "correlation.condition must be a map such as {gte: 10}".to_owned(),
            ));
        };
        for (key, node) in entries {
            if key == "field" {
                field = Some(
                    node.scalar_text()
                        .ok_or((node.line, "condition.field must be a field name".to_owned()))?,
                );
                continue;
            }
            let n: f64 = node
                .scalar_text()
                .and_then(|t| t.parse().ok())
                .ok_or((node.line, format!("condition.{key} must be a number")))?;
            bounds.push(match key.as_str() {
                "gt" => Bound::Gt(n),
                "gte" => Bound::Gte(n),
                "lt" => Bound::Lt(n),
                "lte" => Bound::Lte(n),
                "eq" => Bound::Eq(n),
                "neq" => Bound::Neq(n),
                other => {
                    return Err((node.line, format!("unknown condition operator \"{other}\" (expected gt, gte, lt, lte, eq or neq)")));
                }
            });
        }
    }
    let counting = !matches!(
        kind,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    );
    if counting && bounds.is_empty() {
        return Err((
            c.line,
            format!(
                "a {} correlation needs a condition such as {{gte: 10}}",
                kind.as_str()
            ),
        ));
    }
    let needs_field = matches!(
        kind,
        CorrelationType::ValueCount | CorrelationType::ValueSum | CorrelationType::ValueAvg
    );
    if needs_field && field.is_none() {
        return Err((
            c.line,
            format!("a {} correlation needs condition.field", kind.as_str()),
        ));
    }
    let mut aliases = Vec::new();
    if let Some(node) = c.get("aliases") {
        let Value::Map(entries) = &node.value else {
            return Err((node.line, "correlation.aliases must be a map".to_owned()));
        };
        for (alias, mapping) in entries {
            let Value::Map(pairs) = &mapping.value else {
                return Err((
                    mapping.line,
                    format!("alias {alias} must map rule names to fields"),
                ));
            };
            let mut per_rule = Vec::new();
            for (rule, field) in pairs {
                per_rule.push((
                    rule.clone(),
                    field.scalar_text().ok_or((
                        field.line,
                        format!("alias {alias}: {rule} must name a field"),
                    ))?,
                ));
            }
            aliases.push((alias.clone(), per_rule));
        }
    }
    let generate = match c.get("generate").or(doc.get("generate")) {
        None => false,
        Some(Node {
            value: Value::Bool(b),
            ..
        }) => *b,
        Some(node) => return Err((node.line, "generate must be true or false".to_owned())),
    };
    Ok(CorrelationDoc {
        meta,
        kind,
        rules,
        group_by,
        timespan,
        bounds,
        field,
        aliases,
        generate,
    })
}

fn read_anomaly(doc: &Node, meta: Meta) -> Result<AnomalyDoc, Fail> {
    let Some(a) = doc
        .get("anomaly")
        .filter(|a| matches!(a.value, Value::Map(_)))
    else {
        return Err((line_of(doc, "anomaly"), "anomaly must be a map".to_owned()));
    };
    if let Value::Map(entries) = &a.value {
        const KNOWN: [&str; 9] = [
            "type",
            "rules",
            "group-by",
            "fields",
            "history",
            "learning",
            "bucket",
            "threshold",
            "generate",
        ];
        if let Some((key, node)) = entries.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err((
                node.line,
                format!("unknown key anomaly.{key} (expected {})", KNOWN.join(", ")),
            ));
        }
    }
    let type_text = text(a, "type")?.ok_or((a.line, "anomaly.type is missing".to_owned()))?;
    let kind = match type_text.as_str() {
        "first_seen" => AnomalyType::FirstSeen,
        "rate" => AnomalyType::Rate,
        other => {
            return Err((
                line_of(a, "type"),
                format!("unknown anomaly type \"{other}\" (expected first_seen or rate)"),
            ));
        }
    };
    let rules = texts(a, "rules")?;
    if rules.is_empty() {
        return Err((
            a.line,
            "anomaly.rules must name at least one rule".to_owned(),
        ));
    }
    let group_by = texts(a, "group-by")?;
    if group_by.is_empty() {
        return Err((
            a.line,
            "anomaly.group-by must name at least one field (such as userIdentity|principal)"
                .to_owned(),
        ));
    }
    let fields = texts(a, "fields")?;
    let span = |key: &str, zero_ok: bool| -> Result<Option<Duration>, Fail> {
        let Some(t) = text(a, key)? else {
            return Ok(None);
        };
        if zero_ok && matches!(t.trim(), "0" | "0s" | "0m" | "0h" | "0d") {
            return Ok(Some(Duration::ZERO));
        }
        timespan(&t)
            .map(Some)
            .map_err(|e| (line_of(a, key), format!("anomaly.{key}: {e}")))
    };
    let history = span("history", false)?.ok_or((
        a.line,
        "anomaly.history is missing (such as 30d)".to_owned(),
    ))?;
    let learning = span("learning", true)?.unwrap_or(Duration::ZERO);
    let bucket = span("bucket", false)?;
    let generate = match a.get("generate") {
        None => false,
        Some(Node {
            value: Value::Bool(b),
            ..
        }) => *b,
        Some(node) => return Err((node.line, "generate must be true or false".to_owned())),
    };
    let mut factor = 0.0;
    let mut min = 0;
    match kind {
        AnomalyType::FirstSeen => {
            if fields.is_empty() {
                return Err((
                    a.line,
                    "a first_seen anomaly needs fields: the value(s) whose first use alerts"
                        .to_owned(),
                ));
            }
            for key in ["bucket", "threshold"] {
                if a.get(key).is_some() {
                    return Err((
                        line_of(a, key),
                        format!("anomaly.{key} is for rate anomalies, not first_seen"),
                    ));
                }
            }
        }
        AnomalyType::Rate => {
            if !fields.is_empty() {
                return Err((
                    line_of(a, "fields"),
                    "anomaly.fields is for first_seen anomalies; a rate anomaly counts events"
                        .to_owned(),
                ));
            }
            let Some(t) = a.get("threshold") else {
                return Err((
                    a.line,
                    "a rate anomaly needs threshold: {factor: 10, min: 200}".to_owned(),
                ));
            };
            let number = |key: &str| -> Result<f64, Fail> {
                let node = t.get(key).ok_or((
                    t.line,
                    format!(
                        "anomaly.threshold.{key} is missing (threshold: {{factor: 10, min: 200}})"
                    ),
                ))?;
                node.scalar_text()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or((
                        node.line,
                        format!("anomaly.threshold.{key} must be a number above zero"),
                    ))
            };
            factor = number("factor")?;
            let floor = number("min")?;
            min = if floor >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                // A fractional floor rounds up: counts are whole.
                floor.ceil() as u32
            };
            if bucket.is_none() {
                return Err((
                    a.line,
                    "a rate anomaly needs bucket (such as 10m)".to_owned(),
                ));
            }
        }
    }
    let bucket = bucket.unwrap_or(Duration::ZERO);
    if kind == AnomalyType::Rate && history <= bucket {
        return Err((
            line_of(a, "history"),
            "anomaly.history must be longer than anomaly.bucket".to_owned(),
        ));
    }
    Ok(AnomalyDoc {
        meta,
        kind,
        rules,
        group_by,
        fields,
        history,
        learning,
        bucket,
        factor,
        min,
        generate,
    })
}

fn read_filter(doc: &Node, meta: Meta) -> Result<FilterDoc, Fail> {
    let Some(f) = doc.get("filter") else {
        return Err((doc.line, "filter is missing".to_owned()));
    };
    let Value::Map(entries) = &f.value else {
        return Err((f.line, "filter must be a map".to_owned()));
    };
    let rules = texts(f, "rules")?;
    if rules.is_empty() {
        return Err((
            f.line,
            "filter.rules must name at least one rule".to_owned(),
        ));
    }
    let condition =
        text(f, "condition")?.ok_or((f.line, "filter.condition is missing".to_owned()))?;
    let searches: Vec<(String, Node)> = entries
        .iter()
        .filter(|(k, _)| k != "rules" && k != "condition")
        .cloned()
        .collect();
    if searches.is_empty() {
        return Err((
            f.line,
            "filter has no search identifier (such as selection)".to_owned(),
        ));
    }
    Ok(FilterDoc {
        meta,
        rules,
        detection: Node {
            line: f.line,
            value: Value::Map(searches),
        },
        condition,
    })
}

/// Applies Sigma rule collections: `action: global` documents are merged
/// into the documents after them, `action: reset` forgets them, and
/// `action: repeat` repeats the previous document with changes.
pub fn apply_collection_actions(docs: Vec<Node>) -> Result<Vec<Node>, (usize, String)> {
    let mut global: Option<Node> = None;
    let mut previous: Option<Node> = None;
    let mut out = Vec::new();
    for doc in docs {
        let action = doc.get("action").and_then(Node::as_str).map(str::to_owned);
        let without_action = strip_key(&doc, "action");
        match action.as_deref() {
            None => {
                let merged = match &global {
                    Some(g) => merge(g, &without_action),
                    None => without_action,
                };
                previous = Some(merged.clone());
                out.push(merged);
            }
            Some("global") => global = Some(without_action),
            Some("reset") => global = None,
            Some("repeat") => {
                let Some(base) = &previous else {
                    return Err((
                        doc.line,
                        "action: repeat without a document before it".to_owned(),
                    ));
                };
                let merged = merge(base, &without_action);
                previous = Some(merged.clone());
                out.push(merged);
            }
            Some(other) => {
                return Err((
                    doc.line,
                    format!("unknown action \"{other}\" (expected global, reset or repeat)"),
                ));
            }
        }
    }
    Ok(out)
}

fn strip_key(doc: &Node, key: &str) -> Node {
    match &doc.value {
        Value::Map(entries) => Node {
            line: doc.line,
            value: Value::Map(entries.iter().filter(|(k, _)| k != key).cloned().collect()),
        },
        _ => doc.clone(),
    }
}

/// `over` merged into `base`: maps merge key by key, anything else replaces.
fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) => {
            let mut entries = b.clone();
            for (key, value) in o {
                match entries.iter_mut().find(|(k, _)| k == key) {
                    Some((_, existing)) => *existing = merge(existing, value),
                    None => entries.push((key.clone(), value.clone())),
                }
            }
            Node {
                line: over.line,
                value: Value::Map(entries),
            }
        }
        _ => over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml::load_documents;
    use super::*;

    fn one(text: &str) -> Result<Document, DocError> {
        let docs = load_documents(text).unwrap();
        read(&docs[0], "test.yml")
    }

    #[test]
    fn reads_rule_metadata() {
        let Document::Rule(rule) = one(
            "title: T\nid: abc\nlevel: High\ntags: [attack.T1078]\nlogsource: {product: AWS, service: cloudtrail}\ndetection:\n  sel: {a: 1}\n  condition: sel\n",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(rule.meta.id, "abc");
        assert_eq!(rule.meta.level, Level::High);
        assert_eq!(rule.meta.tags, ["attack.t1078"]);
        assert!(rule.meta.logsource.admits(&LogSource::cloudtrail()));
        assert_eq!(rule.conditions, ["sel"]);
    }

    #[test]
    fn names_what_is_wrong() {
        let err = one("title: T\nid: x\nlevel: severe\ndetection: {condition: a}\n").unwrap_err();
        assert_eq!((err.line, err.id.as_deref()), (3, Some("x")));
        assert!(err.message.contains("unknown level"));
        assert!(
            one("title: T\n")
                .unwrap_err()
                .message
                .contains("no detection")
        );
        assert!(
            one("id: x\ndetection: {a: {b: 1}, condition: a}\n")
                .unwrap_err()
                .message
                .contains("title")
        );
        let err =
            one("title: T\ncorrelation: {type: value_percentile, rules: [a], timespan: 1h}\n")
                .unwrap_err();
        assert!(err.message.contains("value_percentile"));
        let err = one("title: T\ncorrelation: {type: event_count, rules: [a], timespan: 1h}\n")
            .unwrap_err();
        assert!(err.message.contains("needs a condition"));
    }

    #[test]
    fn reads_correlations_and_filters() {
        let Document::Correlation(c) = one(
            "title: C\ncorrelation:\n  type: value_count\n  rules: [a, b]\n  group-by: [x]\n  timespan: 90m\n  condition: {field: y, gte: 3, lt: 10}\n  aliases: {ip: {a: src, b: dst}}\n",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.timespan, Duration::from_secs(5400));
        assert_eq!(c.bounds, vec![Bound::Gte(3.0), Bound::Lt(10.0)]);
        assert_eq!(c.field.as_deref(), Some("y"));
        assert_eq!(c.aliases[0].1[1], ("b".to_owned(), "dst".to_owned()));
        let Document::Filter(f) = one(
            "title: F\nlogsource: {product: aws}\nfilter:\n  rules: [r1]\n  selection: {user: x}\n  condition: not selection\n",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(f.rules, ["r1"]);
        assert_eq!(f.condition, "not selection");
    }

    #[test]
    fn timespans() {
        assert_eq!(timespan("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(timespan("1d").unwrap(), Duration::from_secs(86400));
        assert!(
            timespan("10 minutes").is_err() && timespan("0m").is_err() && timespan("m").is_err()
        );
    }

    #[test]
    fn collections_merge_global_and_repeat() {
        let docs = load_documents(
            "action: global\ntitle: G\nlogsource: {product: aws}\ndetection: {condition: sel}\n---\nid: one\ndetection: {sel: {a: 1}}\n---\naction: repeat\nid: two\n---\naction: reset\n---\ntitle: alone\nid: three\n",
        )
        .unwrap();
        let out = apply_collection_actions(docs).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].get("title").unwrap().as_str(), Some("G"));
        assert_eq!(
            out[0]
                .get("detection")
                .unwrap()
                .get("condition")
                .unwrap()
                .as_str(),
            Some("sel")
        );
        assert_eq!(out[1].get("id").unwrap().as_str(), Some("two"));
        assert!(out[1].get("detection").unwrap().get("sel").is_some());
        assert!(out[2].get("logsource").is_none());
    }
}
