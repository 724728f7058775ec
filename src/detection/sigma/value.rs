//! Sigma string values: wildcards, escapes and placeholders, and the
//! transformation modifiers that rewrite them before matching.
//!
//! A value is kept as bytes because the encoding modifiers (`utf16le`,
//! `base64`, ...) produce text that is not UTF-8. `*` and `?` are wildcards
//! unless escaped with `\`; `\\` is one backslash; a backslash before any
//! other character is itself (the specification's escaping rules).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Variants a single value may expand into (windash, base64offset,
/// placeholders); more is refused, because every variant is matched.
pub const MAX_VARIANTS: usize = 4096;

/// One piece of a Sigma string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Bytes matched as they are (subject to case-insensitivity).
    Lit(Vec<u8>),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
    /// `%name%` under the `expand` modifier: replaced by configured values.
    Placeholder(String),
}

/// A Sigma string: literal runs, wildcards and placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SigmaString(pub Vec<Part>);

impl SigmaString {
    /// Parses `text` with Sigma's wildcard escapes; with `placeholders`,
    /// `%name%` becomes a placeholder and `\%` a plain percent sign.
    pub fn parse(text: &str, placeholders: bool) -> SigmaString {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut chars = text.chars().peekable();
        let flush = |lit: &mut Vec<u8>, parts: &mut Vec<Part>| {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
        };
        let mut buf = [0u8; 4];
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        lit.push(next as u8);
                    }
                    Some('%') if placeholders => {
                        chars.next();
                        lit.push(b'%');
                    }
                    _ => lit.push(b'\\'),
                },
                '*' => {
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Star);
                }
                '?' => {
                    flush(&mut lit, &mut parts);
                    parts.push(Part::One);
                }
                '%' if placeholders => {
                    let name: String = chars.clone().take_while(|&c| c != '%').collect();
                    let closed = chars.clone().nth(name.chars().count()) == Some('%');
                    if closed && !name.is_empty() && !name.contains(char::is_whitespace) {
                        for _ in 0..=name.chars().count() {
                            chars.next();
                        }
                        flush(&mut lit, &mut parts);
                        parts.push(Part::Placeholder(name));
                    } else {
                        lit.push(b'%');
                    }
                }
                c => lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        flush(&mut lit, &mut parts);
        SigmaString(parts)
    }

    /// A string of plain bytes, without wildcards.
    pub fn literal(bytes: Vec<u8>) -> SigmaString {
        if bytes.is_empty() {
            SigmaString(Vec::new())
        } else {
            SigmaString(vec![Part::Lit(bytes)])
        }
    }

    /// The same string with adjacent literal runs joined, so that its shape
    /// (exact, prefix, ...) can be recognised.
    pub fn normalized(&self) -> SigmaString {
        let mut parts: Vec<Part> = Vec::with_capacity(self.0.len());
        for part in &self.0 {
            match (parts.last_mut(), part) {
                (Some(Part::Lit(acc)), Part::Lit(more)) => acc.extend_from_slice(more),
                (Some(Part::Star), Part::Star) => {}
                _ => parts.push(part.clone()),
            }
        }
        SigmaString(parts)
    }

    /// The bytes when the string holds no wildcard or placeholder.
    pub fn plain(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for part in &self.0 {
            match part {
                Part::Lit(bytes) => out.extend_from_slice(bytes),
                _ => return None,
            }
        }
        Some(out)
    }

    /// The names of the placeholders in this string.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Adds `*` at the start unless one is there.
    pub fn star_first(mut self) -> Self {
        if self.0.first() != Some(&Part::Star) {
            self.0.insert(0, Part::Star);
        }
        self
    }

    /// Adds `*` at the end unless one is there.
    pub fn star_last(mut self) -> Self {
        if self.0.last() != Some(&Part::Star) {
            self.0.push(Part::Star);
        }
        self
    }

    /// The string as a user would write it, for messages.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Lit(bytes) => {
                    let text = String::from_utf8_lossy(bytes);
                    for c in text.chars() {
                        if matches!(c, '*' | '?' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                Part::Star => out.push('*'),
                Part::One => out.push('?'),
                Part::Placeholder(name) => {
                    out.push('%');
                    out.push_str(name);
                    out.push('%');
                }
            }
        }
        out
    }

    /// Applies `f` to every literal run, keeping wildcards in place.
    fn map_literals(&self, mut f: impl FnMut(&[u8]) -> Vec<u8>) -> SigmaString {
        SigmaString(
            self.0
                .iter()
                .map(|part| match part {
                    Part::Lit(bytes) => Part::Lit(f(bytes)),
                    other => other.clone(),
                })
                .collect(),
        )
    }
}

/// A transformation modifier that rewrites string values before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// `*value*`.
    Contains,
    /// `value*`.
    StartsWith,
    /// `*value`.
    EndsWith,
    /// The value's Base64 encoding.
    Base64,
    /// The three Base64 encodings of the value at byte offsets 0, 1 and 2.
    Base64Offset,
    /// UTF-16 little-endian bytes (`utf16le`, `wide`).
    Utf16Le,
    /// UTF-16 big-endian bytes.
    Utf16Be,
    /// UTF-16 little-endian with a byte order mark.
    Utf16,
    /// Every combination of `-`, `/`, `–`, `—` and `―`.
    Windash,
}

const DASHES: [&str; 5] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"];

impl Transform {
    /// Rewrites `value` into one or more values.
    pub fn apply(self, value: SigmaString) -> Result<Vec<SigmaString>, String> {
        match self {
            Transform::Contains => Ok(vec![value.star_first().star_last()]),
            Transform::StartsWith => Ok(vec![value.star_last()]),
            Transform::EndsWith => Ok(vec![value.star_first()]),
            Transform::Base64 => {
                let plain = plain_for(&value, "base64")?;
                Ok(vec![SigmaString::literal(
                    BASE64.encode(plain).into_bytes(),
                )])
            }
            Transform::Base64Offset => {
                let plain = plain_for(&value, "base64offset")?;
                Ok(base64_offsets(&plain)
                    .into_iter()
                    .map(SigmaString::literal)
                    .collect())
            }
            Transform::Utf16Le => Ok(vec![value.map_literals(|b| utf16(b, false, false))]),
            Transform::Utf16Be => Ok(vec![value.map_literals(|b| utf16(b, true, false))]),
            Transform::Utf16 => {
                // The byte order mark belongs at the start of the whole value only.
                let mut first = true;
                Ok(vec![value.map_literals(|b| {
                    let bom = std::mem::take(&mut first);
                    utf16(b, false, bom)
                })])
            }
            Transform::Windash => windash(&value),
        }
    }
}

fn plain_for(value: &SigmaString, modifier: &str) -> Result<Vec<u8>, String> {
    value.plain().ok_or_else(|| {
        format!(
            "the {modifier} modifier needs a value without wildcards, got \"{}\"",
            value.display()
        )
    })
}

/// The parts of `value`'s Base64 encoding that do not depend on what
/// surrounds it, at each of the three byte alignments.
pub fn base64_offsets(value: &[u8]) -> Vec<Vec<u8>> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    let mut out = Vec::new();
    for shift in 0..3 {
        let mut shifted = vec![b' '; shift];
        shifted.extend_from_slice(value);
        let encoded = BASE64.encode(&shifted).into_bytes();
        let end_cut = END[(value.len() + shift) % 3];
        let end = encoded.len().saturating_sub(end_cut);
        let start = START[shift];
        if start < end {
            out.push(encoded[start..end].to_vec());
        }
    }
    out
}

fn utf16(bytes: &[u8], big_endian: bool, bom: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::with_capacity(bytes.len() * 2 + 2);
    if bom {
        out.extend_from_slice(if big_endian {
            &[0xfe, 0xff]
        } else {
            &[0xff, 0xfe]
        });
    }
    for unit in text.encode_utf16() {
        let pair = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend_from_slice(&pair);
    }
    out
}

fn windash(value: &SigmaString) -> Result<Vec<SigmaString>, String> {
    let mut variants = vec![SigmaString::default()];
    for part in &value.0 {
        let Part::Lit(bytes) = part else {
            for v in &mut variants {
                v.0.push(part.clone());
            }
            continue;
        };
        let text = String::from_utf8_lossy(bytes).into_owned();
        let mut pieces: Vec<Vec<u8>> = vec![Vec::new()];
        for c in text.chars() {
            let mut buf = [0u8; 4];
            let s: &str = c.encode_utf8(&mut buf);
            if DASHES.contains(&s) {
                pieces = pieces
                    .into_iter()
                    .flat_map(|p| {
                        DASHES.iter().map(move |d| {
                            let mut next = p.clone();
                            next.extend_from_slice(d.as_bytes());
                            next
                        })
                    })
                    .collect();
                if pieces.len() * variants.len() > MAX_VARIANTS {
                    return Err(format!(
                        "windash would expand \"{}\" into more than {MAX_VARIANTS} values",
                        value.display()
                    ));
                }
            } else {
                for p in &mut pieces {
                    p.extend_from_slice(s.as_bytes());
                }
            }
        }
        variants = variants
            .into_iter()
            .flat_map(|v| {
                pieces.iter().map(move |p| {
                    let mut next = v.clone();
                    next.0.push(Part::Lit(p.clone()));
                    next
                })
            })
            .collect();
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_wildcards_and_the_specifications_escapes() {
        assert_eq!(
            SigmaString::parse("a*b?c", false).0,
            vec![lit("a"), Part::Star, lit("b"), Part::One, lit("c")]
        );
        assert_eq!(SigmaString::parse(r"a\*b", false).0, vec![lit("a*b")]);
        assert_eq!(
            SigmaString::parse(r"C:\Windows", false).0,
            vec![lit(r"C:\Windows")]
        );
        assert_eq!(
            SigmaString::parse(r"a\\*", false).0,
            vec![lit(r"a\"), Part::Star]
        );
        assert_eq!(SigmaString::parse(r"a\\\*", false).0, vec![lit(r"a\*")]);
        assert_eq!(SigmaString::parse(r"\\\\", false).0, vec![lit(r"\\")]);
        assert_eq!(SigmaString::parse("%x%", false).0, vec![lit("%x%")]);
        assert_eq!(
            SigmaString::parse(r"\%plain%name%", true).0,
            vec![lit("%plain"), Part::Placeholder("name".into())]
        );
        assert_eq!(SigmaString::parse("100%", true).0, vec![lit("100%")]);
    }

    #[test]
    fn encodings_match_the_specifications_examples() {
        let cmd = SigmaString::parse("cmd", false);
        let le = Transform::Utf16Le.apply(cmd.clone()).unwrap();
        assert_eq!(le[0].plain().unwrap(), b"c\0m\0d\0");
        let be = Transform::Utf16Be.apply(cmd.clone()).unwrap();
        assert_eq!(be[0].plain().unwrap(), b"\0c\0m\0d");
        let bom = Transform::Utf16.apply(cmd.clone()).unwrap();
        assert_eq!(bom[0].plain().unwrap(), b"\xff\xfec\0m\0d\0");
        let b64 = Transform::Base64
            .apply(SigmaString::parse("/bin/bash", false))
            .unwrap();
        assert_eq!(b64[0].plain().unwrap(), b"L2Jpbi9iYXNo");
        assert!(
            Transform::Base64
                .apply(SigmaString::parse("a*", false))
                .is_err()
        );
    }

    #[test]
    fn base64offset_finds_the_value_at_every_alignment() {
        let needle = b"http://evil";
        let variants = base64_offsets(needle);
        assert_eq!(variants.len(), 3);
        for prefix in ["", "x", "xy", "xyz", "wxyz"] {
            let mut text = prefix.as_bytes().to_vec();
            text.extend_from_slice(needle);
            text.extend_from_slice(b" tail");
            let encoded = BASE64.encode(&text);
            assert!(
                variants.iter().any(|v| encoded
                    .as_bytes()
                    .windows(v.len())
                    .any(|w| w == v.as_slice())),
                "prefix {prefix:?}: {encoded} vs {variants:?}"
            );
        }
    }

    #[test]
    fn windash_expands_every_dash_and_is_bounded() {
        let out = Transform::Windash
            .apply(SigmaString::parse("-a -b", false))
            .unwrap();
        assert_eq!(out.len(), 25);
        assert!(
            out.iter()
                .any(|v| v.plain().unwrap() == "/a \u{2014}b".as_bytes())
        );
        let many = "-".repeat(8);
        assert!(
            Transform::Windash
                .apply(SigmaString::parse(&many, false))
                .is_err()
        );
    }

    #[test]
    fn displays_values_as_written() {
        let s = SigmaString::parse(r"a\*b*%p%", true);
        assert_eq!(s.display(), r"a\*b*%p%");
    }
}
