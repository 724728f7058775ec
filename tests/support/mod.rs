//! Test support shared by the integration tests: the local AWS emulator,
//! a tiny HTTP client, and the daemon run as a real process.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod alerts;
pub mod cloudtrail_server;
pub mod http;
pub mod moto;
pub mod process;
pub mod proxy;

/// The credentials every test hands the emulator; moto accepts any.
pub const TEST_ACCESS_KEY: &str = "testing";

/// The account moto reports for any credentials.
pub const MOTO_ACCOUNT: &str = "123456789012";
