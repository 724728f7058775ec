//! Stage one: layering defaults, the file and the environment with figment.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::checker::Checker;
use super::file::ConfigFile;
use super::{Config, ConfigErrors, DEFAULTS_TOML, ENV_PREFIX};

/// Where `run` and `validate` look when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cloudwarden/cloudwarden.toml";

/// Which configuration file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The file's path.
    pub path: PathBuf,
    /// Whether the user named it. A named file must exist; the default path
    /// may be absent, and then defaults and the environment are used alone,
    /// which is how a container configured only by environment runs.
    pub explicit: bool,
}

impl ConfigLocation {
    /// Whether the file would be read: named, or present at the default path.
    pub fn is_used(&self) -> bool {
        self.explicit || self.path.exists()
    }
}

/// Loads and validates the configuration, reporting every problem at once.
pub fn load(location: &ConfigLocation) -> Result<Config, ConfigErrors> {
    let file = if location.is_used() {
        Some(
            ConfigFile::read(&location.path).map_err(|problem| ConfigErrors {
                problems: vec![problem],
            })?,
        )
    } else {
        None
    };
    let figment = layers(file.as_ref());
    let mut checker = Checker::new(&figment, file.as_ref());
    let config = super::validate::config(&figment, &mut checker);
    let problems = checker.into_problems();
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        // Validation yields no config only after reporting why, so `problems` is not empty here.
        _ => Err(ConfigErrors { problems }),
    }
}

/// The merged layers, lowest first.
fn layers(file: Option<&ConfigFile>) -> Figment {
    let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
    if let Some(file) = file {
        figment = figment.merge(file);
    }
    // CLOUDWARDEN_CONFIG names the file itself (see the CLI), not a key, and
    // CLOUDWARDEN_TEST_FAIL_STATE_WRITES is a test fault (daemon::lifecycle).
    figment.merge(
        Env::prefixed(ENV_PREFIX)
            .split("__")
            .ignore(&["config", "test_fail_state_writes"]),
    )
}
