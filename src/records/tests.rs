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
    let summary = read_records(input, max, |r| {
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
    let summary = read_records(TRAIL.as_bytes(), 1000, |_| {
        seen += 1;
        Flow::Stop
    });
    assert!(summary.stopped);
    assert_eq!(seen, 1);
}
