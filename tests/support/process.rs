//! The cloudwarden binary run as a real process, as systemd or a container runs it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A command for the binary with a clean, test-only environment: no
/// inherited CLOUDWARDEN_* or AWS settings, static credentials, and no
/// instance-metadata lookups.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudwarden"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLOUDWARDEN_") || key.starts_with("AWS_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", super::TEST_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", super::TEST_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
    command
}

/// Runs the binary to completion.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(args);
    command.envs(env.iter().copied());
    command.output().expect("run cloudwarden")
}

/// A daemon process whose stdout (JSON logs) is collected as it runs.
pub struct DaemonProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl DaemonProcess {
    /// Writes `config` (with `{dir}` replaced by a fresh temporary folder) and
    /// starts `cloudwarden run` on it.
    pub fn start(config: &str, env: &[(&str, &str)]) -> DaemonProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config, env)
    }

    /// Like [`DaemonProcess::start`], in a folder the caller chose (to share state).
    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> DaemonProcess {
        let path = dir.path().join("cloudwarden.toml");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&path, config).expect("write config");
        let mut command = command(&["run", "--config", &path.display().to_string()]);
        command.envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cloudwarden");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        DaemonProcess {
            child,
            logs,
            stderr,
            dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary folder holding the config and state.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state file the test configs use: `{dir}/state.redb`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.redb")
    }

    /// Gives up the temporary folder, for a second daemon to use after this one.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Everything written to stderr (complete once the process has exited).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first log line containing `needle`, waiting up to `limit` for it.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let started = Instant::now();
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin server's address, from the "serving metrics" log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self
            .wait_for_log("serving metrics", Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "the daemon never served; logs: {:#?}\nstderr: {}",
                    self.logs(),
                    self.stderr()
                )
            });
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        json["address"]
            .as_str()
            .expect("address field")
            .parse()
            .expect("socket address")
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, waiting up to `limit`; `None` if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads take the last output.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
