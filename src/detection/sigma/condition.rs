//! The condition grammar: `and`, `or`, `not`, parentheses, `1 of selection_*`,
//! `all of them`, `x of pattern`.
//!
//! Precedence, loosest first: `or`, `and`, `not`, `x of`, parentheses. The
//! parser produces a [`Cond`] naming search identifiers; compiling resolves
//! the names against the rule's detection section.

/// A parsed condition, before identifiers are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// A search identifier by name.
    Ref(String),
    /// Negation.
    Not(Box<Cond>),
    /// Every operand holds.
    And(Vec<Cond>),
    /// At least one operand holds.
    Or(Vec<Cond>),
    /// `count of target`: at least `count` (or all) of the identifiers match.
    Of(Quantity, OfTarget),
}

/// The quantity of an `of` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// `all of`.
    All,
    /// `N of`, N ≥ 1 (`any of` is `1 of`).
    AtLeast(usize),
}

/// What an `of` expression ranges over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfTarget {
    /// `them`: every identifier not starting with `_`.
    Them,
    /// Identifiers matching a pattern with `*` wildcards.
    Pattern(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            other => {
                return Err(format!(
                    "unexpected character '{other}' at position {} of the condition",
                    at + 1
                ));
            }
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?')
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// Parses one condition expression.
pub fn parse(text: &str) -> Result<Cond, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("the condition is empty".to_owned());
    }
    let mut parser = Parser { tokens, at: 0 };
    let cond = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(cond),
        Some(Token::Close) => Err("unbalanced ')' in the condition".to_owned()),
        Some(Token::Word(w)) => Err(format!(
            "unexpected \"{w}\" in the condition (expected and, or, or the end)"
        )),
        Some(Token::Open) => Err("unexpected '(' in the condition".to_owned()),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.and()?];
        while keyword(self.peek(), "or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.not()?];
        while keyword(self.peek(), "and") {
            self.at += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if keyword(self.peek(), "not") {
            self.at += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, String> {
        let token = self.peek().cloned();
        match token {
            None => Err("the condition ends where an identifier was expected".to_owned()),
            Some(Token::Close) => Err("unexpected ')' in the condition".to_owned()),
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("missing ')' in the condition".to_owned());
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                self.at += 1;
                if keyword(self.peek(), "of") {
                    self.at += 1;
                    return self.of(&word);
                }
                for reserved in ["and", "or", "not", "of", "them"] {
                    if word.eq_ignore_ascii_case(reserved) {
                        return Err(format!(
                            "unexpected \"{word}\" where an identifier was expected in the condition"
                        ));
                    }
                }
                Ok(Cond::Ref(word))
            }
        }
    }

    fn of(&mut self, quantity: &str) -> Result<Cond, String> {
        let quantity = if quantity.eq_ignore_ascii_case("all") {
            Quantity::All
        } else if quantity.eq_ignore_ascii_case("any") {
            Quantity::AtLeast(1)
        } else {
            match quantity.parse::<usize>() {
                Ok(n) if n >= 1 => Quantity::AtLeast(n),
                _ => {
                    return Err(format!(
                        "\"{quantity} of\": the quantity must be a number of at least 1 or \"all\""
                    ));
                }
            }
        };
        match self.peek().cloned() {
            Some(Token::Word(target)) => {
                self.at += 1;
                let target = if target.eq_ignore_ascii_case("them") {
                    OfTarget::Them
                } else {
                    OfTarget::Pattern(target)
                };
                Ok(Cond::Of(quantity, target))
            }
            _ => Err("\"of\" must be followed by an identifier pattern or \"them\"".to_owned()),
        }
    }
}

/// Whether `name` matches an `of` pattern with `*` (and `?`) wildcards.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> Cond {
        Cond::Ref(name.to_owned())
    }

    #[test]
    fn precedence_is_or_then_and_then_not() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Cond::Or(vec![
                r("a"),
                Cond::And(vec![r("b"), Cond::Not(Box::new(r("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            Cond::And(vec![Cond::Or(vec![r("a"), r("b")]), r("c")])
        );
        assert_eq!(
            parse("not not a").unwrap(),
            Cond::Not(Box::new(Cond::Not(Box::new(r("a")))))
        );
    }

    #[test]
    fn quantifiers() {
        assert_eq!(
            parse("selection and not 1 of filter_*").unwrap(),
            Cond::And(vec![
                r("selection"),
                Cond::Not(Box::new(Cond::Of(
                    Quantity::AtLeast(1),
                    OfTarget::Pattern("filter_*".into())
                )))
            ])
        );
        assert_eq!(
            parse("all of them").unwrap(),
            Cond::Of(Quantity::All, OfTarget::Them)
        );
        assert_eq!(
            parse("2 of sel*").unwrap(),
            Cond::Of(Quantity::AtLeast(2), OfTarget::Pattern("sel*".into()))
        );
        assert_eq!(
            parse("ANY OF them").unwrap(),
            Cond::Of(Quantity::AtLeast(1), OfTarget::Them)
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("(a or b").unwrap_err().contains("missing ')'"));
        assert!(parse("a b").unwrap_err().contains("unexpected \"b\""));
        assert!(parse("a and").unwrap_err().contains("ends"));
        assert!(parse("0 of them").unwrap_err().contains("at least 1"));
        assert!(parse("a | count() > 5").unwrap_err().contains("'|'"));
        assert!(parse("a and or b").is_err());
    }

    #[test]
    fn of_patterns() {
        assert!(pattern_matches("filter_*", "filter_main_x"));
        assert!(pattern_matches("*main*", "filter_main_x"));
        assert!(!pattern_matches("filter_*", "selection"));
        assert!(pattern_matches("sel", "sel") && !pattern_matches("sel", "sel2"));
    }
}
