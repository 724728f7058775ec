//! The AWS plumbing against moto: every client built from cloudwarden's one
//! SDK configuration reaches the endpoint, and failures are classified.

mod support;

use cloudwarden::aws::retry::ErrorClass;
use cloudwarden::aws::{AwsError, Clients, caller_identity};
use cloudwarden::config::AwsConfig;
use cloudwarden::telemetry::Metrics;
use support::moto::{Moto, free_port, sdk_config_for};

#[tokio::test]
async fn every_client_reaches_the_configured_endpoint() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;

    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns.create_topic().name("alerts").send().await.unwrap();
    let arn = topic.topic_arn().unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:sns:us-east-1:{}:alerts", support::MOTO_ACCOUNT)
    );

    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name("aws-cloudtrail-logs")
        .send()
        .await
        .unwrap();
    let groups = logs.describe_log_groups().send().await.unwrap();
    assert_eq!(
        groups.log_groups()[0].log_group_name(),
        Some("aws-cloudtrail-logs")
    );

    // CloudWatch (alarms) is not exercised here: its SDK now speaks Smithy
    // RPC v2 CBOR, which moto does not implement; the alarms work brings a
    // CBOR front for it.

    let cloudtrail = aws_sdk_cloudtrail::Client::new(&sdk);
    let trails = cloudtrail.describe_trails().send().await.unwrap();
    assert!(trails.trail_list().is_empty());

    let metrics = Metrics::new().unwrap();
    let identity = caller_identity(&Clients::new(
        sdk.clone(),
        Default::default(),
        metrics.aws.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(identity.account, support::MOTO_ACCOUNT);
    let calls = metrics
        .aws
        .calls
        .with_label_values(&["sts", "GetCallerIdentity"])
        .get();
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn an_aws_error_keeps_its_code_and_is_permanent() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let err = sns
        .get_topic_attributes()
        .topic_arn("arn:aws:sns:us-east-1:123456789012:missing")
        .send()
        .await
        .unwrap_err();
    let err = AwsError::from_sdk("sns", "GetTopicAttributes", &err);
    assert_eq!(err.code, "NotFound", "{err}");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.to_string()
            .starts_with("sns GetTopicAttributes failed (NotFound, permanent)"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_and_counted() {
    let settings = AwsConfig {
        region: Some("us-east-1".into()),
        profile: None,
        endpoint_url: Some(format!("http://127.0.0.1:{}", free_port())),
        endpoints: Default::default(),
    };
    let sdk = sdk_config_for(&settings).await;
    let metrics = Metrics::new().unwrap();
    let err = caller_identity(&Clients::new(
        sdk.clone(),
        Default::default(),
        metrics.aws.clone(),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert_eq!(err.code, "dispatch", "{err}");
    let errors = metrics
        .aws
        .errors
        .with_label_values(&["sts", "GetCallerIdentity", "dispatch"])
        .get();
    assert_eq!(errors, 1);
}
