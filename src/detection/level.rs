//! Sigma's severity levels, ordered from least to most severe.

use std::fmt;
use std::str::FromStr;

/// A rule's or alert's severity, as Sigma names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Context only; never worth waking anyone.
    Informational,
    /// Worth a look during a review.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// An incident until shown otherwise.
    Critical,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    /// The lowercase name Sigma rules use.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!("unknown level \"{text}\" (expected informational, low, medium, high or critical)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_orders_by_severity() {
        assert_eq!("High".parse::<Level>(), Ok(Level::High));
        assert!("severe".parse::<Level>().is_err());
        assert!(Level::Critical > Level::Medium && Level::Medium > Level::Informational);
    }
}
