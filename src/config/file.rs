//! The configuration file: read once, parsed for figment and for positions.
//!
//! figment merges values but forgets where in a file they were written, so the
//! same text is also kept as a `toml_edit` document whose spans give the line
//! and column of any key for error messages.

use std::ops::Range;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use toml_edit::{Document, Item};

use super::key_path::{KeyPath, Segment};
use super::problems::{Origin, Problem};

/// A TOML configuration file that parsed.
#[derive(Debug)]
pub(super) struct ConfigFile {
    path: PathBuf,
    text: String,
    document: Document<String>,
}

impl ConfigFile {
    /// Reads and parses `path`; a missing, unreadable or malformed file is one problem.
    pub(super) fn read(path: &Path) -> Result<Self, Problem> {
        let file_problem = |position, message: String| Problem {
            origin: Origin::File {
                path: path.to_owned(),
                position,
            },
            key: String::new(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|err| {
            let message = match err.kind() {
                std::io::ErrorKind::NotFound => "configuration file not found".to_owned(),
                std::io::ErrorKind::PermissionDenied => {
                    "configuration file is not readable (permission denied)".to_owned()
                }
                _ => format!("cannot read configuration file: {err}"),
            };
            file_problem(None, message)
        })?;
        let document = Document::parse(text.clone()).map_err(|err| {
            let position = err.span().map(|span| line_column(&text, span.start));
            file_problem(position, format!("invalid TOML: {}", err.message()))
        })?;
        Ok(ConfigFile {
            path: path.to_owned(),
            text,
            document,
        })
    }

    /// The file's path as the user named it.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line and column of `key` in this file. When the file does not
    /// set `key` itself, the position of the nearest enclosing table or entry
    /// it does have, so that a missing key points at where it belongs.
    pub(super) fn position(&self, key: &KeyPath) -> Option<(usize, usize)> {
        let mut item = self.document.as_item();
        let mut found = None;
        for segment in &key.0 {
            let (span, next) = match segment {
                Segment::Key(name) => {
                    let Some(next) = item.get(name.as_str()) else {
                        break;
                    };
                    (key_span(item, name).or_else(|| next.span()), next)
                }
                Segment::Index(index) => {
                    let Some(next) = item.get(*index) else { break };
                    (next.span(), next)
                }
            };
            found = span.or(found);
            item = next;
        }
        found.map(|span| line_column(&self.text, span.start))
    }
}

/// The span of `name` as a key of `item`, for tables and inline tables alike.
fn key_span(item: &Item, name: &str) -> Option<Range<usize>> {
    match item {
        Item::Table(table) => table.key(name)?.span(),
        Item::Value(toml_edit::Value::InlineTable(table)) => table.key(name)?.span(),
        _ => None,
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

impl Provider for ConfigFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        use figment::providers::Format;
        figment::providers::Toml::string(&self.text).data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        ConfigFile {
            path: PathBuf::from("c.toml"),
            text: text.to_owned(),
            document: Document::parse(text.to_owned()).unwrap(),
        }
    }

    #[test]
    fn finds_keys_in_tables_arrays_of_tables_and_inline_tables() {
        let f = file(
            "[metrics]\nlisten = \"x\"\n\n[[sources]]\nname = \"a\"\n\n[[sources]]\n  interval = \"5\"\n[alarms]\ncis = { enabled = true }\n",
        );
        let metrics = KeyPath::root("metrics").key("listen");
        assert_eq!(f.position(&metrics), Some((2, 1)));
        let interval = KeyPath::root("sources").index(1).key("interval");
        assert_eq!(f.position(&interval), Some((8, 3)));
        let cis = KeyPath::root("alarms").key("cis").key("enabled");
        assert_eq!(f.position(&cis), Some((10, 9)));
        assert_eq!(f.position(&KeyPath::root("log").key("level")), None);
        let missing = KeyPath::root("sources").index(1).key("name");
        assert_eq!(f.position(&missing), Some((7, 1)));
    }

    #[test]
    fn a_syntax_error_names_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[log]\nlevel = \"info\"\nformat = \n").unwrap();
        let problem = ConfigFile::read(&path).unwrap_err();
        let Origin::File { position, .. } = &problem.origin else {
            panic!("{problem:?}")
        };
        assert_eq!(position.map(|p| p.0), Some(3), "{problem}");
        assert!(problem.message.starts_with("invalid TOML"), "{problem}");
    }
}
