//! Cutting JSON values out of a stream by their brackets and quotes, without
//! parsing them.
//!
//! A trail file is one JSON object whose `Records` array holds every record.
//! A full parser must hold a whole element before it can hand it on, so one
//! huge record would be buffered whole. The scanner instead follows only
//! strings (with their escapes) and nesting, keeps at most the caller's
//! limit of a value's bytes, and reports the value's full length, so an
//! oversized record is skipped with bounded memory. What is inside a value
//! is left for the record parser to check.

use std::io::{BufRead, ErrorKind};

/// Why the stream cannot be split further.
#[derive(Debug, thiserror::Error)]
pub enum Framing {
    /// The bytes do not continue the structure.
    #[error("expected {expected} at byte {at}, found {}", found.map_or_else(|| "the end of the file".to_owned(), |b| format!("`{}`", char::from(b).escape_default())))]
    Unexpected {
        /// The byte found, or `None` at the end of the input.
        found: Option<u8>,
        /// What the structure needs there.
        expected: &'static str,
        /// The byte offset in the (decompressed) input.
        at: u64,
    },
    /// Reading failed (a broken download, a truncated gzip stream, a size limit).
    #[error("cannot read at byte {at}: {source}")]
    Io {
        /// The reader's error.
        source: std::io::Error,
        /// The byte offset in the (decompressed) input.
        at: u64,
    },
}

/// A position in a stream of JSON, moved by whole values and single bytes.
pub struct Scanner<'r> {
    input: &'r mut dyn BufRead,
    at: u64,
    /// Where the byte [`Scanner::peek`] last returned is.
    peeked: u64,
}

impl<'r> Scanner<'r> {
    /// Scans `input` from its current position.
    pub fn new(input: &'r mut dyn BufRead) -> Scanner<'r> {
        Scanner {
            input,
            at: 0,
            peeked: 0,
        }
    }

    fn fill(&mut self) -> Result<&[u8], Framing> {
        loop {
            match self.input.fill_buf() {
                Ok(_) => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Framing::Io {
                        source,
                        at: self.at,
                    });
                }
            }
        }
        // Filled above: asking again returns the same buffer, and reads
        // (nothing) again only when it is empty, at the end of the input.
        self.input.fill_buf().map_err(|source| Framing::Io {
            source,
            at: self.at,
        })
    }

    fn consume(&mut self, n: usize) {
        self.input.consume(n);
        self.at += n as u64;
    }

    /// The next byte that is not JSON whitespace (a byte-order mark at the
    /// very start counts as whitespace), without taking it.
    pub fn peek(&mut self) -> Result<Option<u8>, Framing> {
        loop {
            let start = self.at == 0;
            let chunk = self.fill()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let bom = if start && chunk.starts_with(b"\xef\xbb\xbf") {
                3
            } else {
                0
            };
            let skip = chunk[bom..]
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            match skip {
                Some(i) => {
                    let (byte, n) = (chunk[bom + i], bom + i);
                    self.consume(n);
                    self.peeked = self.at;
                    return Ok(Some(byte));
                }
                None => {
                    let n = chunk.len();
                    self.consume(n);
                }
            }
        }
    }

    /// Takes the byte [`Scanner::peek`] returned.
    pub fn bump(&mut self) {
        self.consume(1);
    }

    /// Takes the next byte that is not whitespace.
    pub fn next_byte(&mut self) -> Result<Option<u8>, Framing> {
        let byte = self.peek()?;
        if byte.is_some() {
            self.bump();
        }
        Ok(byte)
    }

    /// Takes `byte`, or says what came instead.
    pub fn require(&mut self, byte: u8) -> Result<(), Framing> {
        let expected = match byte {
            b'{' => "`{`",
            b'[' => "`[`",
            b':' => "`:`",
            _ => "a delimiter",
        };
        match self.next_byte()? {
            Some(found) if found == byte => Ok(()),
            other => Err(self.unexpected(other, expected)),
        }
    }

    /// An error for `found` where `expected` belonged, at the current offset.
    pub fn unexpected(&self, found: Option<u8>, expected: &'static str) -> Framing {
        Framing::Unexpected {
            found,
            expected,
            at: if found.is_some() {
                self.peeked
            } else {
                self.at
            },
        }
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Result<(), Framing> {
        match self.peek()? {
            None => Ok(()),
            found => Err(self.unexpected(found, "the end of the file")),
        }
    }

    /// Takes one whole value and returns its length in bytes. `out` holds
    /// the value when it is at most `max` bytes long, and is empty otherwise:
    /// no more than `max` bytes of it are ever kept.
    pub fn value(&mut self, max: usize, out: &mut Vec<u8>) -> Result<usize, Framing> {
        out.clear();
        let first = self.peek()?;
        let scalar = match first {
            None | Some(b'}' | b']' | b',' | b':') => {
                return Err(self.unexpected(first, "a value"));
            }
            Some(b'{' | b'[' | b'"') => false,
            Some(_) => true,
        };
        let mut cut = Cut {
            depth: 0,
            in_string: false,
            escape: false,
            scalar,
        };
        let mut len = 0usize;
        loop {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                if scalar {
                    return Ok(len);
                }
                return Err(self.unexpected(None, "the rest of the value"));
            }
            let end = cut.find_end(chunk);
            let taken = end.unwrap_or(chunk.len());
            if len + taken <= max {
                out.extend_from_slice(&chunk[..taken]);
            } else if !out.is_empty() {
                out.clear();
            }
            len += taken;
            self.consume(taken);
            if end.is_some() {
                return Ok(len);
            }
        }
    }
}

/// Where the scan of one value is, carried from chunk to chunk.
struct Cut {
    depth: usize,
    in_string: bool,
    escape: bool,
    scalar: bool,
}

impl Cut {
    /// The offset just past the value's end in `chunk`, if it ends there.
    fn find_end(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < chunk.len() {
            if self.escape {
                self.escape = false;
                i += 1;
                continue;
            }
            if self.in_string {
                // Strings are most of a record: jump to what can end one.
                let j = memchr::memchr2(b'"', b'\\', &chunk[i..])?;
                i += j;
                if chunk[i] == b'\\' {
                    self.escape = true;
                } else {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                i += 1;
                continue;
            }
            let byte = chunk[i];
            if self.scalar {
                if matches!(
                    byte,
                    b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    return Some(i);
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        None
    }
}
