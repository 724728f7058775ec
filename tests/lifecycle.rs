//! The daemon in-process: start, readiness, and the one shutdown path.

mod support;

use cloudwarden::config::{self, ConfigLocation};
use cloudwarden::daemon::Daemon;
use cloudwarden::state::StateStore;
use support::http::get;
use support::moto::{free_port, sdk_config_for};

fn test_config(dir: &std::path::Path) -> config::Config {
    let path = dir.join("cloudwarden.toml");
    let text = format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:{}\"\n[state]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        free_port(),
        dir.join("state.redb").display()
    );
    std::fs::write(&path, text).unwrap();
    config::load(&ConfigLocation {
        path,
        explicit: true,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_ready_and_shuts_down_releasing_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let sdk = sdk_config_for(&config.aws).await;
    let daemon = Daemon::start_with(config.clone(), sdk).await.unwrap();
    let addr = daemon.admin_addr();
    assert!(daemon.status().readiness().ready);
    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200);

    daemon.state().set_checkpoint("test", &7u32).unwrap();
    daemon.shutdown().await.unwrap();

    let reopened = StateStore::open(&config.state.path).unwrap();
    assert_eq!(reopened.checkpoint::<u32>("test").unwrap(), Some(7));
    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert_eq!(
        status, 0,
        "the admin server stops last, and then it is gone"
    );
}
