//! Record reading over every layout, compressed or not, whole or broken.

use std::io::{Read, Write};

use super::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

type Seen = Vec<(Position, Result<String, Reason>)>;

fn collect(input: impl Read, max: usize) -> (ReadSummary, Seen) {
    let mut out = Vec::new();
    let summary = read_records(input, Limits::records(max), |r| {
        out.push((r.position, r.text.map(str::to_owned).map_err(|e| e.reason)));
        Flow::Continue
    });
    (summary, out)
}

/// A reader that hands out one byte per call, like a slow pipe.
struct Trickle(Vec<u8>, usize);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1 >= self.0.len() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[self.1];
        self.1 += 1;
        Ok(1)
    }
}

const TRAIL: &str = r#"{"Records":[{"eventName":"A","n":[1,{"x":"]"}]},{"eventName":"B"}]}"#;

#[test]
fn trail_files_plain_gzipped_and_trickled() {
    for input in [TRAIL.as_bytes().to_vec(), gzip(TRAIL.as_bytes())] {
        let (summary, records) = collect(input.as_slice(), 1000);
        assert_eq!(summary.layout, Layout::TrailFile);
        assert_eq!(summary.records, 2);
        assert_eq!(records[0].0, Position::Index(0));
        assert_eq!(records[1].1.as_deref(), Ok(r#"{"eventName":"B"}"#));
    }
    let (summary, records) = collect(Trickle(TRAIL.as_bytes().to_vec(), 0), 1000);
    assert_eq!((summary.layout, records.len()), (Layout::TrailFile, 2));
    // Keys around Records are ignored, whatever their order.
    let other = r#"{"Digest":{"a":1},"Records":[{"eventName":"C"}],"More":[1,2]}"#;
    assert_eq!(detect_layout(other.as_bytes()), Layout::Lines);
    let spaced = " \n{ \"Records\" : [ {\"eventName\":\"C\"} ] }";
    let (summary, records) = collect(spaced.as_bytes(), 1000);
    assert_eq!((summary.layout, records.len()), (Layout::TrailFile, 1));
}

#[test]
fn arrays_and_ndjson() {
    let (summary, records) = collect(r#"[{"a":1}, {"b":2}]"#.as_bytes(), 1000);
    assert_eq!((summary.layout, summary.records), (Layout::Array, 2));
    assert_eq!(records[1].1.as_deref(), Ok(r#"{"b":2}"#));
    let ndjson = "{\"a\":1}\r\n\n   \n{\"b\":2}\n{\"c\":3}";
    let (summary, records) = collect(ndjson.as_bytes(), 1000);
    assert_eq!(summary.layout, Layout::Lines);
    let positions: Vec<Position> = records.iter().map(|r| r.0).collect();
    assert_eq!(
        positions,
        [Position::Line(1), Position::Line(4), Position::Line(5)]
    );
    assert_eq!(records[0].1.as_deref(), Ok("{\"a\":1}"));
    assert_eq!(collect("".as_bytes(), 10).0.layout, Layout::Empty);
}

#[test]
fn bad_lines_are_rejected_one_by_one() {
    let mut bytes = b"{\"a\":1}\n".to_vec();
    bytes.extend_from_slice(b"{\"bad\":\"\xff\xfe\"}\n");
    bytes.extend_from_slice(format!("{{\"big\":\"{}\"}}\n", "x".repeat(5000)).as_bytes());
    bytes.extend_from_slice(b"{\"b\":2}\n");
    let (_, records) = collect(bytes.as_slice(), 100);
    let outcome: Vec<Result<&str, Reason>> = records
        .iter()
        .map(|r| r.1.as_deref().map_err(|e| *e))
        .collect();
    assert_eq!(
        outcome,
        [
            Ok("{\"a\":1}"),
            Err(Reason::InvalidUtf8),
            Err(Reason::TooLarge),
            Ok("{\"b\":2}")
        ]
    );
    assert_eq!(records[3].0, Position::Line(4));
}

#[test]
fn a_truncated_file_keeps_what_came_before() {
    let many: Vec<String> = (0..2000)
        .map(|i| format!("{{\"eventName\":\"E{i}\",\"pad\":\"{}\"}}", "p".repeat(50)))
        .collect();
    let trail = format!("{{\"Records\":[{}]}}", many.join(","));
    let compressed = gzip(trail.as_bytes());
    let cut = &compressed[..compressed.len() / 2];
    let (_, records) = collect(cut, 10_000);
    let good = records.iter().filter(|r| r.1.is_ok()).count();
    assert!(good > 100, "{good} records before the cut");
    let last = records.last().unwrap();
    assert_eq!(last.1, Err(Reason::Unreadable));
    let ndjson = many.join("\n");
    let compressed = gzip(ndjson.as_bytes());
    let (_, records) = collect(&compressed[..compressed.len() / 2], 10_000);
    assert!(records.iter().filter(|r| r.1.is_ok()).count() > 100);
    assert_eq!(records.last().unwrap().1, Err(Reason::Unreadable));
}

#[test]
fn the_callback_can_stop_the_read() {
    let mut seen = 0;
    let summary = read_records(TRAIL.as_bytes(), Limits::records(1000), |_| {
        seen += 1;
        Flow::Stop
    });
    assert!(summary.stopped);
    assert_eq!(seen, 1);
}

/// A trail file whose first record is `size` bytes, made as it is read.
struct HugeRecord {
    head: Vec<u8>,
    size: usize,
    tail: Vec<u8>,
    at: usize,
}

impl HugeRecord {
    fn new(size: usize) -> HugeRecord {
        let head = br#"{"Records":[{"eventName":"Huge","pad":""#.to_vec();
        let tail = br#""},{"eventName":"After","n":[1,"]\"}"]}]}"#.to_vec();
        HugeRecord {
            size: size - head.len() + r#"{"Records":["#.len() - 2,
            head,
            tail,
            at: 0,
        }
    }
}

impl Read for HugeRecord {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (head, fill) = (self.head.len(), self.head.len() + self.size);
        let n = if self.at < head {
            let n = (head - self.at).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            n
        } else if self.at < fill {
            let n = (fill - self.at).min(buf.len());
            buf[..n].fill(b'x');
            n
        } else {
            let from = self.at - fill;
            let n = (self.tail.len() - from).min(buf.len());
            buf[..n].copy_from_slice(&self.tail[from..from + n]);
            n
        };
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_record_over_the_limit_is_measured_and_skipped_and_the_next_one_read() {
    let size = 3 * 1024 * 1024;
    let (summary, records) = collect(HugeRecord::new(size), 1000);
    assert_eq!(summary.records, 2);
    let Err(reason) = &records[0].1 else {
        panic!("{:?}", records[0])
    };
    assert_eq!(*reason, Reason::TooLarge);
    assert_eq!(
        records[1].1.as_deref(),
        Ok(r#"{"eventName":"After","n":[1,"]\"}"]}"#)
    );
    // The rejection says the record's true size, found without holding it.
    let mut detail = String::new();
    read_records(HugeRecord::new(size), Limits::records(1000), |r| {
        if let Err(e) = r.text {
            detail = e.detail;
        }
        Flow::Continue
    });
    assert_eq!(detail, format!("{size} bytes, more than the limit of 1000"));
}

#[test]
fn framing_errors_say_where_and_keep_what_came_before() {
    let cases = [
        (
            r#"{"Records":[{"a":1} {"b":2}]}"#,
            "expected `,` or `]` at byte 20, found `{`",
        ),
        (
            r#"{"Records":[{"a":1},]}"#,
            "expected a value at byte 20, found `]`",
        ),
        (
            r#"{"Records":[{"a":1}]} trailing"#,
            "expected the end of the file at byte 22, found `t`",
        ),
        (
            r#"{"Records":[{"a":"unterminated"#,
            "expected the rest of the value at byte 30, found the end of the file",
        ),
    ];
    for (text, expected) in cases {
        let mut details = Vec::new();
        let mut good = 0;
        read_records(text.as_bytes(), Limits::records(1000), |r| {
            match r.text {
                Ok(_) => good += 1,
                Err(e) => details.push((e.reason, e.detail)),
            }
            Flow::Continue
        });
        assert_eq!(details.len(), 1, "{text}: {details:?}");
        assert_eq!(details[0].0, Reason::Unreadable);
        assert!(details[0].1.ends_with(expected), "{text}: {details:?}");
        assert_eq!(good, usize::from(!text.contains("unterminated")), "{text}");
    }
    // A byte-order mark, other keys after Records, and strings with
    // brackets and escaped quotes do not confuse the cut.
    let text = "\u{feff}{\"Records\":[{\"k\":\"a\\\"}\"},\"str\",12.5e3,null],\"After\":[{}]}";
    let (_, records) = collect(text.as_bytes(), 1000);
    let texts: Vec<_> = records.iter().map(|r| r.1.clone().unwrap()).collect();
    assert_eq!(texts, [r#"{"k":"a\"}"}"#, r#""str""#, "12.5e3", "null"]);
}

#[test]
fn decompression_stops_at_the_limit() {
    // Gzip members one after another inflate to one stream: a small object
    // can inflate far beyond its size.
    let record = format!("{{\"eventName\":\"E\",\"pad\":\"{}\"}}", "p".repeat(1000));
    let mut bomb = gzip(b"{\"Records\":[");
    let member = gzip(format!("{record},").repeat(100).as_bytes());
    for _ in 0..100 {
        bomb.extend_from_slice(&member);
    }
    bomb.extend_from_slice(&gzip(format!("{record}]}}").as_bytes()));
    let inflated = 100 * 100 * (record.len() + 1);
    let limits = Limits {
        record_bytes: 10_000,
        decompressed_bytes: 1024 * 1024,
    };
    let mut good = 0;
    let mut last = None;
    let summary = read_records(bomb.as_slice(), limits, |r| {
        match r.text {
            Ok(_) => good += 1,
            Err(e) => last = Some(e),
        }
        Flow::Continue
    });
    assert!(summary.gzip);
    let last = last.expect("the read ends with a rejection");
    assert_eq!(last.reason, Reason::Unreadable);
    assert!(
        last.detail
            .contains("more than 1048576 bytes once decompressed"),
        "{}",
        last.detail
    );
    // What came before the limit is read; nothing past it.
    let per_record = record.len() + 1;
    assert!(
        (900..=1024 * 1024 / per_record).contains(&good),
        "{good} of {} records",
        inflated / per_record
    );
    // Without the limit, every record is read.
    let all = read_records(bomb.as_slice(), Limits::records(10_000), |_| Flow::Continue);
    assert_eq!(all.records, 100 * 100 + 1);
}
