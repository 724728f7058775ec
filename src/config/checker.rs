//! Stage two's toolkit: converts raw leaves to typed values and records every problem.
//!
//! Each conversion either returns a value or records a [`Problem`] that names
//! the key and where it was written, then lets validation go on.

use std::time::Duration;

use figment::Figment;
use figment::value::Value;
use serde::de::DeserializeOwned;

use super::file::ConfigFile;
use super::key_path::KeyPath;
use super::load::Overlay;
use super::problems::{Origin, Problem};
use super::raw::Leaf;

/// Collects problems while raw leaves are converted.
pub(super) struct Checker<'a> {
    figment: &'a Figment,
    file: Option<&'a ConfigFile>,
    overlay: Option<Overlay>,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(
        figment: &'a Figment,
        file: Option<&'a ConfigFile>,
        overlay: Option<Overlay>,
    ) -> Self {
        Checker {
            figment,
            file,
            overlay,
            problems: Vec::new(),
        }
    }

    /// The problems recorded so far.
    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Records a problem with `key`.
    pub(super) fn report(&mut self, key: &KeyPath, message: impl Into<String>) {
        let origin = self.origin(key);
        self.problems.push(Problem {
            origin,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn origin(&self, key: &KeyPath) -> Origin {
        origin(self.figment, self.file, self.overlay, key)
    }

    /// Deserializes a raw section or entry, reporting keys it does not know.
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        key: &KeyPath,
        value: Option<&Value>,
    ) -> T {
        let Some(value) = value else {
            return T::default();
        };
        let mut unknown = Vec::new();
        let parsed = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()));
        for name in unknown {
            let known = super::field_names::of::<T>();
            self.report(&key.key(&name), unknown_key_message(&name, known));
        }
        match parsed {
            Ok(section) => section,
            Err(err) => {
                self.report(key, format!("expected a table: {}", err.kind));
                T::default()
            }
        }
    }

    /// A leaf of any deserializable type.
    pub(super) fn value<T: DeserializeOwned>(&mut self, key: &KeyPath, leaf: &Leaf) -> Option<T> {
        let value = leaf.as_ref()?;
        match value.deserialize::<T>() {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                self.report(key, err.kind.to_string());
                None
            }
        }
    }

    /// A string leaf passed through `parse`, whose error is reported as it is.
    pub(super) fn parsed<T>(
        &mut self,
        key: &KeyPath,
        leaf: &Leaf,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text: String = self.value(key, leaf)?;
        match parse(&text) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.report(key, message);
                None
            }
        }
    }

    /// A duration written the human way (`30s`, `15m`, `1h 30m`), within `min..=max`.
    pub(super) fn duration(
        &mut self,
        key: &KeyPath,
        leaf: &Leaf,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        if let Some(value) = leaf {
            if value.as_str().is_none() {
                self.report(
                    key,
                    "expected a duration written as a string, such as \"30s\" or \"15m\"",
                );
                return None;
            }
        }
        self.parsed(key, leaf, |text| {
            let duration = humantime::parse_duration(text).map_err(|err| {
                format!("invalid duration \"{text}\": {err} (try \"30s\" or \"15m\")")
            })?;
            if duration < min || duration > max {
                return Err(format!(
                    "duration \"{text}\" is out of range: it must be between {} and {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ));
            }
            Ok(duration)
        })
    }

    /// A whole number within `min..=max`.
    pub(super) fn count(&mut self, key: &KeyPath, leaf: &Leaf, min: u64, max: u64) -> Option<u64> {
        let n: u64 = self.value(key, leaf)?;
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.report(
                key,
                format!("{n} is out of range: it must be between {min} and {max}"),
            );
            None
        }
    }

    /// A required leaf: a missing one is reported.
    pub(super) fn required<T>(
        &mut self,
        key: &KeyPath,
        value: Option<T>,
        leaf: &Leaf,
    ) -> Option<T> {
        if leaf.is_none() {
            self.report(key, "missing required key");
        }
        value
    }
}

/// "unknown key", with the nearest known key when one is close.
fn unknown_key_message(name: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match nearest {
        Some((_, candidate)) => format!("unknown key (did you mean `{candidate}`?)"),
        None if known.is_empty() => "unknown key".to_owned(),
        None => format!("unknown key (expected one of: {})", known.join(", ")),
    }
}

/// Where the value at `key` came from: the environment when figment took it
/// from there, else the file when the file sets it (or the table it belongs
/// in), else the defaults of where it runs when they set it, else the
/// built-in defaults.
pub(super) fn origin(
    figment: &Figment,
    file: Option<&ConfigFile>,
    overlay: Option<Overlay>,
    key: &KeyPath,
) -> Origin {
    let metadata = figment.find_metadata(&key.figment_key());
    if metadata.is_some_and(|m| m.source.is_none() && m.name.contains("environment")) {
        return Origin::Env { var: key.env_var() };
    }
    let layer = || match overlay {
        Some(overlay) if overlay.sets(&key.figment_key()) => Origin::Layer { name: overlay.name },
        _ => Origin::Default,
    };
    let Some(file) = file else {
        return layer();
    };
    let from_file = metadata
        .is_some_and(|m| matches!(&m.source, Some(figment::Source::File(p)) if p == file.path()));
    match file.position(key) {
        Some(position) => Origin::File {
            path: file.path().to_owned(),
            position: Some(position),
        },
        None if from_file => Origin::File {
            path: file.path().to_owned(),
            position: None,
        },
        None => layer(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_suggest_the_nearest_known_one() {
        assert_eq!(
            unknown_key_message("formt", &["level", "format"]),
            "unknown key (did you mean `format`?)"
        );
        assert_eq!(
            unknown_key_message("zzz", &["level", "format"]),
            "unknown key (expected one of: level, format)"
        );
    }
}
