//! `cloudwarden config show`: the effective configuration, one line per
//! setting, optionally with where each value came from, so an operator can
//! see which layer (built-in defaults, the defaults of where it runs, the
//! file, the environment) set what.

use figment::Figment;
use figment::value::{Dict, Value};

use super::file::ConfigFile;
use super::key_path::KeyPath;
use super::load::{ConfigLocation, Overlay, layers, overlay, read_file};
use super::problems::{ConfigErrors, Origin, Problem};

/// Every setting of the configuration at `location` as `key = value` lines
/// (JSON-quoted values), with `# origin` comments when `with_origin`. An
/// invalid configuration is refused with its problems.
pub fn show(location: &ConfigLocation, with_origin: bool) -> Result<String, ConfigErrors> {
    super::load(location)?;
    let file = read_file(location)?;
    let overlay = overlay()?;
    let figment = layers(file.as_ref(), overlay);
    let root: Dict = figment.extract().map_err(|err| ConfigErrors {
        problems: vec![Problem {
            origin: Origin::Default,
            key: String::new(),
            message: err.to_string(),
        }],
    })?;
    let mut leaves = Vec::new();
    for (key, value) in &root {
        walk(&KeyPath::root(key), value, &mut leaves);
    }
    let lines: Vec<String> = leaves
        .iter()
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    let width = lines.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for ((key, _), line) in leaves.iter().zip(lines) {
        if with_origin {
            let from = source(&figment, file.as_ref(), overlay, key);
            out.push_str(&format!("{line:<width$}  # {from}\n"));
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Collects the leaves under `path`: tables and arrays of tables are walked
/// into, everything else is one setting.
fn walk(path: &KeyPath, value: &Value, out: &mut Vec<(KeyPath, String)>) {
    match value {
        Value::Dict(_, dict) if !dict.is_empty() => {
            for (key, value) in dict {
                walk(&path.key(key), value, out);
            }
        }
        Value::Array(_, items) if items.iter().any(|v| matches!(v, Value::Dict(..))) => {
            for (i, value) in items.iter().enumerate() {
                walk(&path.index(i), value, out);
            }
        }
        other => out.push((
            path.clone(),
            serde_json::to_string(other).unwrap_or_else(|_| "?".to_owned()),
        )),
    }
}

/// Which layer set `key`: figment knows whether the environment or the file
/// supplied the merged value; otherwise it is the defaults of where
/// cloudwarden runs when they set it, else the built-in ones.
fn source(
    figment: &Figment,
    file: Option<&ConfigFile>,
    overlay: Option<Overlay>,
    key: &KeyPath,
) -> String {
    let metadata = figment.find_metadata(&key.figment_key());
    if metadata.is_some_and(|m| m.source.is_none() && m.name.contains("environment")) {
        return Origin::Env { var: key.env_var() }.to_string();
    }
    if let Some(file) = file {
        let from_file = metadata.is_some_and(
            |m| matches!(&m.source, Some(figment::Source::File(p)) if p == file.path()),
        );
        if from_file {
            return Origin::File {
                path: file.path().to_owned(),
                position: file.position(key),
            }
            .to_string();
        }
    }
    if let Some(overlay) = overlay.filter(|o| o.sets(&key.figment_key())) {
        return Origin::Layer { name: overlay.name }.to_string();
    }
    "built-in default".to_owned()
}
