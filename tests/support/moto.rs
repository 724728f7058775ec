//! moto's server on a free loopback port, stopped when dropped.
//!
//! scripts/test installs moto into `.venv`; a test that cannot find it fails
//! with that instruction rather than skipping, because a skipped AWS test
//! proves nothing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sts::config::Credentials;
use cloudwarden::config::AwsConfig;

/// A running moto server.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let binary = std::env::var_os("CLOUDWARDEN_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server")
            });
        assert!(
            binary.exists(),
            "moto is not installed at {}: run scripts/test, which installs it into .venv",
            binary.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // AWS's managed policies (AmazonS3FullAccess) exist, as in an account.
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let mut moto = Moto {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if moto.wait_until_up(Duration::from_secs(30)) {
                return moto;
            }
        }
        panic!("moto_server did not start on a free port after 5 tries");
    }

    fn wait_until_up(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // it exited: most likely the port was taken meanwhile
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                let (status, _) = super::http::get(self.addr, "/moto-api/reset-auth");
                if status != 0 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[aws]` settings that point every client here.
    pub fn aws_config(&self) -> AwsConfig {
        AwsConfig {
            region: Some("us-east-1".to_owned()),
            profile: None,
            endpoint_url: Some(self.endpoint()),
            endpoints: Default::default(),
        }
    }

    /// An SDK configuration built by cloudwarden's own plumbing, pointed here.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.aws_config()).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// cloudwarden's SDK configuration for `settings`, with static test credentials.
pub async fn sdk_config_for(settings: &AwsConfig) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).credentials_provider(Credentials::new(
            super::TEST_ACCESS_KEY,
            super::TEST_ACCESS_KEY,
            None,
            None,
            "tests",
        ));
    cloudwarden::aws::sdk_config_from(loader, settings)
        .await
        .expect("sdk config")
}

/// A loopback port nobody listens on at this moment.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
