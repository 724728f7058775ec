//! YAML documents as Sigma rules need them: ordered maps, line numbers, no surprises.
//!
//! yaml-rust2's own loader expands aliases by cloning, which lets a small
//! file grow without bound, and forgets where each node was written. This
//! loader builds its own tree from the parser's events: it keeps the line of
//! every node for error messages, refuses aliases, duplicate keys and
//! non-scalar keys, and bounds nesting.

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Nesting deeper than this is refused: no Sigma rule comes close.
const MAX_DEPTH: usize = 64;

/// A YAML node and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The 1-based line of the node in its file.
    pub line: usize,
    /// What the node holds.
    pub value: Value,
}

/// The value of a node, with maps in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer, with the text it was written as.
    Int(i64, String),
    /// A float, as written (`1.10` stays `1.10`).
    Float(String),
    /// A string (any quoted scalar, or a plain one that is not another type).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in file order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string when this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Scalars as text, the way a user wrote them (`true`, `42`, `1.10`, `abc`).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) | Value::Float(s) | Value::Int(_, s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A word for the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(..) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Why a YAML text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    /// The 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Every document of a YAML text, in order. Empty documents are skipped.
pub fn load_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let parsed = parser.load(&mut builder, true);
    if let Some(error) = builder.error {
        return Err(error);
    }
    parsed.map_err(|err| YamlError {
        line: err.marker().line(),
        message: err.info().to_owned(),
    })?;
    Ok(builder.documents)
}

enum Open {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(String, Node)>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    documents: Vec<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line,
                message: message.into(),
            });
        }
    }

    fn push(&mut self, node: Node) {
        let mut problem = None;
        match self.stack.last_mut() {
            None => {
                if node.value != Value::Null {
                    self.documents.push(node);
                }
            }
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, key)) => match key.take() {
                None => {
                    let line = node.line;
                    let text = match node.value {
                        Value::Str(k) | Value::Float(k) | Value::Int(_, k) => k,
                        Value::Bool(b) => b.to_string(),
                        Value::Null => String::new(),
                        Value::Seq(_) | Value::Map(_) => {
                            problem = Some((
                                line,
                                "a map key must be a plain value, not a list or map".to_owned(),
                            ));
                            String::new()
                        }
                    };
                    *key = Some((text, line));
                }
                Some((k, line)) => {
                    if entries.iter().any(|(existing, _)| *existing == k) {
                        problem = Some((line, format!("duplicate key \"{k}\"")));
                    }
                    entries.push((k, node));
                }
            },
        }
        if let Some((line, message)) = problem {
            self.fail(line, message);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Alias(_) => self.fail(line, "YAML aliases (*name) are not supported in rules"),
            Event::Scalar(text, style, _, _) => {
                let value = if style == TScalarStyle::Plain {
                    match Yaml::from_str(&text) {
                        Yaml::Null => Value::Null,
                        Yaml::Boolean(b) => Value::Bool(b),
                        Yaml::Integer(i) => Value::Int(i, text),
                        Yaml::Real(r) => Value::Float(r),
                        _ => Value::Str(text),
                    }
                } else {
                    Value::Str(text)
                };
                self.push(Node { line, value });
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, format!("nested deeper than {MAX_DEPTH} levels"));
                    return;
                }
                let open = if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(line, Vec::new())
                } else {
                    Open::Map(line, Vec::new(), None)
                };
                self.stack.push(open);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq(line, items)) => Node {
                        line,
                        value: Value::Seq(items),
                    },
                    Some(Open::Map(line, entries, _)) => Node {
                        line,
                        value: Value::Map(entries),
                    },
                    None => return,
                };
                self.push(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_types_and_lines_across_documents() {
        let docs = load_documents(
            "title: a\nlevel: high\nn: 4625\nv: 1.10\nq: '42'\nb: true\nz: ~\n---\n---\nlist:\n  - x\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let Value::Map(entries) = &docs[0].value else {
            panic!()
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["title", "level", "n", "v", "q", "b", "z"]);
        assert_eq!(
            docs[0].get("n").unwrap().value,
            Value::Int(4625, "4625".into())
        );
        assert_eq!(docs[0].get("v").unwrap().scalar_text().unwrap(), "1.10");
        assert_eq!(docs[0].get("q").unwrap().as_str(), Some("42"));
        assert_eq!(docs[0].get("b").unwrap().value, Value::Bool(true));
        assert_eq!(docs[0].get("z").unwrap().value, Value::Null);
        assert_eq!(docs[0].get("level").unwrap().line, 2);
        assert_eq!(docs[1].get("list").unwrap().line, 11);
    }

    #[test]
    fn refuses_aliases_duplicate_keys_and_deep_nesting() {
        let err = load_documents("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert!(err.message.contains("aliases"), "{err}");
        let err = load_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key \"a\""), "{err}");
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(load_documents(&deep).is_err());
        let err = load_documents("a: [1, 2\n").unwrap_err();
        assert!(err.line >= 1, "{err}");
    }
}
