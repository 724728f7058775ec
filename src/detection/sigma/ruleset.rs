//! Loading rule files into a compiled rule set.
//!
//! Every file is read, every document classified and compiled on its own:
//! a broken rule is reported with its file, line and id and does not stop
//! the others. Then references are resolved: filters attach to the rules
//! they name, correlations to the rules (or correlations) they count.
//! A user rule with the id of a built-in rule replaces it; a disabled id is
//! not loaded at all.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::detection::{Detection, Placeholders};
use super::document::{self, Document, FilterDoc, LogSource, Meta, RuleDoc};
use super::field::FieldPath;
use super::legacy;
use super::yaml::load_documents;
use crate::detection::Level;
use crate::detection::anomaly::AnomalyRule;
use crate::detection::correlation::CorrelationRule;

/// One rule file's text and where it came from.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// A path, or `builtin:<path>` for the embedded pack.
    pub origin: String,
    /// The YAML text.
    pub text: String,
    /// Whether it is part of the built-in pack (user rules may replace those).
    pub builtin: bool,
}

/// How rules are compiled.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Values of `%name%` placeholders for the `expand` modifier.
    pub placeholders: Placeholders,
    /// Ids (or names) of rules not to load.
    pub disabled: HashSet<String>,
    /// Entries a correlation group keeps (`detection.max_group_entries`);
    /// 0 means no limit. A count condition beyond it could never be reached.
    pub max_group_entries: usize,
}

/// A rule that could not be loaded, or a warning about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub origin: String,
    /// The 1-based line.
    pub line: usize,
    /// The rule's id, when known.
    pub id: Option<String>,
    /// The rule's title, when known.
    pub title: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.origin, self.line)?;
        match (&self.id, &self.title) {
            (Some(id), Some(title)) => write!(f, "rule {id} ({title}): ")?,
            (Some(id), None) => write!(f, "rule {id}: ")?,
            (None, Some(title)) => write!(f, "rule \"{title}\": ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Metadata for alerts and listings.
    pub meta: Arc<Meta>,
    /// The file it came from.
    pub origin: String,
    /// The compiled detection section.
    pub detection: Detection,
    /// Filters attached to it: each must also match.
    pub filters: Vec<Detection>,
    /// Whether a match raises an alert by itself (not for correlation building blocks).
    pub alerts: bool,
    /// Correlations fed by its matches: (correlation, input).
    pub consumers: Vec<(usize, usize)>,
    /// Anomaly rules fed by its matches.
    pub anomalies: Vec<usize>,
    /// Fields whose values, with the rule id, make the dedup key.
    pub dedup_fields: Vec<FieldPath>,
    /// For a rule about one AWS service's CloudTrail events (`service:
    /// iam`), the `eventSource` values it reads (lowercase).
    pub event_sources: Option<Vec<String>>,
    /// Why the rule is loaded but not evaluated (its status), if it is not.
    pub skipped: Option<String>,
}

/// What a listing shows of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Level.
    pub level: Level,
    /// Tags.
    pub tags: Vec<String>,
    /// `rule`, `correlation` or the correlation type.
    pub kind: String,
    /// Description.
    pub description: Option<String>,
    /// The file.
    pub origin: String,
    /// Whether it raises alerts by itself.
    pub alerts: bool,
    /// Why it is not evaluated (its status), if it is not.
    pub skipped: Option<String>,
    /// Its `logsource`.
    pub logsource: LogSource,
}

/// Every loaded rule, compiled, with what could not be loaded.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Detection rules, including the base rules of correlations.
    pub rules: Vec<CompiledRule>,
    /// Correlation rules.
    pub correlations: Vec<CorrelationRule>,
    /// Anomaly rules.
    pub anomalies: Vec<AnomalyRule>,
    /// Rules that could not be loaded.
    pub errors: Vec<RuleError>,
    /// Things worth knowing that did not stop a rule (overrides, filters for absent rules).
    pub warnings: Vec<RuleError>,
    /// Every rule id the files define, disabled ones included: what
    /// configuration may refer to.
    pub ids: HashSet<String>,
    /// Every rule name (`name:`) the files define, disabled ones included.
    pub names: HashSet<String>,
}

struct Loaded {
    origin: String,
    builtin: bool,
    doc: Document,
}

impl RuleSet {
    /// Loads and compiles `files` in order.
    pub fn load(files: &[RuleFile], options: &LoadOptions) -> RuleSet {
        let mut set = RuleSet::default();
        let mut docs: Vec<Loaded> = Vec::new();
        for file in files {
            set.read_file(file, &mut docs);
        }
        let docs = set.dedupe(docs, options);
        set.compile(docs, options);
        set
    }

    /// Every rule for listings: detection rules that alert, then correlations.
    pub fn infos(&self) -> Vec<RuleInfo> {
        let mut out: Vec<RuleInfo> = self
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.meta.id.clone(),
                title: r.meta.title.clone(),
                level: r.meta.level,
                tags: r.meta.tags.clone(),
                kind: "rule".to_owned(),
                description: r.meta.description.clone(),
                origin: r.origin.clone(),
                alerts: r.alerts,
                skipped: r.skipped.clone(),
                logsource: r.meta.logsource.clone(),
            })
            .collect();
        out.extend(self.correlations.iter().map(|c| RuleInfo {
            id: c.meta.id.clone(),
            title: c.meta.title.clone(),
            level: c.meta.level,
            tags: c.meta.tags.clone(),
            kind: c.spec.kind.as_str().to_owned(),
            description: c.meta.description.clone(),
            origin: c.origin.clone(),
            alerts: c.alerts,
            skipped: skipped_status(&c.meta).map(|s| format!("status {s}")),
            logsource: c.meta.logsource.clone(),
        }));
        out.extend(self.anomalies.iter().map(|a| RuleInfo {
            id: a.meta.id.clone(),
            title: a.meta.title.clone(),
            level: a.meta.level,
            tags: a.meta.tags.clone(),
            kind: a.kind.as_str().to_owned(),
            description: a.meta.description.clone(),
            origin: a.origin.clone(),
            alerts: a.alerts,
            skipped: skipped_status(&a.meta).map(|s| format!("status {s}")),
            logsource: a.meta.logsource.clone(),
        }));
        out
    }

    fn error(
        &mut self,
        origin: &str,
        line: usize,
        meta: Option<&Meta>,
        message: impl Into<String>,
    ) {
        self.errors.push(RuleError {
            origin: origin.to_owned(),
            line,
            id: meta.map(|m| m.id.clone()),
            title: meta.map(|m| m.title.clone()),
            message: message.into(),
        });
    }

    fn warn(&mut self, origin: &str, line: usize, meta: Option<&Meta>, message: impl Into<String>) {
        self.warnings.push(RuleError {
            origin: origin.to_owned(),
            line,
            id: meta.map(|m| m.id.clone()),
            title: meta.map(|m| m.title.clone()),
            message: message.into(),
        });
    }

    fn read_file(&mut self, file: &RuleFile, docs: &mut Vec<Loaded>) {
        let nodes = match load_documents(&file.text) {
            Ok(nodes) => nodes,
            Err(err) => {
                self.error(
                    &file.origin,
                    err.line,
                    None,
                    format!("invalid YAML: {}", err.message),
                );
                return;
            }
        };
        let nodes = match document::apply_collection_actions(nodes) {
            Ok(nodes) => nodes,
            Err((line, message)) => {
                self.error(&file.origin, line, None, message);
                return;
            }
        };
        let single = nodes.len() == 1;
        for (i, node) in nodes.iter().enumerate() {
            let fallback = if single {
                file.origin.clone()
            } else {
                format!("{}#{}", file.origin, i + 1)
            };
            match document::read(node, &fallback) {
                Ok(doc) => docs.push(Loaded {
                    origin: file.origin.clone(),
                    builtin: file.builtin,
                    doc,
                }),
                Err(err) => self.errors.push(RuleError {
                    origin: file.origin.clone(),
                    line: err.line,
                    id: err.id,
                    title: err.title,
                    message: err.message,
                }),
            }
        }
    }

    /// Drops disabled rules, lets user rules replace built-in ones with the
    /// same id, and refuses other duplicates.
    fn dedupe(&mut self, docs: Vec<Loaded>, options: &LoadOptions) -> Vec<Loaded> {
        let mut kept: Vec<Option<Loaded>> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for loaded in docs {
            let meta = loaded.doc.meta().clone();
            self.ids.insert(meta.id.clone());
            self.names.extend(meta.name.clone());
            let disabled = options.disabled.contains(&meta.id)
                || meta
                    .name
                    .as_ref()
                    .is_some_and(|n| options.disabled.contains(n));
            if disabled {
                continue;
            }
            if let Some(&earlier) = by_id.get(&meta.id) {
                let replace = match &kept[earlier] {
                    Some(old) => old.builtin && !loaded.builtin,
                    None => false,
                };
                if replace {
                    if let Some(old) = &kept[earlier] {
                        let at = format!("{}:{}", old.origin, old.doc.meta().line);
                        self.warn(
                            &loaded.origin,
                            meta.line,
                            Some(&meta),
                            format!("replaces the built-in rule with this id ({at})"),
                        );
                    }
                    kept[earlier] = Some(loaded);
                } else {
                    let at = kept[earlier]
                        .as_ref()
                        .map(|old| format!("{}:{}", old.origin, old.doc.meta().line))
                        .unwrap_or_default();
                    self.error(
                        &loaded.origin,
                        meta.line,
                        Some(&meta),
                        format!("duplicate rule id (first defined at {at})"),
                    );
                }
                continue;
            }
            if let Some(name) = &meta.name {
                if by_name.contains_key(name) {
                    self.error(
                        &loaded.origin,
                        meta.line,
                        Some(&meta),
                        format!("duplicate rule name \"{name}\""),
                    );
                    continue;
                }
                by_name.insert(name.clone(), kept.len());
            }
            by_id.insert(meta.id.clone(), kept.len());
            kept.push(Some(loaded));
        }
        kept.into_iter().flatten().collect()
    }

    fn compile(&mut self, docs: Vec<Loaded>, options: &LoadOptions) {
        let mut rule_docs: Vec<(String, RuleDoc)> = Vec::new();
        let mut correlation_docs = Vec::new();
        let mut filters: Vec<(String, FilterDoc)> = Vec::new();
        let mut anomaly_docs = Vec::new();
        for Loaded { origin, doc, .. } in docs {
            match doc {
                Document::Rule(rule) if legacy::is_legacy(&rule) => match legacy::rewrite(&rule) {
                    Ok(rewritten) => {
                        rule_docs.extend(rewritten.bases.into_iter().map(|b| (origin.clone(), b)));
                        correlation_docs.push((origin, rewritten.correlation));
                    }
                    Err(message) => self.error(&origin, rule.meta.line, Some(&rule.meta), message),
                },
                Document::Rule(rule) => rule_docs.push((origin, rule)),
                Document::Correlation(c) => correlation_docs.push((origin, c)),
                Document::Filter(f) => filters.push((origin, f)),
                Document::Anomaly(a) => anomaly_docs.push((origin, a)),
            }
        }
        // Ids and names of every rule that compiled, for references.
        let mut refs: HashMap<String, Target> = HashMap::new();
        let mut failed: HashSet<String> = HashSet::new();
        for (origin, doc) in rule_docs {
            match Detection::compile(&doc.detection, &doc.conditions, &options.placeholders) {
                Ok(detection) => {
                    let index = self.rules.len();
                    refs.insert(doc.meta.id.clone(), Target::Rule(index));
                    if let Some(name) = &doc.meta.name {
                        refs.insert(name.clone(), Target::Rule(index));
                    }
                    self.rules.push(CompiledRule {
                        dedup_fields: doc
                            .meta
                            .dedup_fields
                            .iter()
                            .map(|f| FieldPath::new(f))
                            .collect(),
                        event_sources: doc.meta.logsource.trail_event_sources(),
                        skipped: None,
                        meta: Arc::new(doc.meta),
                        origin,
                        detection,
                        filters: Vec::new(),
                        alerts: true,
                        consumers: Vec::new(),
                        anomalies: Vec::new(),
                    });
                }
                Err(err) => {
                    failed.insert(doc.meta.id.clone());
                    failed.extend(doc.meta.name.clone());
                    self.error(&origin, err.line, Some(&doc.meta), err.message);
                }
            }
        }
        self.attach_filters(filters, &refs, options);
        self.compile_anomalies(anomaly_docs, &refs, &failed);
        self.compile_correlations(correlation_docs, refs, &failed, options);
        self.skip_by_status();
    }

    /// Rules marked `deprecated` (replaced by another) or `unsupported`
    /// (not usable as they are) stay listed but are not evaluated, and a
    /// correlation so marked is fed nothing: the specification says such
    /// rules are not for use. A user who wants one changes its status.
    fn skip_by_status(&mut self) {
        let mut notes = Vec::new();
        for rule in &mut self.rules {
            if let Some(status) = skipped_status(&rule.meta) {
                rule.skipped = Some(format!("status {status}"));
                rule.alerts = false;
                rule.consumers.clear();
                rule.anomalies.clear();
                notes.push((rule.origin.clone(), Arc::clone(&rule.meta), status));
            }
        }
        let skipped: HashSet<usize> = self
            .correlations
            .iter()
            .enumerate()
            .filter_map(|(i, c)| skipped_status(&c.meta).map(|_| i))
            .collect();
        for &i in &skipped {
            let c = &mut self.correlations[i];
            c.alerts = false;
            c.consumers.clear();
            if let Some(status) = skipped_status(&c.meta) {
                notes.push((c.origin.clone(), Arc::clone(&c.meta), status));
            }
        }
        for rule in &mut self.rules {
            rule.consumers.retain(|(c, _)| !skipped.contains(c));
        }
        let skipped_anomalies: HashSet<usize> = self
            .anomalies
            .iter()
            .enumerate()
            .filter_map(|(i, a)| skipped_status(&a.meta).map(|_| i))
            .collect();
        for &i in &skipped_anomalies {
            let a = &mut self.anomalies[i];
            a.alerts = false;
            if let Some(status) = skipped_status(&a.meta) {
                notes.push((a.origin.clone(), Arc::clone(&a.meta), status));
            }
        }
        for rule in &mut self.rules {
            rule.anomalies.retain(|a| !skipped_anomalies.contains(a));
        }
        for c in &mut self.correlations {
            c.consumers.retain(|(outer, _)| !skipped.contains(outer));
        }
        let mut seen = HashSet::new();
        for (origin, meta, status) in notes {
            // A rewritten legacy rule is a correlation and its bases: one note.
            if seen.insert((origin.clone(), meta.line)) {
                self.warn(
                    &origin,
                    meta.line,
                    Some(&meta),
                    format!(
                        "status {status}: loaded but not evaluated; change its status to use it"
                    ),
                );
            }
        }
    }

    fn attach_filters(
        &mut self,
        filters: Vec<(String, FilterDoc)>,
        refs: &HashMap<String, Target>,
        options: &LoadOptions,
    ) {
        for (origin, filter) in filters {
            let detection = match Detection::compile(
                &filter.detection,
                std::slice::from_ref(&filter.condition),
                &options.placeholders,
            ) {
                Ok(d) => d,
                Err(err) => {
                    self.error(&origin, err.line, Some(&filter.meta), err.message);
                    continue;
                }
            };
            for target in &filter.rules {
                match refs.get(target) {
                    Some(Target::Rule(i))
                        if !filter
                            .meta
                            .logsource
                            .compatible(&self.rules[*i].meta.logsource) =>
                    {
                        let rule = Arc::clone(&self.rules[*i].meta);
                        self.warn(
                            &origin,
                            filter.meta.line,
                            Some(&filter.meta),
                            format!(
                                "filter's logsource ({}) cannot apply to rule {target}, whose \
                                 logsource is {}; it is not attached",
                                filter.meta.logsource, rule.logsource
                            ),
                        );
                    }
                    Some(Target::Rule(i)) => self.rules[*i].filters.push(detection.clone()),
                    _ => self.warn(
                        &origin,
                        filter.meta.line,
                        Some(&filter.meta),
                        format!("filter names rule {target}, which is not loaded"),
                    ),
                }
            }
        }
    }

    fn compile_correlations(
        &mut self,
        docs: Vec<(String, document::CorrelationDoc)>,
        mut refs: HashMap<String, Target>,
        failed: &HashSet<String>,
        options: &LoadOptions,
    ) {
        // Correlations may refer to correlations: register them all first.
        let base = self.correlations.len();
        for (i, (_, doc)) in docs.iter().enumerate() {
            refs.insert(doc.meta.id.clone(), Target::Correlation(base + i));
            if let Some(name) = &doc.meta.name {
                refs.insert(name.clone(), Target::Correlation(base + i));
            }
        }
        let mut compiled: Vec<Option<CorrelationRule>> = Vec::new();
        let mut inputs_of: Vec<Vec<Target>> = Vec::new();
        for (origin, doc) in &docs {
            let mut targets = Vec::new();
            let mut problem = None;
            for reference in &doc.rules {
                match refs.get(reference) {
                    Some(t) => targets.push(*t),
                    None if failed.contains(reference) => {
                        problem = Some(format!("refers to rule {reference}, which failed to load"));
                    }
                    None => {
                        problem = Some(format!("refers to rule {reference}, which is not loaded"))
                    }
                }
            }
            let names: Vec<Option<String>> = targets
                .iter()
                .map(|t| match t {
                    Target::Rule(i) => self.rules[*i].meta.name.clone(),
                    Target::Correlation(i) => {
                        docs.get(*i - base).and_then(|(_, d)| d.meta.name.clone())
                    }
                })
                .collect();
            let rule = match problem {
                Some(message) => Err(message),
                None => CorrelationRule::compile(doc, &names)
                    .and_then(|rule| within_entry_limit(rule, options.max_group_entries)),
            };
            match rule {
                Ok(mut rule) => {
                    rule.origin = origin.clone();
                    if !doc.meta.level_set {
                        // Without its own level a correlation is as severe as its worst input.
                        let worst = targets.iter().filter_map(|t| match t {
                            Target::Rule(i) => Some(self.rules[*i].meta.level),
                            Target::Correlation(_) => None,
                        });
                        if let Some(level) = worst.max() {
                            Arc::make_mut(&mut rule.meta).level = level;
                        }
                    }
                    compiled.push(Some(rule));
                }
                Err(message) => {
                    self.error(origin, doc.meta.line, Some(&doc.meta), message);
                    compiled.push(None);
                }
            }
            inputs_of.push(targets);
        }
        // A correlation that reaches itself through others would never settle.
        for start in 0..compiled.len() {
            if compiled[start].is_some() && reaches(start + base, start, &inputs_of, base) {
                let (origin, doc) = &docs[start];
                self.error(
                    origin,
                    doc.meta.line,
                    Some(&doc.meta),
                    "correlations refer to each other in a cycle",
                );
                compiled[start] = None;
            }
        }
        // Wire inputs to consumers; referenced rules alert only under `generate: true`.
        let mut index_of: HashMap<usize, usize> = HashMap::new();
        for (i, rule) in compiled.iter().enumerate() {
            if rule.is_some() {
                index_of.insert(base + i, index_of.len() + base);
            }
        }
        for (i, (_, doc)) in docs.iter().enumerate() {
            // A correlation that did not load mutes nothing: its inputs
            // alert on their own as if it were not there.
            if !index_of.contains_key(&(base + i)) {
                continue;
            }
            for target in &inputs_of[i] {
                match target {
                    Target::Rule(r) if !doc.generate => self.rules[*r].alerts = false,
                    Target::Correlation(c) if !doc.generate => {
                        if let Some(Some(inner)) = compiled.get_mut(*c - base) {
                            inner.alerts = false;
                        }
                    }
                    _ => {}
                }
            }
            let Some(&me) = index_of.get(&(base + i)) else {
                continue;
            };
            for (input, target) in inputs_of[i].iter().enumerate() {
                match target {
                    Target::Rule(r) => self.rules[*r].consumers.push((me, input)),
                    Target::Correlation(c) => {
                        if let Some(Some(inner)) = compiled.get_mut(*c - base) {
                            inner.consumers.push((me, input));
                        }
                    }
                }
            }
        }
        self.correlations.extend(compiled.into_iter().flatten());
    }
}

impl RuleSet {
    /// Compiles anomaly documents and wires the detection rules they name
    /// to them; those rules stop alerting on their own unless `generate`.
    fn compile_anomalies(
        &mut self,
        docs: Vec<(String, document::AnomalyDoc)>,
        refs: &HashMap<String, Target>,
        failed: &HashSet<String>,
    ) {
        for (origin, doc) in docs {
            let mut inputs = Vec::new();
            let mut problem = None;
            for reference in &doc.rules {
                match refs.get(reference) {
                    Some(Target::Rule(r)) => inputs.push(*r),
                    Some(Target::Correlation(_)) => {
                        problem = Some(format!(
                            "refers to {reference}, a correlation: an anomaly counts the events of detection rules"
                        ));
                    }
                    None if failed.contains(reference) => {
                        problem = Some(format!("refers to rule {reference}, which failed to load"));
                    }
                    None => {
                        problem = Some(format!("refers to rule {reference}, which is not loaded"));
                    }
                }
            }
            let compiled = match problem {
                Some(message) => Err(message),
                None => AnomalyRule::compile(&doc),
            };
            match compiled {
                Ok(mut rule) => {
                    rule.origin = origin;
                    let me = self.anomalies.len();
                    for r in inputs {
                        if !doc.generate {
                            self.rules[r].alerts = false;
                        }
                        self.rules[r].anomalies.push(me);
                    }
                    self.anomalies.push(rule);
                }
                Err(message) => self.error(&origin, doc.meta.line, Some(&doc.meta), message),
            }
        }
    }
}

/// Refuses a correlation whose count condition a group's bounded entries
/// could never reach (or, for an upper bound, never fail): better a clear
/// error at load than a rule that is silently always or never true.
fn within_entry_limit(
    rule: CorrelationRule,
    max_group_entries: usize,
) -> Result<CorrelationRule, String> {
    match rule.spec.counted_threshold() {
        Some(threshold) if max_group_entries > 0 && threshold >= max_group_entries as f64 => {
            Err(format!(
                "the condition counts to {threshold}, but a group keeps at most \
                 {max_group_entries} events (detection.max_group_entries): raise that \
                 limit above the threshold, or lower the threshold"
            ))
        }
        _ => Ok(rule),
    }
}

/// `deprecated` or `unsupported`, when the rule's status is one of them.
fn skipped_status(meta: &Meta) -> Option<&'static str> {
    match meta.status.as_deref().map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("deprecated") => Some("deprecated"),
        Some(s) if s.eq_ignore_ascii_case("unsupported") => Some("unsupported"),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Rule(usize),
    Correlation(usize),
}

fn reaches(target: usize, from: usize, inputs_of: &[Vec<Target>], base: usize) -> bool {
    let mut stack = vec![from];
    let mut seen = HashSet::new();
    while let Some(at) = stack.pop() {
        if !seen.insert(at) {
            continue;
        }
        for input in &inputs_of[at] {
            if let Target::Correlation(c) = input {
                if *c == target {
                    return true;
                }
                stack.push(*c - base);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests;
