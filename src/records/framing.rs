//! Recognising how records are laid out in a file, and splitting them.

use std::io::{BufRead, Read};

use super::scan::{Framing, Scanner};
use super::{Flow, Position, ReadSummary, Record, unreadable};
use crate::detection::event::{Reason, Rejection};

/// How records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An S3 trail file: `{"Records":[...]}`.
    TrailFile,
    /// A JSON array of records.
    Array,
    /// One record per line.
    Lines,
    /// Nothing but whitespace.
    Empty,
}

/// Tells the layout from the first bytes of (decompressed) text.
pub fn detect_layout(head: &[u8]) -> Layout {
    let text = trim_start(head);
    match text.first() {
        None => Layout::Empty,
        Some(b'[') => Layout::Array,
        Some(b'{') => {
            let inner = trim_start(&text[1..]);
            if inner.starts_with(b"\"Records\"") {
                Layout::TrailFile
            } else {
                Layout::Lines
            }
        }
        Some(_) => Layout::Lines,
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0xef && *b != 0xbb && *b != 0xbf)
        .unwrap_or(bytes.len());
    &bytes[skip..]
}

pub(super) fn read(
    input: &mut dyn BufRead,
    max_bytes: usize,
    each: &mut dyn FnMut(Record<'_>) -> Flow,
) -> ReadSummary {
    // The layout shows in the first bytes; a pipe may deliver fewer at
    // first, so collect enough of them before deciding.
    let mut head = Vec::with_capacity(HEAD);
    let mut failure = None;
    while head.len() < HEAD {
        match input.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => {
                let take = chunk.len().min(HEAD - head.len());
                head.extend_from_slice(&chunk[..take]);
                input.consume(take);
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if let Some(err) = failure.filter(|_| head.is_empty()) {
        let record = Record {
            position: Position::Index(0),
            text: Err(unreadable(format!("cannot read: {err}"))),
        };
        let stopped = each(record) == Flow::Stop;
        return ReadSummary {
            layout: Layout::Empty,
            gzip: false,
            records: 1,
            stopped,
        };
    }
    let layout = detect_layout(&head);
    let mut whole = std::io::Cursor::new(head).chain(input);
    let (records, stopped) = match layout {
        Layout::Empty => (0, false),
        Layout::Lines => lines(&mut whole, max_bytes, each),
        Layout::Array | Layout::TrailFile => json(&mut whole, layout, max_bytes, each),
    };
    ReadSummary {
        layout,
        gzip: false,
        records,
        stopped,
    }
}

/// Bytes looked at to tell the layout.
const HEAD: usize = 64;

/// NDJSON: each non-blank line is a record. A line longer than the limit is
/// rejected without holding more than the limit of it in memory.
fn lines(
    input: &mut dyn BufRead,
    max_bytes: usize,
    each: &mut dyn FnMut(Record<'_>) -> Flow,
) -> (u64, bool) {
    let mut line_no = 0u64;
    let mut records = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.clear();
        line_no += 1;
        let mut overflow = false;
        let mut ended = false;
        let mut line_len = 0usize;
        loop {
            let chunk = match input.fill_buf() {
                Ok(chunk) => chunk,
                Err(err) => {
                    records += 1;
                    let record = Record {
                        position: Position::Line(line_no),
                        text: Err(unreadable(format!(
                            "the file breaks off at line {line_no}: {err}"
                        ))),
                    };
                    let stop = each(record) == Flow::Stop;
                    return (records, stop);
                }
            };
            if chunk.is_empty() {
                ended = true;
                break;
            }
            let (take, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            // Only the line's own bytes count, not its newline.
            let content = take - usize::from(found);
            line_len += content;
            if line_len > max_bytes {
                overflow = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..content]);
            }
            input.consume(take);
            if found {
                break;
            }
        }
        if ended && buf.is_empty() && !overflow {
            return (records, false);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) && !overflow {
            if ended {
                return (records, false);
            }
            continue;
        }
        records += 1;
        let text = if overflow {
            Err(Rejection {
                reason: Reason::TooLarge,
                detail: format!("line longer than the limit of {max_bytes} bytes"),
            })
        } else {
            std::str::from_utf8(&buf).map_err(|err| Rejection {
                reason: Reason::InvalidUtf8,
                detail: format!("not UTF-8 at byte {}", err.valid_up_to()),
            })
        };
        let record = Record {
            position: Position::Line(line_no),
            text,
        };
        if each(record) == Flow::Stop {
            return (records, true);
        }
        if ended {
            return (records, false);
        }
    }
}

/// A JSON array, or the `Records` array of a trail file, streamed element by
/// element. Each element is cut out by its brackets and quotes alone, so a
/// record larger than `max_bytes` is skipped while holding no more than
/// `max_bytes` of it; detection parses (and so checks) each record it keeps.
fn json(
    input: &mut dyn BufRead,
    layout: Layout,
    max_bytes: usize,
    each: &mut dyn FnMut(Record<'_>) -> Flow,
) -> (u64, bool) {
    let mut state = Streaming {
        each,
        max_bytes,
        index: 0,
        stopped: false,
        buf: Vec::new(),
    };
    let mut scanner = Scanner::new(input);
    let result = match layout {
        Layout::TrailFile => trail_file(&mut scanner, &mut state),
        _ => elements(&mut scanner, &mut state),
    }
    .and_then(|()| if state.stopped { Ok(()) } else { scanner.end() });
    if let Err(err) = result {
        if !state.stopped {
            let index = state.index;
            state.index += 1;
            let record = Record {
                position: Position::Index(index),
                text: Err(unreadable(format!(
                    "the file cannot be read past record {index}: {err}"
                ))),
            };
            state.stopped = (state.each)(record) == Flow::Stop;
        }
    }
    (state.index, state.stopped)
}

struct Streaming<'a> {
    each: &'a mut dyn FnMut(Record<'_>) -> Flow,
    max_bytes: usize,
    index: u64,
    stopped: bool,
    buf: Vec<u8>,
}

/// `{"Records": [...], ...}`: the records array is streamed, other keys skipped.
fn trail_file(scanner: &mut Scanner<'_>, state: &mut Streaming<'_>) -> Result<(), Framing> {
    scanner.require(b'{')?;
    if scanner.peek()? == Some(b'}') {
        scanner.bump();
        return Ok(());
    }
    let mut key = Vec::new();
    loop {
        // Keys of interest are short; a long key is cut to its first bytes.
        scanner.value(KEY_BYTES, &mut key)?;
        scanner.require(b':')?;
        if key == b"\"Records\"" && !state.stopped {
            elements(scanner, state)?;
            if state.stopped {
                return Ok(());
            }
        } else {
            scanner.value(0, &mut key)?;
        }
        match scanner.next_byte()? {
            Some(b',') => {}
            Some(b'}') => return Ok(()),
            other => return Err(scanner.unexpected(other, "`,` or `}`")),
        }
    }
}

/// Bytes of an object key kept to compare it.
const KEY_BYTES: usize = 64;

/// `[...]`, each element handed to the callback in turn.
fn elements(scanner: &mut Scanner<'_>, state: &mut Streaming<'_>) -> Result<(), Framing> {
    scanner.require(b'[')?;
    if scanner.peek()? == Some(b']') {
        scanner.bump();
        return Ok(());
    }
    loop {
        let whole = scanner.value(state.max_bytes, &mut state.buf)?;
        let text = if whole > state.max_bytes {
            Err(Rejection {
                reason: Reason::TooLarge,
                detail: format!("{whole} bytes, more than the limit of {}", state.max_bytes),
            })
        } else {
            std::str::from_utf8(&state.buf).map_err(|err| Rejection {
                reason: Reason::InvalidUtf8,
                detail: format!("not UTF-8 at byte {}", err.valid_up_to()),
            })
        };
        let record = Record {
            position: Position::Index(state.index),
            text,
        };
        state.index += 1;
        if (state.each)(record) == Flow::Stop {
            // Stopping early leaves the rest unread: that is not a framing error.
            state.stopped = true;
            return Ok(());
        }
        match scanner.next_byte()? {
            Some(b',') => {}
            Some(b']') => return Ok(()),
            other => return Err(scanner.unexpected(other, "`,` or `]`")),
        }
    }
}
