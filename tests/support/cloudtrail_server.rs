//! A faithful stand-in for CloudTrail's LookupEvents, which no emulator
//! implements. It speaks the real wire protocol (AWS JSON 1.1: a POST with
//! `X-Amz-Target: ...CloudTrail_20131101.LookupEvents`), so the daemon's real
//! SDK client talks to it unchanged: it reads the Region from the SigV4
//! credential scope, filters by StartTime/EndTime and the EventSource lookup
//! attribute, returns pages of at most MaxResults (50) newest first with a
//! NextToken, and answers ThrottlingException when told to.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

/// One call the server answered.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// The Region the client signed for.
    pub region: String,
    /// Whether it was throttled.
    pub throttled: bool,
    /// Events returned.
    pub events: usize,
    /// The page asked for (`NextToken`), none for the first.
    pub token: Option<String>,
}

#[derive(Default)]
struct State {
    /// (Region, event time in seconds, record)
    events: Vec<(String, i64, Value)>,
    calls: Vec<Call>,
    throttle_next: usize,
    throttle_every: Option<usize>,
    /// Calls numbered in this range (from 1) are throttled.
    throttle_calls: std::ops::Range<usize>,
}

/// A running server; it stops with the test process.
#[derive(Clone)]
pub struct CloudTrailServer {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
}

impl CloudTrailServer {
    /// Starts on a free loopback port.
    pub fn start() -> CloudTrailServer {
        Self::start_on(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    /// Starts on `listener` (a port chosen earlier, to test a late start).
    pub fn start_on(listener: std::net::TcpListener) -> CloudTrailServer {
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().route(
                    "/",
                    post(move |headers: HeaderMap, body: Bytes| {
                        let state = Arc::clone(&shared);
                        async move { handle(&state, &headers, &body) }
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        });
        CloudTrailServer { state, addr }
    }

    /// The endpoint URL for `aws.endpoints.cloudtrail`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a record (its eventTime, eventID and eventSource are read from it).
    pub fn add(&self, region: &str, record: Value) {
        let time = record["eventTime"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        self.state
            .lock()
            .unwrap()
            .events
            .push((region.to_owned(), time, record));
    }

    /// Adds a record as raw text (which may not be JSON at all) at `time` (Unix seconds).
    pub fn add_raw(&self, region: &str, time: i64, text: &str) {
        self.state.lock().unwrap().events.push((
            region.to_owned(),
            time,
            Value::String(text.to_owned()),
        ));
    }

    /// The next `n` calls are throttled.
    pub fn throttle_next(&self, n: usize) {
        self.state.lock().unwrap().throttle_next = n;
    }

    /// Every `n`-th call is throttled.
    pub fn throttle_every(&self, n: usize) {
        self.state.lock().unwrap().throttle_every = Some(n);
    }

    /// The calls numbered in `calls` (the first call is 1) are throttled.
    pub fn throttle_calls(&self, calls: std::ops::Range<usize>) {
        self.state.lock().unwrap().throttle_calls = calls;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn region_of(headers: &HeaderMap) -> String {
    // Authorization: AWS4-HMAC-SHA256 Credential=KEY/20261101/us-east-1/cloudtrail/aws4_request, ...
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_owned()
}

fn error(status: StatusCode, kind: &str, message: &str) -> axum::response::Response {
    let body =
        json!({"__type": format!("com.amazonaws.cloudtrail.v20131101#{kind}"), "message": message});
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn handle(state: &Mutex<State>, headers: &HeaderMap, body: &[u8]) -> axum::response::Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !target.ends_with(".LookupEvents") {
        return error(StatusCode::BAD_REQUEST, "UnknownOperationException", target);
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "bad JSON",
        );
    };
    let region = region_of(headers);
    let mut state = state.lock().unwrap();
    let n = state.calls.len() + 1;
    let throttle = if state.throttle_next > 0 {
        state.throttle_next -= 1;
        true
    } else {
        state.throttle_every.is_some_and(|every| n % every == 0)
            || state.throttle_calls.contains(&n)
    };
    let token = request
        .get("NextToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if throttle {
        state.calls.push(Call {
            at: Instant::now(),
            region,
            throttled: true,
            events: 0,
            token,
        });
        return error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        );
    }
    let seconds = |key: &str| request.get(key).and_then(Value::as_f64).map(|s| s as i64);
    let start = seconds("StartTime").unwrap_or(i64::MIN);
    let end = seconds("EndTime").unwrap_or(i64::MAX);
    let max = request
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(50)
        .min(50) as usize;
    let offset: usize = request
        .get("NextToken")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let source = request
        .pointer("/LookupAttributes/0")
        .filter(|a| a.get("AttributeKey").and_then(Value::as_str) == Some("EventSource"))
        .and_then(|a| a.get("AttributeValue"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut matching: Vec<&(String, i64, Value)> = state
        .events
        .iter()
        .filter(|(r, t, e)| {
            *r == region
                && *t >= start
                && *t <= end
                && source.as_deref().is_none_or(|s| e["eventSource"] == s)
        })
        .collect();
    // Newest first, as CloudTrail returns them.
    matching.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.2["eventID"].as_str().cmp(&a.2["eventID"].as_str()))
    });
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(max)
        .map(|(_, time, record)| {
            json!({
                "EventId": record["eventID"],
                "EventName": record["eventName"],
                "EventSource": record["eventSource"],
                "EventTime": *time as f64,
                "ReadOnly": "false",
                "Resources": [],
                "CloudTrailEvent": record.as_str().map_or_else(|| record.to_string(), str::to_owned),
            })
        })
        .collect();
    let next = (offset + max < matching.len()).then(|| format!("page-{}", offset + max));
    let events = page.len();
    state.calls.push(Call {
        at: Instant::now(),
        region,
        throttled: false,
        events,
        token,
    });
    let mut out = json!({ "Events": page });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        out.to_string(),
    )
        .into_response()
}
