//! Reading CloudTrail records out of files and objects, one at a time.
//!
//! CloudTrail writes S3 trail files as one JSON object `{"Records":[...]}`,
//! usually gzip-compressed; exports and tools write JSON arrays or NDJSON.
//! [`read_records`] recognises all of them (gzip by its magic bytes, the
//! layout by the first bytes of JSON) and hands records to a callback one
//! by one, so memory holds one record, never the whole file. A record that
//! is not UTF-8 or too large, and a file that breaks off (truncated gzip,
//! bad JSON framing), are reported as rejections with their position; the
//! records before them are not lost.

mod framing;
mod scan;

use std::io::{BufRead, BufReader, Read};

pub use framing::{Layout, detect_layout};

use crate::detection::event::{Reason, Rejection};

/// Where a record was in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of an NDJSON file.
    Line(u64),
    /// 0-based index in a JSON array or in `Records`.
    Index(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Index(n) => write!(f, "record {n}"),
        }
    }
}

/// One record read, or why it could not be. The text is borrowed from the
/// reader's buffer: copy it to keep it past the callback.
#[derive(Debug)]
pub struct Record<'a> {
    /// Where it was.
    pub position: Position,
    /// Its text, or why it was rejected.
    pub text: Result<&'a str, Rejection>,
}

/// The callback's answer: go on, or stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next record.
    Continue,
    /// Stop here.
    Stop,
}

/// What a whole read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    /// The layout found.
    pub layout: Layout,
    /// Whether the data was gzip-compressed.
    pub gzip: bool,
    /// Records handed to the callback (rejected ones included).
    pub records: u64,
    /// Whether the callback stopped the read.
    pub stopped: bool,
}

/// The text of a string field of a JSON record, found without parsing it:
/// `quoted_key` is the key with its quotes (`"\"eventID\""`). The first
/// occurrence counts, so it is for fields a record has once at its top
/// level, read where only order or identity matters (never for detection).
pub fn string_field<'t>(text: &'t str, quoted_key: &str) -> Option<&'t str> {
    let at = memchr::memmem::find(text.as_bytes(), quoted_key.as_bytes())?;
    let rest = text.get(at + quoted_key.len()..)?.trim_start();
    let value = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    value.get(..value.find('"')?)
}

/// How much of its input a read may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The size of one record; a larger one is rejected as too large.
    pub record_bytes: usize,
    /// The size of gzip-compressed input once decompressed. Reaching it
    /// ends the read with an unreadable record, so a small object that
    /// inflates without end (a gzip bomb) costs bounded work.
    pub decompressed_bytes: u64,
}

impl Limits {
    /// Records of at most `record_bytes`, with no limit on decompression,
    /// for input the user chose (replay, files on disk).
    pub fn records(record_bytes: usize) -> Limits {
        Limits {
            record_bytes,
            decompressed_bytes: u64::MAX,
        }
    }
}

/// Reads every record of `input` into `each`, within `limits`.
pub fn read_records(
    input: impl Read,
    limits: Limits,
    mut each: impl FnMut(Record<'_>) -> Flow,
) -> ReadSummary {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    let gzip = matches!(buffered.fill_buf(), Ok([0x1f, 0x8b, ..]));
    if gzip {
        let decoder = Bounded {
            inner: flate2::bufread::MultiGzDecoder::new(buffered),
            left: limits.decompressed_bytes,
            limit: limits.decompressed_bytes,
        };
        let mut inner = BufReader::with_capacity(256 * 1024, decoder);
        let mut summary = framing::read(&mut inner, limits.record_bytes, &mut each);
        summary.gzip = true;
        summary
    } else {
        framing::read(&mut buffered, limits.record_bytes, &mut each)
    }
}

/// What the read's last rejection says when decompression reached
/// [`Limits::decompressed_bytes`].
pub const DECOMPRESSED_LIMIT: &str = "bytes once decompressed, the limit";

/// A reader that fails once it has handed out `limit` bytes and has more.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One byte more than the limit tells "exactly at" from "beyond".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "more than {} {DECOMPRESSED_LIMIT}",
                    self.limit
                ))),
            };
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A rejection for a part of a file that could not be read.
pub(crate) fn unreadable(detail: String) -> Rejection {
    Rejection {
        reason: Reason::Unreadable,
        detail,
    }
}

#[cfg(test)]
mod tests;
