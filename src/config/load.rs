//! Stage one: layering defaults, the file and the environment with figment.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::checker::Checker;
use super::file::ConfigFile;
use super::problems::{Origin, Problem};
use super::{Config, ConfigErrors, DEFAULTS_TOML, ENV_PREFIX};

/// The variable that chooses a layer of defaults for where cloudwarden
/// runs (`container`, `systemd`). The image and the unit set it instead of
/// setting keys, which would outrank the user's file.
pub const DEFAULTS_VAR: &str = "CLOUDWARDEN_DEFAULTS";

/// A layer of defaults for a way of running cloudwarden, between the
/// built-in defaults and the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// Its name, the value of `CLOUDWARDEN_DEFAULTS`.
    pub name: &'static str,
    /// Its TOML.
    pub text: &'static str,
}

impl Overlay {
    /// Whether this layer sets `key` (a figment key path).
    pub fn sets(&self, key: &str) -> bool {
        Figment::from(Toml::string(self.text))
            .find_value(key)
            .is_ok()
    }
}

/// The layers `CLOUDWARDEN_DEFAULTS` can name.
pub const OVERLAYS: [Overlay; 2] = [
    Overlay {
        name: "container",
        text: include_str!("layers/container.toml"),
    },
    Overlay {
        name: "systemd",
        text: include_str!("layers/systemd.toml"),
    },
];

/// The layer `CLOUDWARDEN_DEFAULTS` names, if any.
pub fn overlay() -> Result<Option<Overlay>, ConfigErrors> {
    let Ok(name) = std::env::var(DEFAULTS_VAR) else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    match OVERLAYS.iter().find(|o| o.name == name) {
        Some(overlay) => Ok(Some(*overlay)),
        None => Err(ConfigErrors {
            problems: vec![Problem {
                origin: Origin::Env {
                    var: DEFAULTS_VAR.to_owned(),
                },
                key: String::new(),
                message: format!(
                    "unknown defaults \"{name}\" (expected one of: {})",
                    OVERLAYS.map(|o| o.name).join(", ")
                ),
            }],
        }),
    }
}

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
    let file = read_file(location)?;
    let overlay = overlay()?;
    let figment = layers(file.as_ref(), overlay);
    let mut checker = Checker::new(&figment, file.as_ref(), overlay);
    let config = super::validate::config(&figment, &mut checker);
    let problems = checker.into_problems();
    match config {
        Some(mut config) if problems.is_empty() => {
            config.ignored_env = service_links(std::env::vars().map(|(name, _)| name));
            Ok(config)
        }
        // Validation yields no config only after reporting why, so `problems` is not empty here.
        _ => Err(ConfigErrors { problems }),
    }
}

/// Problems found after validation (by a check that needs more than the
/// configuration, such as the rules), each placed at its key as the
/// configuration's own problems are.
pub(crate) fn problems_at(
    location: &ConfigLocation,
    found: Vec<(super::KeyPath, String)>,
) -> ConfigErrors {
    let file = read_file(location).ok().flatten();
    let overlay = overlay().ok().flatten();
    let figment = layers(file.as_ref(), overlay);
    let mut checker = Checker::new(&figment, file.as_ref(), overlay);
    for (key, message) in found {
        checker.report(&key, message);
    }
    ConfigErrors {
        problems: checker.into_problems(),
    }
}

/// The file `location` names, read, when it is used.
pub(super) fn read_file(location: &ConfigLocation) -> Result<Option<ConfigFile>, ConfigErrors> {
    if !location.is_used() {
        return Ok(None);
    }
    ConfigFile::read(&location.path)
        .map(Some)
        .map_err(|problem| ConfigErrors {
            problems: vec![problem],
        })
}

/// The merged layers, lowest first: built-in defaults, the defaults of
/// where it runs, the file, the environment.
pub(super) fn layers(file: Option<&ConfigFile>, overlay: Option<Overlay>) -> Figment {
    let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
    if let Some(overlay) = overlay {
        figment = figment.merge(Toml::string(overlay.text));
    }
    if let Some(file) = file {
        figment = figment.merge(file);
    }
    // CLOUDWARDEN_CONFIG names the file itself (see the CLI) and
    // CLOUDWARDEN_DEFAULTS a layer, not keys; CLOUDWARDEN_TEST_FAIL_STATE_WRITES
    // and CLOUDWARDEN_TEST_RESPONSE_ABORT_AFTER_CALL are test faults
    // (daemon::lifecycle, response::worker).
    figment.merge(
        Env::prefixed(ENV_PREFIX)
            .split("__")
            .ignore(&[
                "config",
                "defaults",
                "test_fail_state_writes",
                "test_response_abort_after_call",
            ])
            .filter(|key| !is_service_link(&key.as_str().to_ascii_lowercase())),
    )
}

/// The variables among `names` that Kubernetes set for a Service whose name
/// starts with `cloudwarden`, which configuration ignores.
pub(super) fn service_links(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut links: Vec<String> = names
        .filter(|name| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|key| is_service_link(&key.to_ascii_lowercase()))
        })
        .collect();
    links.sort();
    links
}

/// Whether a variable (prefix removed, lowercase) is one of the service
/// links Kubernetes injects for a Service named `cloudwarden...`:
/// `..._SERVICE_HOST`, `..._SERVICE_PORT[_NAME]`, `..._PORT` and
/// `..._PORT_<number>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]`. A Service named
/// `cloudwarden` makes `CLOUDWARDEN_PORT`, which would otherwise be an
/// unknown key and stop the pod from starting. No configuration key has a
/// single underscore-separated name like these at the top level, and
/// nested keys use `__`, so nothing real is ignored.
fn is_service_link(key: &str) -> bool {
    // Nested keys are `__` in the variable and `.` once figment has split it.
    if key.contains("__") || key.contains('.') {
        return false;
    }
    let parts: Vec<&str> = key.split('_').collect();
    // The Service's own name (after `cloudwarden`) may add parts in front.
    (0..parts.len()).any(|start| matches_link(&parts[start..]))
}

fn matches_link(parts: &[&str]) -> bool {
    match parts {
        ["service", "host"] | ["service", "port"] | ["port"] => true,
        ["service", "port", name @ ..] => !name.is_empty(),
        ["port", number, proto, rest @ ..] => {
            number.parse::<u16>().is_ok()
                && matches!(*proto, "tcp" | "udp" | "sctp")
                && matches!(rest, [] | ["proto" | "port" | "addr"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_service_links_are_told_from_keys() {
        for link in [
            "port",
            "service_host",
            "service_port",
            "service_port_metrics",
            "port_9898_tcp",
            "port_9898_tcp_proto",
            "port_9898_tcp_port",
            "port_9898_tcp_addr",
            "metrics_service_host",
            "metrics_port_9898_udp_addr",
        ] {
            assert!(is_service_link(link), "{link}");
        }
        for key in [
            "metrics__listen",
            "state__path",
            "log",
            "port_x_tcp",
            "port_9898_http",
            "port_9898_tcp_host",
            "service",
            "aws__endpoints__port",
        ] {
            assert!(!is_service_link(key), "{key}");
        }
        let names = [
            "CLOUDWARDEN_PORT",
            "CLOUDWARDEN_LOG__LEVEL",
            "OTHER_PORT",
            "CLOUDWARDEN_SERVICE_HOST",
        ];
        assert_eq!(
            service_links(names.iter().map(|n| (*n).to_owned())),
            ["CLOUDWARDEN_PORT", "CLOUDWARDEN_SERVICE_HOST"]
        );
    }
}
