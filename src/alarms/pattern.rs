//! CloudWatch Logs JSON metric-filter patterns: parsing, matching and comparison.
//!
//! CIS-style alarms are a metric filter plus an alarm, and the filter is a
//! pattern such as `{ ($.eventName = ConsoleLogin) && ($.errorMessage IS NULL) }`.
//! cloudwarden reads these patterns for two reasons: to evaluate them against
//! CloudTrail records itself, and to tell whether the pattern deployed in an
//! account still means what the expected pattern means. People and tools
//! rewrite patterns freely (reordering terms, adding or dropping quotes,
//! parentheses and spaces), so comparing the text would report drift where
//! there is none; [`Pattern::canonical`] gives a form that only differs when
//! the meaning may differ.
//!
//! Only JSON patterns (the whole pattern in `{ }`) are understood. The
//! grammar is:
//!
//! ```text
//! pattern  := "{" or "}"
//! or       := and ("||" and)*          (`&&` binds tighter than `||`)
//! and      := primary ("&&" primary)*
//! primary  := "(" or ")" | term
//! term     := selector op value
//!           | selector "NOT EXISTS" | selector "IS NULL"
//!           | selector "IS TRUE"    | selector "IS FALSE"
//! selector := "$" ("." name | "[" digits "]")+   (starting with "." name)
//! op       := "=" | "!=" | "<" | ">" | "<=" | ">="
//! value    := "\"" string "\"" | number | word (whitespace word)*
//! ```
//!
//! Whitespace between tokens is insignificant and keywords are
//! case-sensitive, as in the AWS documentation. An unquoted value may be
//! several words (`Failed authentication`, as CIS v4.0.0 writes it); it
//! means the same as the quoted words with single spaces between them.
//! Matching follows CloudWatch:
//!
//! - `=` with a string compares the field's text (a string, or a number or
//!   boolean rendered as JSON text); `*` in the value matches any run of
//!   characters, anywhere in the value.
//! - `!=` holds only when the field is present and `=` would not hold: a
//!   missing field satisfies neither `=` nor `!=`, so
//!   `$.additionalEventData.MFAUsed != "Yes"` does not match an event without
//!   that field.
//! - A number value (`5`, `-1.5`) compares numerically against a JSON number
//!   or a string that is exactly a number (AWS does not document quoted
//!   numbers; accepting them errs towards raising an alarm); `<`, `>`, `<=`
//!   and `>=` need a number value.
//! - `NOT EXISTS` holds when the path is missing (a JSON `null` exists),
//!   `IS NULL` when the field is JSON `null`, `IS TRUE` and `IS FALSE` when
//!   it is that boolean.
//!
//! Error offsets count characters (not bytes) from the start of the pattern,
//! starting at 0.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// How deeply parentheses may nest.
///
/// Real patterns nest two or three levels; the limit keeps the recursive
/// parser, the matcher and the destructor from exhausting the stack on
/// hostile input.
const MAX_DEPTH: usize = 100;

/// A parsed JSON metric-filter pattern, kept in its canonical shape.
///
/// The expression is normalised once at parse time (nested groups of the
/// same operator flattened, operands sorted and deduplicated), so matching
/// and comparison both work on the same tree.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The normalised expression inside the braces.
    expr: Expr,
}

/// Why a pattern could not be parsed, and where.
///
/// The offset lets a caller point at the offending character of a pattern
/// that came from an account or a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {offset}")]
pub struct PatternError {
    /// What is wrong, in words a user can act on.
    pub message: String,
    /// The 0-based character (not byte) offset in the pattern text.
    pub offset: usize,
}

/// Parses a CloudWatch Logs JSON filter pattern such as
/// `{ $.eventName = "ConsoleLogin" }`.
///
/// Any input is accepted without panicking, because patterns come from AWS
/// accounts and configuration that cloudwarden does not control; anything
/// other than a well-formed JSON pattern is an error with an offset.
pub fn parse(text: &str) -> Result<Pattern, PatternError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let expr = parser.pattern()?;
    Ok(Pattern {
        expr: normalize(expr),
    })
}

impl Pattern {
    /// Whether `event` (a CloudTrail record or any JSON log line) matches.
    ///
    /// This lets cloudwarden raise the alarm's condition itself, from the
    /// records it reads, with the semantics described in the module docs.
    pub fn matches(&self, event: &Value) -> bool {
        self.expr.matches(event)
    }

    /// A canonical text: equal for patterns that mean the same.
    ///
    /// Drift checks compare this instead of the raw text, so a pattern that
    /// was only reordered, requoted or respaced is not reported. The result
    /// is itself a valid pattern whose canonical form is the same text.
    pub fn canonical(&self) -> String {
        format!("{{ {} }}", self.expr.render())
    }

    /// Same meaning (canonical forms equal).
    ///
    /// Patterns that are equal only after boolean minimisation (for example
    /// `a || (a && b)` and `a`) are reported as different: the comparison is
    /// safe to trust when it says "same", and errs towards reporting drift.
    pub fn equivalent(&self, other: &Pattern) -> bool {
        self.canonical() == other.canonical()
    }
}

/// A boolean expression over terms.
#[derive(Debug, Clone)]
enum Expr {
    /// Operands joined by one operator.
    Group {
        /// `&&` or `||`.
        join: Join,
        /// The operands, sorted by their canonical text once normalised.
        operands: Vec<Expr>,
    },
    /// One comparison of one field.
    Term(Term),
}

/// The operator joining a group's operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// `&&`: every operand holds.
    All,
    /// `||`: at least one operand holds.
    Any,
}

impl Join {
    /// The operator as written between operands in the canonical form.
    fn separator(self) -> &'static str {
        match self {
            Join::All => " && ",
            Join::Any => " || ",
        }
    }
}

/// A selector and the test applied to the value it picks.
#[derive(Debug, Clone)]
struct Term {
    /// The path from the root of the event, such as `$.userIdentity.type`.
    selector: Vec<Step>,
    /// What the selected value must satisfy.
    test: Test,
}

/// One step of a selector.
#[derive(Debug, Clone)]
enum Step {
    /// A key of an object (`.name`).
    Key(String),
    /// An element of an array (`[3]`).
    Index(usize),
}

/// What a selected value must satisfy.
#[derive(Debug, Clone)]
enum Test {
    /// `=` or `!=` against a string that may contain `*` wildcards.
    Text {
        /// True for `!=`.
        negated: bool,
        /// The value, with `*` as a wildcard.
        glob: String,
    },
    /// A comparison against a number.
    Number {
        /// The comparison operator.
        op: Op,
        /// The number, always finite.
        value: f64,
    },
    /// `NOT EXISTS`.
    Missing,
    /// `IS NULL`.
    Null,
    /// `IS TRUE`.
    True,
    /// `IS FALSE`.
    False,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator as written.
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }
}

/// A value as written after an operator, before its type is decided.
enum Literal {
    /// A double-quoted string, unescaped: always a string.
    Quoted(String),
    /// An unquoted word: a number if it looks like one, else a string.
    Word(String),
}

/// A recursive-descent parser over the pattern's characters.
///
/// Working on characters rather than bytes makes offsets count characters
/// and makes every lookup a bounds-checked `get`.
struct Parser {
    /// The pattern text.
    chars: Vec<char>,
    /// The index of the next character to read.
    pos: usize,
    /// How many parentheses are open.
    depth: usize,
}

impl Parser {
    /// The next character, if any.
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// The character `ahead` places after the next one, if any.
    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.pos
            .checked_add(ahead)
            .and_then(|at| self.chars.get(at).copied())
    }

    /// Moves past the next character, if there is one.
    fn bump(&mut self) {
        if self.pos < self.chars.len() {
            self.pos += 1;
        }
    }

    /// Moves past any whitespace.
    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Reads characters while `keep` accepts them.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut taken = String::new();
        while let Some(c) = self.peek().filter(|&c| keep(c)) {
            taken.push(c);
            self.pos += 1;
        }
        taken
    }

    /// An error at the next character.
    fn error(&self, message: impl Into<String>) -> PatternError {
        self.error_at(self.pos, message)
    }

    /// An error at `offset`.
    fn error_at(&self, offset: usize, message: impl Into<String>) -> PatternError {
        PatternError {
            message: message.into(),
            offset,
        }
    }

    /// The next character, described for an error message.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the pattern".to_owned(),
            Some(c) if c.is_control() => format!("`{}`", c.escape_debug()),
            Some(c) => format!("`{c}`"),
        }
    }

    /// The whole pattern: `{`, an expression, `}`, and nothing after.
    fn pattern(&mut self) -> Result<Expr, PatternError> {
        self.skip_whitespace();
        match self.peek() {
            Some('{') => self.bump(),
            None => {
                return Err(self.error(
                    "empty pattern: only JSON patterns such as \
                     `{ $.eventName = ConsoleLogin }` are understood",
                ));
            }
            Some('[') => {
                return Err(self.error(
                    "space-delimited `[...]` patterns are not supported: \
                     only JSON patterns enclosed in `{ }` are understood",
                ));
            }
            Some(_) => {
                return Err(self.error(
                    "pattern must be enclosed in `{ }`: only JSON patterns are understood",
                ));
            }
        }
        self.skip_whitespace();
        if self.peek() == Some('}') {
            return Err(self.error("empty JSON pattern: expected a selector such as `$.eventName`"));
        }
        let expr = self.or_expr()?;
        self.skip_whitespace();
        match self.peek() {
            Some('}') => self.bump(),
            None => return Err(self.error("missing closing `}`")),
            Some(_) => {
                return Err(self.error(format!(
                    "expected `&&`, `||` or `}}`, found {}",
                    self.found()
                )));
            }
        }
        self.skip_whitespace();
        if self.peek().is_some() {
            return Err(self.error(format!(
                "unexpected {} after the closing `}}`",
                self.found()
            )));
        }
        Ok(expr)
    }

    /// Operands joined by `||`.
    fn or_expr(&mut self) -> Result<Expr, PatternError> {
        let mut operands = vec![self.and_expr()?];
        while self.eat_double('|')? {
            operands.push(self.and_expr()?);
        }
        Ok(Expr::Group {
            join: Join::Any,
            operands,
        })
    }

    /// Operands joined by `&&`.
    fn and_expr(&mut self) -> Result<Expr, PatternError> {
        let mut operands = vec![self.primary()?];
        while self.eat_double('&')? {
            operands.push(self.primary()?);
        }
        Ok(Expr::Group {
            join: Join::All,
            operands,
        })
    }

    /// Consumes `&&` or `||` (as `c` doubled) after optional whitespace.
    ///
    /// A lone `&` or `|` is an error rather than the end of the expression,
    /// because it is almost always a typo for the doubled operator.
    fn eat_double(&mut self, c: char) -> Result<bool, PatternError> {
        self.skip_whitespace();
        if self.peek() != Some(c) {
            return Ok(false);
        }
        if self.peek_at(1) != Some(c) {
            return Err(self.error(format!("expected `{c}{c}`, found a single `{c}`")));
        }
        self.bump();
        self.bump();
        Ok(true)
    }

    /// A parenthesised expression or a term.
    fn primary(&mut self) -> Result<Expr, PatternError> {
        self.skip_whitespace();
        match self.peek() {
            Some('(') => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.error(format!(
                        "parentheses nested more than {MAX_DEPTH} levels deep"
                    )));
                }
                self.bump();
                self.depth += 1;
                let inner = self.or_expr()?;
                self.depth -= 1;
                self.skip_whitespace();
                match self.peek() {
                    Some(')') => {
                        self.bump();
                        Ok(inner)
                    }
                    None => Err(self.error("expected `)`, found the end of the pattern")),
                    Some(_) => Err(self.error(format!(
                        "expected `)`, `&&` or `||`, found {}",
                        self.found()
                    ))),
                }
            }
            Some('$') => self.term().map(Expr::Term),
            _ => Err(self.error(format!(
                "expected a selector such as `$.eventName` or `(`, found {}",
                self.found()
            ))),
        }
    }

    /// A selector followed by an operator and value, or by a keyword test.
    fn term(&mut self) -> Result<Term, PatternError> {
        let selector = self.selector()?;
        self.skip_whitespace();
        let start = self.pos;
        let test = match self.peek() {
            Some('=' | '!' | '<' | '>') => {
                let symbol = self.take_while(|c| matches!(c, '=' | '!' | '<' | '>'));
                let op = match symbol.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    ">=" => Op::Ge,
                    _ => {
                        return Err(self.error_at(start, format!("unknown operator `{symbol}`")));
                    }
                };
                self.comparison(op)?
            }
            Some(c) if c.is_ascii_alphabetic() => self.keyword_test()?,
            _ => {
                return Err(self.error(format!(
                    "expected an operator (`=`, `!=`, `<`, `>`, `<=`, `>=`), `NOT EXISTS` \
                     or `IS NULL`/`IS TRUE`/`IS FALSE` after the selector, found {}",
                    self.found()
                )));
            }
        };
        Ok(Term { selector, test })
    }

    /// A selector: `$`, then `.name` and `[index]` steps, starting with a name.
    fn selector(&mut self) -> Result<Vec<Step>, PatternError> {
        let start = self.pos;
        self.bump(); // the `$`
        if self.peek() != Some('.') {
            return Err(self.error_at(
                start,
                "a selector must start with `$.`, as in `$.eventName`",
            ));
        }
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.bump();
                    let name = self.take_while(is_name_char);
                    if name.is_empty() {
                        return Err(self.error(format!(
                            "expected a field name after `.`, found {}",
                            self.found()
                        )));
                    }
                    steps.push(Step::Key(name));
                }
                Some('[') => {
                    self.bump();
                    let digits_start = self.pos;
                    let digits = self.take_while(|c| c.is_ascii_digit());
                    if digits.is_empty() {
                        return Err(self.error(format!(
                            "expected an array index after `[`, found {}",
                            self.found()
                        )));
                    }
                    let Ok(index) = digits.parse::<usize>() else {
                        return Err(self.error_at(digits_start, "array index is too large"));
                    };
                    if self.peek() != Some(']') {
                        return Err(self.error(format!("expected `]`, found {}", self.found())));
                    }
                    self.bump();
                    steps.push(Step::Index(index));
                }
                _ => return Ok(steps),
            }
        }
    }

    /// The value after `op`, checked against what the operator accepts.
    fn comparison(&mut self, op: Op) -> Result<Test, PatternError> {
        self.skip_whitespace();
        let start = self.pos;
        let literal = match self.peek() {
            Some('"') => Literal::Quoted(self.quoted()?),
            Some(c) if !ends_word(c) => Literal::Word(self.unquoted()),
            _ => {
                return Err(self.error(format!("missing value after `{}`", op.symbol())));
            }
        };
        let text_op = matches!(op, Op::Eq | Op::Ne);
        match literal {
            Literal::Word(word) if is_number(&word) => match finite_number(&word) {
                Some(value) => Ok(Test::Number { op, value }),
                None => Err(self.error_at(start, format!("number `{word}` is out of range"))),
            },
            Literal::Quoted(glob) | Literal::Word(glob) if text_op => Ok(Test::Text {
                negated: op == Op::Ne,
                glob,
            }),
            _ => Err(self.error_at(
                start,
                format!(
                    "`{}` compares numbers, so its value must be an unquoted number such as `1000`",
                    op.symbol()
                ),
            )),
        }
    }

    /// An unquoted value: one word, or several separated by whitespace.
    ///
    /// CIS v4.0.0 and later write `($.errorMessage = Failed authentication)`
    /// with the space unquoted, so a following word continues the value
    /// (joined by one space, making it equal to the quoted form). A word
    /// that starts like a selector or an operator does not, so that a
    /// missing `&&` in `$.a = 1 $.b = 2` is still reported.
    fn unquoted(&mut self) -> String {
        let mut value = self.take_while(|c| !ends_word(c));
        loop {
            let before = self.pos;
            self.skip_whitespace();
            match self.peek() {
                Some(c) if continues_value(c) => {
                    value.push(' ');
                    value.push_str(&self.take_while(|c| !ends_word(c)));
                }
                _ => {
                    self.pos = before;
                    return value;
                }
            }
        }
    }

    /// A double-quoted string; `\"` and `\\` are escapes.
    ///
    /// Other backslashes are kept as written, so a pattern AWS accepts is
    /// never rejected here over an escape it does not define.
    fn quoted(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.bump(); // the opening quote
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some('"') => {
                    self.bump();
                    return Ok(text);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            text.push(c);
                            self.bump();
                        }
                        Some(_) => text.push('\\'),
                        None => return Err(self.error_at(open, "unterminated string")),
                    }
                }
                Some(c) => {
                    text.push(c);
                    self.bump();
                }
            }
        }
    }

    /// `NOT EXISTS`, `IS NULL`, `IS TRUE` or `IS FALSE`.
    fn keyword_test(&mut self) -> Result<Test, PatternError> {
        let start = self.pos;
        let first = self.take_while(is_keyword_char);
        match first.as_str() {
            "NOT" => {
                self.skip_whitespace();
                let at = self.pos;
                match self.take_while(is_keyword_char).as_str() {
                    "EXISTS" => Ok(Test::Missing),
                    other => Err(self.error_at(at, keyword_problem("NOT", other, "`EXISTS`"))),
                }
            }
            "IS" => {
                self.skip_whitespace();
                let at = self.pos;
                match self.take_while(is_keyword_char).as_str() {
                    "NULL" => Ok(Test::Null),
                    "TRUE" => Ok(Test::True),
                    "FALSE" => Ok(Test::False),
                    other => Err(self.error_at(
                        at,
                        keyword_problem("IS", other, "`NULL`, `TRUE` or `FALSE`"),
                    )),
                }
            }
            other if other.eq_ignore_ascii_case("NOT") || other.eq_ignore_ascii_case("IS") => {
                Err(self.error_at(
                    start,
                    format!(
                        "keywords are case-sensitive: write `{}`, not `{other}`",
                        other.to_ascii_uppercase()
                    ),
                ))
            }
            other => Err(self.error_at(
                start,
                format!(
                    "expected an operator, `NOT EXISTS` or `IS NULL` after the selector, \
                     found `{other}`"
                ),
            )),
        }
    }
}

/// The message for a bad second keyword, such as `NOT exist`.
fn keyword_problem(first: &str, found: &str, expected: &str) -> String {
    if found.is_empty() {
        format!("expected {expected} after `{first}`")
    } else if ["EXISTS", "NULL", "TRUE", "FALSE"]
        .iter()
        .any(|keyword| keyword.eq_ignore_ascii_case(found))
    {
        format!(
            "keywords are case-sensitive: write `{first} {}`, not `{first} {found}`",
            found.to_ascii_uppercase()
        )
    } else {
        format!("expected {expected} after `{first}`, found `{found}`")
    }
}

/// Whether `c` may appear in a selector's field name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `c` may appear in a keyword such as `EXISTS`.
///
/// Digits and `_` count so that `NULLX1` is read as one (unknown) word
/// rather than `NULL` followed by junk.
fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `c` ends an unquoted value.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '&' | '|' | '{' | '}' | '"')
}

/// Whether `c`, after whitespace inside an unquoted value, starts another
/// word of that value rather than the next token.
fn continues_value(c: char) -> bool {
    !ends_word(c) && !matches!(c, '$' | '=' | '!' | '<' | '>')
}

/// Whether `text` is written as a number: an optional sign, digits, and an
/// optional fraction.
fn is_number(text: &str) -> bool {
    let unsigned = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

/// The value of a number-shaped text, unless it is too large for an `f64`.
fn finite_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// Flattens nested groups of the same operator, sorts and deduplicates each
/// group's operands by canonical text, and unwraps groups of one operand.
///
/// Sorting by the rendered text makes the order of operands irrelevant to
/// the canonical form, which is all the equivalence check needs.
fn normalize(expr: Expr) -> Expr {
    let (join, operands) = match expr {
        Expr::Term(term) => return Expr::Term(term),
        Expr::Group { join, operands } => (join, operands),
    };
    let mut by_text = BTreeMap::new();
    for operand in operands {
        match normalize(operand) {
            Expr::Group {
                join: inner,
                operands: nested,
            } if inner == join => {
                for expr in nested {
                    by_text.entry(expr.render()).or_insert(expr);
                }
            }
            other => {
                by_text.entry(other.render()).or_insert(other);
            }
        }
    }
    let operands: Vec<Expr> = by_text.into_values().collect();
    match <[Expr; 1]>::try_from(operands) {
        Ok([only]) => only,
        Err(operands) => Expr::Group { join, operands },
    }
}

impl Expr {
    /// Whether the event satisfies this expression.
    fn matches(&self, event: &Value) -> bool {
        match self {
            Expr::Group {
                join: Join::All,
                operands,
            } => operands.iter().all(|operand| operand.matches(event)),
            Expr::Group {
                join: Join::Any,
                operands,
            } => operands.iter().any(|operand| operand.matches(event)),
            Expr::Term(term) => term.matches(event),
        }
    }

    /// The canonical text of this expression, without the outer braces.
    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    /// Appends the canonical text; nested groups are parenthesised.
    fn render_into(&self, out: &mut String) {
        match self {
            Expr::Term(term) => term.render_into(out),
            Expr::Group { join, operands } => {
                for (i, operand) in operands.iter().enumerate() {
                    if i > 0 {
                        out.push_str(join.separator());
                    }
                    if let Expr::Group { .. } = operand {
                        out.push('(');
                        operand.render_into(out);
                        out.push(')');
                    } else {
                        operand.render_into(out);
                    }
                }
            }
        }
    }
}

impl Term {
    /// Whether the value the selector picks passes the test.
    fn matches(&self, event: &Value) -> bool {
        let field = resolve(event, &self.selector);
        match &self.test {
            Test::Missing => field.is_none(),
            Test::Null => field.is_some_and(Value::is_null),
            Test::True => matches!(field, Some(Value::Bool(true))),
            Test::False => matches!(field, Some(Value::Bool(false))),
            Test::Text { negated, glob } => field.is_some_and(|found| {
                let equal = text_of(found).is_some_and(|text| glob_match(glob, &text));
                equal != *negated
            }),
            Test::Number { op, value } => field.is_some_and(|found| {
                let number = number_of(found);
                match op {
                    Op::Eq => number.is_some_and(|n| n == *value),
                    Op::Ne => !number.is_some_and(|n| n == *value),
                    Op::Lt => number.is_some_and(|n| n < *value),
                    Op::Gt => number.is_some_and(|n| n > *value),
                    Op::Le => number.is_some_and(|n| n <= *value),
                    Op::Ge => number.is_some_and(|n| n >= *value),
                }
            }),
        }
    }

    /// Appends the canonical text, such as `$.a[0].b = "x"`.
    fn render_into(&self, out: &mut String) {
        out.push('$');
        for step in &self.selector {
            match step {
                Step::Key(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        match &self.test {
            Test::Missing => out.push_str(" NOT EXISTS"),
            Test::Null => out.push_str(" IS NULL"),
            Test::True => out.push_str(" IS TRUE"),
            Test::False => out.push_str(" IS FALSE"),
            Test::Text { negated, glob } => {
                out.push_str(if *negated { " != \"" } else { " = \"" });
                for c in glob.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            Test::Number { op, value } => {
                out.push(' ');
                out.push_str(op.symbol());
                out.push(' ');
                // `-0` and `0` are the same number; Display would tell them apart.
                let value = if *value == 0.0 { 0.0 } else { *value };
                // Display prints the shortest text that reads back as the
                // same f64 and never uses an exponent, so `1.0` and `1`
                // both become `1` and the text re-parses as a number.
                out.push_str(&value.to_string());
            }
        }
    }
}

/// The value a selector picks, or `None` if the path does not exist.
fn resolve<'a>(event: &'a Value, selector: &[Step]) -> Option<&'a Value> {
    selector.iter().try_fold(event, |value, step| match step {
        Step::Key(name) => value.as_object()?.get(name.as_str()),
        Step::Index(index) => value.as_array()?.get(*index),
    })
}

/// The text a string comparison sees: strings as they are, numbers and
/// booleans as JSON text; nulls, objects and arrays have none.
fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text.as_str())),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(Cow::Owned(flag.to_string())),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The number a numeric comparison sees: a JSON number, or a string that
/// is exactly a number (log producers often quote numbers).
fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) if is_number(text) => finite_number(text),
        _ => None,
    }
}

/// Whether `text` matches `glob`, where `*` matches any run of characters
/// (including none) and every other character matches itself.
///
/// The literal pieces between stars are found left to right, which is
/// enough for a star-only glob and takes linear time per piece.
fn glob_match(glob: &str, text: &str) -> bool {
    let Some((first, rest_of_glob)) = glob.split_once('*') else {
        return glob == text;
    };
    let (middle, last) = rest_of_glob.rsplit_once('*').unwrap_or(("", rest_of_glob));
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(mut body) = rest.strip_suffix(last) else {
        return false;
    };
    for piece in middle.split('*').filter(|piece| !piece.is_empty()) {
        let Some(at) = body.find(piece) else {
            return false;
        };
        let Some(after) = body.get(at + piece.len()..) else {
            return false;
        };
        body = after;
    }
    true
}

#[cfg(test)]
mod tests;
