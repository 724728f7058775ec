//! Dotted key paths such as `sources[1].interval`, and their spellings.

use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A key in a table.
    Key(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// A path from the root of the configuration to one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Segment>);

impl KeyPath {
    /// The path of a top-level key.
    pub(crate) fn root(key: &str) -> Self {
        KeyPath(vec![Segment::Key(key.to_owned())])
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        KeyPath(segments)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        KeyPath(segments)
    }

    /// The longest prefix figment can look up: its key paths cannot index arrays.
    pub(crate) fn figment_key(&self) -> String {
        let keys: Vec<&str> = self
            .0
            .iter()
            .map_while(|segment| match segment {
                Segment::Key(key) => Some(key.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        keys.join(".")
    }

    /// The environment variable that sets this key, such as `CLOUDWARDEN_METRICS__LISTEN`.
    pub(crate) fn env_var(&self) -> String {
        let keys: Vec<String> = self
            .0
            .iter()
            .map_while(|segment| match segment {
                Segment::Key(key) => Some(key.to_ascii_uppercase()),
                Segment::Index(_) => None,
            })
            .collect();
        format!("{}{}", super::ENV_PREFIX, keys.join("__"))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_paths_for_people_figment_and_the_environment() {
        let path = KeyPath::root("sources").index(1).key("interval");
        assert_eq!(path.to_string(), "sources[1].interval");
        assert_eq!(path.figment_key(), "sources");
        let path = KeyPath::root("metrics").key("listen");
        assert_eq!(path.env_var(), "CLOUDWARDEN_METRICS__LISTEN");
        assert_eq!(path.figment_key(), "metrics.listen");
    }
}
