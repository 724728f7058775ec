//! The s3_sqs and eventbridge_sqs sources, the real binary against moto's
//! S3 and SQS (and the LookupEvents server, for dedup across sources).

mod support;

use std::io::Write;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;
use support::alerts::{by_event, metric, read, wait_delivered, wait_for};
use support::cloudtrail_server::CloudTrailServer;
use support::http::get;
use support::moto::Moto;
use support::process::DaemonProcess;
use support::{EVERY_ALERT_TO_FILE, EVERY_TEST_EVENT, daemon_config, runtime};

fn config(moto: &Moto, sources: &str, extra_aws: &str) -> String {
    daemon_config(
        &moto.endpoint(),
        extra_aws,
        EVERY_TEST_EVENT,
        EVERY_ALERT_TO_FILE,
        sources,
    )
}

fn record(id: &str, source: &str) -> serde_json::Value {
    let time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/tester", "accountId": "123456789012"},
        "eventTime": time, "eventSource": source, "eventName": "DescribeThings",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10", "eventID": id,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
        "requestParameters": {"padding": "p".repeat(900)}
    })
}

fn trail_file(ids: impl Iterator<Item = String>, source: &str) -> Vec<u8> {
    let records: Vec<String> = ids.map(|id| record(&id, source).to_string()).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes())
        .unwrap();
    gz.finish().unwrap()
}

fn s3_notification(bucket: &str, key: &str) -> String {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(' ', "+"), "size": 1}}
    }]})
    .to_string()
}

struct Aws {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Aws {
    async fn new(moto: &Moto) -> Aws {
        let sdk = moto.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        Aws {
            s3,
            sqs: aws_sdk_sqs::Client::new(&sdk),
        }
    }

    async fn queue(&self, name: &str) -> String {
        self.sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned()
    }

    async fn send(&self, queue: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
    }

    /// Messages visible or in flight.
    async fn left(&self, queue: &str) -> (u64, u64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes().unwrap();
        let n = |k: aws_sdk_sqs::types::QueueAttributeName| {
            attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        (
            n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
            n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

#[test]
fn trail_files_announced_on_sqs_are_read_skips_are_skipped_and_poison_set_aside() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    let bucket = "org-trail";
    let prefix = "AWSLogs/o-abc123def4/123456789012/CloudTrail/us-east-1/2026/11/22";
    let queue = rt.block_on(async {
        aws.s3.create_bucket().bucket(bucket).send().await.unwrap();
        let queue = aws.queue("trail-files").await;
        // A whole file, announced directly and another inside an SNS notification.
        aws.put(bucket, &format!("{prefix}/a one.json.gz"), trail_file((0..150).map(|i| format!("s-{i:03}")), "test.amazonaws.com")).await;
        aws.send(&queue, &s3_notification(bucket, &format!("{prefix}/a one.json.gz"))).await;
        aws.put(bucket, &format!("{prefix}/b.json.gz"), trail_file((0..50).map(|i| format!("n-{i:03}")), "test.amazonaws.com")).await;
        let sns = json!({"Type": "Notification", "Message": s3_notification(bucket, &format!("{prefix}/b.json.gz"))}).to_string();
        aws.send(&queue, &sns).await;
        // What is skipped: S3's test event and a digest file.
        aws.send(&queue, r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"org-trail"}"#).await;
        aws.send(&queue, &s3_notification(bucket, "AWSLogs/o-abc123def4/123456789012/CloudTrail-Digest/us-east-1/2026/11/22/d.json.gz")).await;
        // What can never be read: a message that is no notification, and a truncated file.
        aws.send(&queue, "this is not a notification").await;
        let whole = trail_file((0..3000).map(|i| format!("c-{i:04}")), "test.amazonaws.com");
        aws.put(bucket, &format!("{prefix}/cut.json.gz"), whole[..whole.len() / 2].to_vec()).await;
        aws.send(&queue, &s3_notification(bucket, &format!("{prefix}/cut.json.gz"))).await;
        // A file that inflates past max_object_bytes (1 MiB): about 3 MB of records.
        aws.put(bucket, &format!("{prefix}/inflates.json.gz"), trail_file((0..3000).map(|i| format!("i-{i:04}")), "test.amazonaws.com")).await;
        aws.send(&queue, &s3_notification(bucket, &format!("{prefix}/inflates.json.gz"))).await;
        // Buckets that may not be read: one not listed, an access point by ARN and an Object Lambda alias.
        aws.s3.create_bucket().bucket("elsewhere").send().await.unwrap();
        aws.put("elsewhere", &format!("{prefix}/x.json.gz"), trail_file((0..5).map(|i| format!("x-{i}")), "test.amazonaws.com")).await;
        aws.send(&queue, &s3_notification("elsewhere", &format!("{prefix}/x.json.gz"))).await;
        aws.send(&queue, &s3_notification("arn:aws:s3:us-east-1:123456789012:accesspoint/trail", &format!("{prefix}/x.json.gz"))).await;
        aws.send(&queue, &s3_notification("my-ap-hrzrlukc5m36ft7okagglf3gmwluquse1b--ol-s3", &format!("{prefix}/x.json.gz"))).await;
        queue
    });
    let sources = format!(
        "[[sources]]\nkind = \"s3_sqs\"\nname = \"org-trail\"\nqueue_url = \"{queue}\"\nmax_attempts = 1\nbuckets = [\"{bucket}\"]\nmax_object_bytes = 1048576\n"
    );
    let daemon = DaemonProcess::start(&config(&moto, &sources, ""), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let admin = daemon.admin_addr();
    // Everything is handled: nothing left in the queue, six messages set aside.
    let started = std::time::Instant::now();
    loop {
        let page = get(admin, "/metrics").1;
        let aside = metric(
            &page,
            "cloudwarden_source_messages_set_aside_total",
            "source=\"org-trail\"",
        );
        if (aside >= 6.0 && rt.block_on(aws.left(&queue)) == (0, 0))
            || started.elapsed() > Duration::from_secs(90)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 0));
    // Messages leave the queue once their records are committed: what is
    // delivered now is everything that will be.
    assert!(wait_delivered(admin, "file", Duration::from_secs(60)));
    let events = by_event(&read(&path));
    assert_eq!(
        events
            .keys()
            .filter(|k| k.starts_with("s-") || k.starts_with("n-"))
            .count(),
        200
    );
    let cut = events.keys().filter(|k| k.starts_with("c-")).count();
    assert!(
        cut > 100 && cut < 3000,
        "the records before the cut are read: {cut}"
    );
    let inflated = events.keys().filter(|k| k.starts_with("i-")).count();
    assert!(
        inflated > 100 && inflated < 1100,
        "the records within max_object_bytes are read: {inflated}: {:?}",
        daemon
            .logs()
            .iter()
            .filter(|l| l.contains("inflates"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        events.keys().filter(|k| k.starts_with("x-")).count(),
        0,
        "nothing is read from a bucket that is not allowed"
    );
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_messages_set_aside_total",
            "source=\"org-trail\""
        ),
        6.0,
        "{page}"
    );
    let logs = daemon.logs();
    for why in [
        "more than 1048576 bytes once decompressed",
        "bucket \\\"elsewhere\\\" is not in the source's buckets",
        "is an ARN, not a bucket name",
        "is an Object Lambda access point alias",
    ] {
        assert!(
            logs.iter()
                .any(|l| l.contains("set aside") && l.contains(why)),
            "the log says why: {why}: {:?}",
            logs.iter()
                .filter(|l| l.contains("set aside"))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_skipped_total",
            "reason=\"test_event\""
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_skipped_total",
            "reason=\"digest\""
        ),
        1.0,
        "{page}"
    );
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("set aside") && l.contains("cut.json.gz")),
        "the log says which object"
    );
    // No event was detected twice, although the cut file was read in part.
    let alerts = read(&path);
    assert!(
        by_event(&alerts).values().all(|ids| ids.len() == 1),
        "an event raised two alerts"
    );
}

#[test]
fn eventbridge_events_are_unwrapped_and_deduplicated_against_lookup_events() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    let server = CloudTrailServer::start();
    let queue = rt.block_on(async {
        let queue = aws.queue("cloudtrail-events").await;
        for i in 0..20 {
            let detail = record(&format!("e-{i:02}"), "test.amazonaws.com");
            let envelope = json!({"version": "0", "id": format!("env-{i}"), "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.test", "account": "123456789012", "time": detail["eventTime"], "region": "us-east-1",
                "resources": [], "detail": detail});
            aws.send(&queue, &envelope.to_string()).await;
            // EventBridge may deliver twice, and LookupEvents reads the same events.
            if i < 5 {
                aws.send(&queue, &envelope.to_string()).await;
            }
            if i < 10 {
                server.add("us-east-1", detail);
            }
        }
        queue
    });
    let sources = format!(
        "[[sources]]\nkind = \"eventbridge_sqs\"\nname = \"realtime\"\nqueue_url = \"{queue}\"\n\n[[sources]]\nkind = \"cloudtrail_lookup\"\nname = \"lookup\"\ninterval = \"1s\"\nglobal_events = false\n"
    );
    let extra = format!("[aws.endpoints]\ncloudtrail = \"{}\"", server.endpoint());
    let daemon = DaemonProcess::start(&config(&moto, &sources, &extra), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let admin = daemon.admin_addr();
    wait_for(&path, Duration::from_secs(60), |a| by_event(a).len() >= 20);
    // Let both sources read everything more than once.
    std::thread::sleep(Duration::from_secs(3));
    let alerts = read(&path);
    let events = by_event(&alerts);
    assert_eq!(events.len(), 20);
    assert_eq!(
        alerts.len(),
        20,
        "each event once, whichever source read it first"
    );
    let page = get(admin, "/metrics").1;
    let dropped = metric(&page, "cloudwarden_events_duplicate_total", "");
    assert!(
        dropped >= 15.0,
        "5 repeats on the queue and 10 events also read by LookupEvents: {dropped}"
    );
    // Freshness, whatever the source's kind: the newest event committed, and
    // when each source last committed progress.
    let now = jiff::Timestamp::now().as_second() as f64;
    for source in ["realtime", "lookup"] {
        let newest = metric(
            &page,
            "cloudwarden_source_newest_event_timestamp_seconds",
            &format!("source=\"{source}\""),
        );
        assert!(
            newest > now - 120.0 && newest <= now + 1.0,
            "{source}: {page}"
        );
    }
    for labels in [
        "part=\"queue\",source=\"realtime\"",
        "part=\"us-east-1\",source=\"lookup\"",
    ] {
        let at = metric(
            &page,
            "cloudwarden_source_checkpoint_timestamp_seconds",
            labels,
        );
        assert!(at > now - 120.0, "{labels}: {page}");
    }
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 0));
}

#[test]
fn a_100_mb_trail_file_and_a_200_mb_record_are_read_in_bounded_memory() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    // About 100 MB of JSON: 80,000 records of 1.3 KB, of a source no rule
    // matches, so the test measures reading and detection, not alerting.
    let records = 80_000;
    let file = trail_file(
        (0..records).map(|i| format!("big-{i:06}")),
        "quiet.amazonaws.com",
    );
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/22/big.json.gz";
    let queue = rt.block_on(async {
        aws.s3.create_bucket().bucket("big").send().await.unwrap();
        aws.put("big", key, file).await;
        aws.queue("big-files").await
    });
    let sources =
        format!("[[sources]]\nkind = \"s3_sqs\"\nname = \"big\"\nqueue_url = \"{queue}\"\n");
    let daemon = DaemonProcess::start(&config(&moto, &sources, ""), &[]);
    let admin = daemon.admin_addr();
    let status = || std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let kb = |status: &str, field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    // What the daemon holds before the object arrives.
    while get(admin, "/readyz").0 != 200 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_kb = kb(&status(), "VmHWM:");
    rt.block_on(aws.send(&queue, &s3_notification("big", key)));
    let started = std::time::Instant::now();
    let mut processed = 0.0;
    while started.elapsed() < Duration::from_secs(240) {
        let page = get(admin, "/metrics").1;
        processed = metric(
            &page,
            "cloudwarden_events_processed_total",
            "source=\"big\"",
        );
        if processed >= f64::from(records) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(processed, f64::from(records));
    // One record of 200 MB, far over max_event_bytes, then a small one. The
    // object is made of gzip members, which inflate to one stream.
    let huge_key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/22/huge.json.gz";
    let gz = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let mut huge = gz(br#"{"Records":[{"eventVersion":"1.08","pad":""#);
    let megabyte = gz(&vec![b'x'; 1 << 20]);
    for _ in 0..200 {
        huge.extend_from_slice(&megabyte);
    }
    let after = record("after-huge", "quiet.amazonaws.com").to_string();
    huge.extend_from_slice(&gz(format!("\"}},{after}]}}").as_bytes()));
    rt.block_on(async {
        aws.put("big", huge_key, huge).await;
        aws.send(&queue, &s3_notification("big", huge_key)).await;
    });
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(240) {
        let page = get(admin, "/metrics").1;
        processed = metric(
            &page,
            "cloudwarden_events_processed_total",
            "source=\"big\"",
        );
        if processed > f64::from(records) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        processed,
        f64::from(records + 1),
        "the record after the huge one is read"
    );
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_events_rejected_total",
            "reason=\"too_large\""
        ),
        1.0,
        "{page}"
    );
    let peak_kb = kb(&status(), "VmHWM:");
    eprintln!("peak RSS {peak_kb} kB, idle {idle_kb} kB");
    // The object is ~104 MB uncompressed, the huge record 200 MB. Reading
    // them holds a channel's worth of records, a detection batch, the
    // eventIDs kept for dedup and the state store's 16 MiB cache: 55 MB
    // measured alone, 68 MB with the whole suite running beside it. The
    // bound is below the size of either input, so holding one of them
    // whole fails the test.
    assert!(
        peak_kb - idle_kb < 96 * 1024,
        "peak RSS {peak_kb} kB, idle {idle_kb} kB"
    );
}

#[test]
fn a_kill_in_the_middle_of_a_trail_file_loses_nothing_and_detects_nothing_twice() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    let records = 30_000;
    let queue = rt.block_on(async {
        aws.s3.create_bucket().bucket("org").send().await.unwrap();
        let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/22/long.json.gz";
        let ids = (0..records).map(|i| format!("k-{i:05}"));
        aws.put("org", key, trail_file(ids, "test.amazonaws.com"))
            .await;
        let queue = aws.queue("kill-files").await;
        aws.send(&queue, &s3_notification("org", key)).await;
        queue
    });
    // The shortest visibility timeout, so that the message comes back soon after the kill.
    let sources = format!(
        "[[sources]]\nkind = \"s3_sqs\"\nname = \"org\"\nqueue_url = \"{queue}\"\nvisibility_timeout = \"30s\"\n"
    );
    let daemon = DaemonProcess::start(&config(&moto, &sources, ""), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let before = by_event(&wait_for(&path, Duration::from_secs(60), |a| {
        a.len() >= 1000
    }))
    .len();
    let dir = daemon.into_dir();
    assert!(
        (1000..records).contains(&before),
        "killed after {before} of {records} events"
    );
    // The message is still in the queue, in flight until its visibility lapses.
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 1));
    let daemon = DaemonProcess::start_in(dir, &config(&moto, &sources, ""), &[]);
    let alerts = wait_for(&path, Duration::from_secs(180), |a| {
        by_event(a).len() >= records
    });
    let events = by_event(&alerts);
    assert_eq!(
        events.len(),
        records,
        "every record alerted: {:?}",
        daemon.logs().iter().rev().take(8).collect::<Vec<_>>()
    );
    let twice: Vec<_> = events.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "records detected twice: {twice:?}");
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_events_duplicate_total",
            "source=\"org\""
        ) >= before as f64,
        "what was committed before the kill is dropped as duplicates: {page}"
    );
    // Deleted only once every record was processed.
    let started = std::time::Instant::now();
    while rt.block_on(aws.left(&queue)) != (0, 0) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 0));
}

#[test]
fn set_aside_messages_can_be_listed_and_sent_back_once_the_daemon_is_stopped() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    let queue = rt.block_on(async {
        let queue = aws.queue("cloudtrail-events").await;
        // Not JSON: set aside at once.
        aws.send(&queue, "this is not an EventBridge event").await;
        queue
    });
    let sources = format!(
        "[[sources]]\nkind = \"eventbridge_sqs\"\nname = \"realtime\"\nqueue_url = \"{queue}\"\n"
    );
    let mut daemon = DaemonProcess::start(&config(&moto, &sources, ""), &[]);
    let config_path = daemon.dir().join("cloudwarden.toml").display().to_string();
    let mut set_aside = false;
    for _ in 0..60 {
        let page = get(daemon.admin_addr(), "/metrics").1;
        if metric(&page, "cloudwarden_source_messages_set_aside_total", "") >= 1.0 {
            set_aside = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(set_aside);
    // Counted once stored; the delete from the queue follows.
    let started = std::time::Instant::now();
    while rt.block_on(aws.left(&queue)) != (0, 0) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 0));
    // While the daemon holds the state file, the commands refuse and say why.
    let busy = support::process::run(&["queue", "list-set-aside", "--config", &config_path], &[]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("the daemon is running"),
        "{busy:?}"
    );
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    let listed = support::process::run(
        &[
            "queue",
            "list-set-aside",
            "--config",
            &config_path,
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["body"], "this is not an EventBridge event");
    assert_eq!(lines[0]["source"], "realtime");
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    let unknown =
        support::process::run(&["queue", "redrive", "--config", &config_path, "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    let redriven = support::process::run(&["queue", "redrive", "--config", &config_path, &id], &[]);
    assert_eq!(redriven.status.code(), Some(0), "{redriven:?}");
    // The body is back on the queue (visible, or taken by the stopped
    // daemon's last long poll, which the emulator still serves) ...
    let (visible, in_flight) = rt.block_on(aws.left(&queue));
    assert_eq!(visible + in_flight, 1, "{redriven:?}");
    // ... and no longer kept.
    let listed = support::process::run(&["queue", "list-set-aside", "--config", &config_path], &[]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("0 message(s) set aside"),
        "{listed:?}"
    );
}

#[test]
fn an_s3_outage_sets_nothing_aside_reports_not_ready_and_loses_nothing() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    // S3 is unreachable from the start; SQS works.
    let s3 = support::proxy::Proxy::start(moto.addr(), false);
    let bucket = "outage-trail";
    let prefix = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/22";
    let queue = rt.block_on(async {
        aws.s3.create_bucket().bucket(bucket).send().await.unwrap();
        let queue = aws.queue("outage-files").await;
        for f in 0..3 {
            let key = format!("{prefix}/f{f}.json.gz");
            let ids = (0..20).map(move |i| format!("o{f}-{i:02}"));
            aws.put(bucket, &key, trail_file(ids, "test.amazonaws.com"))
                .await;
            aws.send(&queue, &s3_notification(bucket, &key)).await;
        }
        queue
    });
    // With max_attempts = 1, the first counted failure would set a file aside.
    let sources = format!(
        "[[sources]]\nkind = \"s3_sqs\"\nname = \"org-trail\"\nqueue_url = \"{queue}\"\nmax_attempts = 1\n"
    );
    let extra = format!("[aws.endpoints]\ns3 = \"{}\"", s3.url());
    let daemon = DaemonProcess::start(&config(&moto, &sources, &extra), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let admin = daemon.admin_addr();
    // Every file fails again and again while S3 is away.
    let started = std::time::Instant::now();
    let failures = loop {
        let page = get(admin, "/metrics").1;
        let n = metric(
            &page,
            "cloudwarden_source_message_failures_total",
            "outcome=\"transient\"",
        );
        if n >= 6.0 || started.elapsed() > Duration::from_secs(90) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        failures >= 6.0,
        "each file failed at least twice: {failures}"
    );
    let (status, body) = get(admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("retrying: s3 GetObject failing (dispatch, transient)"),
        "{body}"
    );
    assert!(!body.contains("arn:") && !body.contains(bucket), "{body}");
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_messages_set_aside_total",
            "source=\"org-trail\""
        ),
        0.0
    );
    // S3 comes back: every record is read, once, and the source is ready.
    s3.on();
    let alerts = wait_for(&path, Duration::from_secs(120), |a| by_event(a).len() >= 60);
    assert_eq!(by_event(&alerts).len(), 60);
    let started = std::time::Instant::now();
    while rt.block_on(aws.left(&queue)) != (0, 0) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(rt.block_on(aws.left(&queue)), (0, 0));
    assert!(wait_delivered(admin, "file", Duration::from_secs(30)));
    let alerts = read(&path);
    assert!(by_event(&alerts).values().all(|ids| ids.len() == 1));
    assert_eq!(get(admin, "/readyz").0, 200);
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_messages_set_aside_total",
            "source=\"org-trail\""
        ),
        0.0
    );
}

#[test]
fn after_kill_nine_both_queue_sources_alert_what_was_in_flight_within_the_visibility_timeout() {
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    // S3 goes through a proxy that keeps the requests, to see the owner check.
    let s3 = support::proxy::Proxy::start(moto.addr(), true);
    let files = 8;
    let per_file = 1500;
    let envelopes = 200;
    let (trail, events) = rt.block_on(async {
        aws.s3.create_bucket().bucket("inflight").send().await.unwrap();
        let trail = aws.queue("inflight-files").await;
        let events = aws.queue("inflight-events").await;
        for f in 0..files {
            let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/22/f{f}.json.gz");
            let ids = (0..per_file).map(move |i| format!("f{f}-{i:04}"));
            aws.put("inflight", &key, trail_file(ids, "test.amazonaws.com")).await;
            aws.send(&trail, &s3_notification("inflight", &key)).await;
        }
        for i in 0..envelopes {
            let detail = record(&format!("e-{i:03}"), "test.amazonaws.com");
            let envelope = json!({"version": "0", "id": format!("env-{i}"), "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.test", "account": "123456789012", "time": detail["eventTime"], "region": "us-east-1",
                "resources": [], "detail": detail});
            aws.send(&events, &envelope.to_string()).await;
        }
        (trail, events)
    });
    // The default visibility timeout (20 s) and no buckets listed: any
    // bucket of the watched account.
    let sources = format!(
        "[[sources]]\nkind = \"s3_sqs\"\nname = \"files\"\nqueue_url = \"{trail}\"\n\n[[sources]]\nkind = \"eventbridge_sqs\"\nname = \"events\"\nqueue_url = \"{events}\"\n"
    );
    let extra = format!("[aws.endpoints]\ns3 = \"{}\"", s3.url());
    let daemon = DaemonProcess::start(&config(&moto, &sources, &extra), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let count = |alerts: &[serde_json::Value], prefix: &str| {
        by_event(alerts)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    };
    // Kill while both sources have messages in hand: files read in part,
    // events not all delivered.
    // The file source must hold a message when the kill comes: alerts are
    // delivered after the commit, so on a busy machine they can lag behind
    // the reading, and only the queue says what is in hand.
    let started = std::time::Instant::now();
    loop {
        let alerts = read(&path);
        let ready = count(&alerts, "f") >= 1
            && count(&alerts, "e-") >= 1
            && rt.block_on(aws.left(&trail)).1 >= 1;
        if ready || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = daemon.into_dir();
    let alerts = read(&path);
    let (files_before, events_before) = (count(&alerts, "f"), count(&alerts, "e-"));
    let total_files = files * per_file;
    assert!(
        files_before < total_files && events_before < envelopes,
        "killed in flight: {files_before} of {total_files} file records, {events_before} of {envelopes} events"
    );
    let in_flight = (
        rt.block_on(aws.left(&trail)).1,
        rt.block_on(aws.left(&events)).1,
    );
    assert!(
        in_flight.0 >= 1,
        "the file being read is in hand: {in_flight:?}"
    );
    eprintln!("in flight at the kill: {in_flight:?} (files, events)");
    let restarted = std::time::Instant::now();
    let daemon = DaemonProcess::start_in(dir, &config(&moto, &sources, &extra), &[]);
    let mut done: [Option<Duration>; 2] = [None, None];
    while restarted.elapsed() < Duration::from_secs(240) && done.iter().any(Option::is_none) {
        let alerts = read(&path);
        if done[0].is_none() && count(&alerts, "f") == total_files {
            done[0] = Some(restarted.elapsed());
        }
        if done[1].is_none() && count(&alerts, "e-") == envelopes {
            done[1] = Some(restarted.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let alerts = read(&path);
    eprintln!(
        "recovery after kill -9: s3_sqs every record alerted {:?} after restart, eventbridge_sqs {:?} (visibility timeout 20 s)",
        done[0], done[1]
    );
    assert_eq!(
        count(&alerts, "f"),
        total_files,
        "{:?}",
        daemon.logs().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert_eq!(count(&alerts, "e-"), envelopes);
    let twice: Vec<_> = by_event(&alerts)
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    assert!(twice.is_empty(), "records detected twice: {twice:?}");
    // Messages held by the killed process come back within the 20 s
    // visibility timeout, not the 5 minutes a long timeout would take; the
    // rest is reading time.
    for (source, took) in ["s3_sqs", "eventbridge_sqs"].iter().zip(done) {
        let took = took.expect("finished");
        assert!(took < Duration::from_secs(120), "{source} took {took:?}");
    }
    // Every GetObject named the watched account as the bucket's owner.
    let requests = s3.requests();
    let gets = requests.matches("GET /inflight/").count();
    assert!(gets >= files, "{gets} GetObject requests");
    assert_eq!(
        requests
            .to_lowercase()
            .matches("x-amz-expected-bucket-owner: 123456789012")
            .count(),
        gets,
        "every read checks the owner"
    );
}

/// A call by `user` at `time` (ms since the epoch), as a trail record.
fn call_at(id: &str, user: &str, name: &str, region: &str, time: i64) -> String {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{user}"), "accountId": "123456789012"},
        "eventTime": jiff::Timestamp::from_millisecond(time).unwrap().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": "s3.amazonaws.com", "eventName": name,
        "awsRegion": region, "sourceIPAddress": "203.0.113.10", "eventID": id,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012"
    })
    .to_string()
}

fn gzip_records(records: &[String]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes())
        .unwrap();
    gz.finish().unwrap()
}

/// (rule id, dedup key) of each anomaly alert.
fn anomaly_keys(alerts: impl IntoIterator<Item = serde_json::Value>) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = alerts
        .into_iter()
        .filter(|a| a["kind"] == "anomaly")
        .map(|a| {
            (
                a["rule"]["id"].as_str().unwrap_or_default().to_owned(),
                a["dedup_key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn anomalies_the_daemon_finds_across_a_restart_are_those_replay_finds() {
    const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules/anomaly");
    let now = jiff::Timestamp::now().as_millisecond();
    let minute = 60_000;
    // Two days of alice deleting twice every ten minutes in us-east-1.
    let history: Vec<String> = (0..288)
        .flat_map(|b| {
            let time = now - 3 * 24 * 60 * minute + b * 10 * minute;
            [0, 1].map(|i| {
                call_at(
                    &format!("h-{b}-{i}"),
                    "alice",
                    "DeleteObject",
                    "us-east-1",
                    time + i * minute,
                )
            })
        })
        .collect();
    // Then, an hour ago: alice in eu-west-3 and sixty deletions in two
    // minutes; bob, two hours old, does the same (too young to judge).
    let attack_start = now - 60 * minute;
    let mut attack = vec![call_at(
        "a-region",
        "alice",
        "ListBuckets",
        "eu-west-3",
        attack_start,
    )];
    for user in ["alice", "bob"] {
        attack.push(call_at(
            &format!("{user}-first"),
            user,
            "ListBuckets",
            "us-east-1",
            attack_start - 60 * minute,
        ));
        attack.extend((0..60).map(|i| {
            call_at(
                &format!("{user}-d{i}"),
                user,
                "DeleteObject",
                "us-east-1",
                attack_start + 1000 + i * 2000,
            )
        }));
    }
    attack.push(call_at(
        "b-region",
        "bob",
        "ListBuckets",
        "eu-west-3",
        attack_start + 3 * minute,
    ));
    attack.sort_by_key(|r| {
        serde_json::from_str::<serde_json::Value>(r).unwrap()["eventTime"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let (history_gz, attack_gz) = (gzip_records(&history), gzip_records(&attack));

    // Replay of both files.
    let scratch = tempfile::tempdir().unwrap();
    let files =
        [("0000Z_history", &history_gz), ("0100Z_attack", &attack_gz)].map(|(name, bytes)| {
            let path = scratch.path().join(format!(
                "123456789012_CloudTrail_us-east-1_20261201T{name}.json.gz"
            ));
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        });
    let config = scratch.path().join("c.toml");
    std::fs::write(&config, "[rules]\nbuiltin = false\n").unwrap();
    let output = support::process::run(
        &[
            "replay",
            "--config",
            &config.display().to_string(),
            "--rules",
            RULES,
            &files[0],
            &files[1],
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replayed = anomaly_keys(stdout.lines().filter_map(|l| serde_json::from_str(l).ok()));
    assert_eq!(
        replayed,
        vec![
            (
                "fixture-delete-burst".to_owned(),
                "fixture-delete-burst|arn:aws:iam::123456789012:user/alice".to_owned()
            ),
            (
                "fixture-new-region".to_owned(),
                "fixture-new-region|arn:aws:iam::123456789012:user/alice|eu-west-3".to_owned()
            ),
        ]
    );

    // The daemon, fed the same files through s3_sqs, stopped between them.
    let moto = Moto::start();
    let rt = runtime();
    let aws = rt.block_on(Aws::new(&moto));
    let queue = rt.block_on(async {
        aws.s3.create_bucket().bucket("trail").send().await.unwrap();
        aws.put(
            "trail",
            "AWSLogs/123456789012/CloudTrail/us-east-1/history.json.gz",
            history_gz,
        )
        .await;
        aws.put(
            "trail",
            "AWSLogs/123456789012/CloudTrail/us-east-1/attack.json.gz",
            attack_gz,
        )
        .await;
        aws.queue("anomaly-files").await
    });
    let sources =
        format!("[[sources]]\nkind = \"s3_sqs\"\nname = \"trail\"\nqueue_url = \"{queue}\"\n");
    let config = daemon_config(&moto.endpoint(), "", RULES, EVERY_ALERT_TO_FILE, &sources);
    let processed = |daemon: &DaemonProcess, want: usize| {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            let page = get(daemon.admin_addr(), "/metrics").1;
            if metric(
                &page,
                "cloudwarden_events_processed_total",
                "source=\"trail\"",
            ) >= want as f64
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the daemon did not process {want} events: {}",
            daemon.stderr()
        );
    };
    let mut daemon = DaemonProcess::start(&config, &[]);
    rt.block_on(aws.send(
        &queue,
        &s3_notification(
            "trail",
            "AWSLogs/123456789012/CloudTrail/us-east-1/history.json.gz",
        ),
    ));
    processed(&daemon, history.len());
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(30)).is_some());
    let dir = daemon.into_dir();
    let alerts_path = dir.path().join("alerts.jsonl");
    assert!(
        anomaly_keys(read(&alerts_path)).is_empty(),
        "history alone is usual"
    );
    let daemon = DaemonProcess::start_in(dir, &config, &[]);
    let restored = daemon
        .wait_for_log("detection state restored", Duration::from_secs(30))
        .expect("detection restores its state");
    assert!(
        restored.contains(r#""anomaly_groups":2"#),
        "alice's two groups: {restored}"
    );
    rt.block_on(aws.send(
        &queue,
        &s3_notification(
            "trail",
            "AWSLogs/123456789012/CloudTrail/us-east-1/attack.json.gz",
        ),
    ));
    processed(&daemon, attack.len());
    let delivered = wait_for(&alerts_path, Duration::from_secs(30), |alerts| {
        anomaly_keys(alerts.iter().cloned()).len() >= replayed.len()
    });
    assert_eq!(anomaly_keys(delivered), replayed);
}
