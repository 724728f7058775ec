//! Configuration problems: what is wrong, under which key, and where it was written.
//!
//! Validation collects every [`Problem`] before failing, so a user fixes a
//! configuration in one round instead of one error per restart.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A TOML file, with the 1-based line and column when they are known.
    File {
        /// The file as it was named on the command line.
        path: PathBuf,
        /// 1-based line and column of the key or value.
        position: Option<(usize, usize)>,
    },
    /// An environment variable.
    Env {
        /// The variable's name, such as `CLOUDWARDEN_METRICS__LISTEN`.
        var: String,
    },
    /// The defaults of where cloudwarden runs (`CLOUDWARDEN_DEFAULTS`).
    Layer {
        /// The layer's name, such as `container`.
        name: &'static str,
    },
    /// The embedded defaults, or a key nobody wrote (a missing required key).
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                position: Some((line, column)),
            } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::File {
                path,
                position: None,
            } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Layer { name } => write!(f, "{name} defaults (CLOUDWARDEN_DEFAULTS={name})"),
            Origin::Default => f.write_str("configuration"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending key or value was written.
    pub origin: Origin,
    /// The dotted key, such as `sources[1].interval`; empty for whole-file problems.
    pub key: String,
    /// What is wrong, in a sentence fragment a user can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// Every problem found in one configuration; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems, in the order they were found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}
