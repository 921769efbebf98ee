//! The filter transform's predicate language: a small, SQL-like boolean expression over an
//! event's operation and its row's columns, parsed once at config validation.
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := operand ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") literal
//!             | operand "is" ["not"] "null"
//!             | operand ["not"] "in" "(" literal ("," literal)* ")"
//! operand    := "op" | column | "\"" quoted column "\""
//! literal    := 'text' ('' escapes a quote) | number | true | false
//! ```
//!
//! `op` is the event's Debezium operation code (`c`, `u`, `d`, `r`, `t`); a column literally
//! named `op` is written `"op"`. Keywords are case-insensitive. Evaluation follows SQL's
//! three-valued logic collapsed at the end: a comparison with a NULL (or an unchanged TOAST
//! value, whose content is unknown) is unknown, and an event is kept only when the whole
//! expression is true.

use std::cmp::Ordering;

use sluice_api::{Numeric, Value};

/// A predicate that did not parse: the 1-based character position and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct PredicateError {
    /// 1-based character position in the condition text.
    pub position: usize,
    pub message: String,
}

/// What a comparison looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// The event's operation code.
    Op,
    /// A column of the event's row.
    Column(String),
}

/// A constant in a condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
    Compare(Operand, CompareOp, Literal),
    IsNull {
        operand: Operand,
        negated: bool,
    },
    In {
        operand: Operand,
        values: Vec<Literal>,
        negated: bool,
    },
}

/// What a predicate is evaluated against: the operation code and a column lookup (`None` for a
/// column the row does not have, which reads as NULL).
pub trait Subject {
    fn op(&self) -> &str;
    fn column(&self, name: &str) -> Option<&Value>;
}

impl Predicate {
    /// Parse `text`; every error carries its position.
    pub fn parse(text: &str) -> Result<Predicate, PredicateError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            end: text.chars().count() + 1,
        };
        let predicate = parser.expr()?;
        match parser.peek() {
            None => Ok(predicate),
            Some((token, position)) => Err(PredicateError {
                position,
                message: format!("unexpected {} after a complete condition", token.describe()),
            }),
        }
    }

    /// Whether `subject` satisfies the predicate (unknown counts as false).
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        self.eval(subject) == Some(true)
    }

    /// Three-valued evaluation: `None` is SQL's unknown.
    fn eval(&self, subject: &dyn Subject) -> Option<bool> {
        match self {
            Predicate::And(a, b) => match (a.eval(subject), b.eval(subject)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Predicate::Or(a, b) => match (a.eval(subject), b.eval(subject)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Predicate::Not(inner) => inner.eval(subject).map(|b| !b),
            Predicate::Compare(operand, op, literal) => {
                let ordering = compare_operand(subject, operand, literal)?;
                Some(match op {
                    CompareOp::Eq => ordering == Ordering::Equal,
                    CompareOp::Ne => ordering != Ordering::Equal,
                    CompareOp::Lt => ordering == Ordering::Less,
                    CompareOp::Le => ordering != Ordering::Greater,
                    CompareOp::Gt => ordering == Ordering::Greater,
                    CompareOp::Ge => ordering != Ordering::Less,
                })
            }
            Predicate::IsNull { operand, negated } => {
                let null = match operand {
                    Operand::Op => false,
                    // An unchanged TOAST value is not NULL: PostgreSQL just did not resend it.
                    Operand::Column(name) => subject.column(name).is_none_or(Value::is_null),
                };
                Some(null != *negated)
            }
            Predicate::In {
                operand,
                values,
                negated,
            } => {
                let mut unknown = false;
                for literal in values {
                    match compare_operand(subject, operand, literal) {
                        Some(Ordering::Equal) => return Some(!negated),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(*negated)
            }
        }
    }

    /// The columns the predicate reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            Predicate::Not(inner) => inner.collect_columns(out),
            Predicate::Compare(operand, _, _)
            | Predicate::IsNull { operand, .. }
            | Predicate::In { operand, .. } => {
                if let Operand::Column(name) = operand {
                    out.push(name);
                }
            }
        }
    }
}

fn compare_operand(
    subject: &dyn Subject,
    operand: &Operand,
    literal: &Literal,
) -> Option<Ordering> {
    match operand {
        Operand::Op => match literal {
            Literal::Text(text) => Some(subject.op().cmp(text.as_str())),
            _ => None,
        },
        Operand::Column(name) => compare_value(subject.column(name)?, literal),
    }
}

/// How a column value orders against a literal; `None` when unknown (NULL, unchanged TOAST)
/// or when the two cannot be compared (a boolean against a number).
fn compare_value(value: &Value, literal: &Literal) -> Option<Ordering> {
    if matches!(value, Value::Null | Value::UnchangedToast) {
        return None;
    }
    match literal {
        Literal::Bool(expected) => match value {
            Value::Bool(actual) => Some(actual.cmp(expected)),
            _ => None,
        },
        Literal::Number(expected) => number_of(value)?.partial_cmp(expected),
        Literal::Text(expected) => match (value, expected.parse::<f64>()) {
            // `amount > '10'` compares numbers, as PostgreSQL would after coercing the literal.
            (v, Ok(number)) if number_of(v).is_some() => number_of(v)?.partial_cmp(&number),
            (Value::Text(actual), _) | (Value::Enum(actual), _) => {
                Some(actual.as_str().cmp(expected.as_str()))
            }
            (Value::Bool(actual), _) => match expected.to_ascii_lowercase().as_str() {
                "t" | "true" => Some(actual.cmp(&true)),
                "f" | "false" => Some(actual.cmp(&false)),
                _ => None,
            },
            (other, _) => Some(
                crate::schema::pg_text(other)
                    .as_str()
                    .cmp(expected.as_str()),
            ),
        },
    }
}

/// A numeric column value as a double (exact enough for thresholds in a filter), or the number
/// a text value spells.
fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Int16(v) => Some(f64::from(*v)),
        Value::Int32(v) => Some(f64::from(*v)),
        Value::Int64(v) => Some(*v as f64),
        Value::Float32(v) => Some(f64::from(*v)),
        Value::Float64(v) => Some(*v),
        Value::Numeric(Numeric::Value(d)) | Value::Money(d) => d.as_str().parse().ok(),
        Value::Numeric(Numeric::PositiveInfinity) => Some(f64::INFINITY),
        Value::Numeric(Numeric::NegativeInfinity) => Some(f64::NEG_INFINITY),
        Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("'{w}'"),
            Token::Quoted(q) => format!("\"{q}\""),
            Token::Text(t) => format!("the text '{t}'"),
            Token::Number(n) => format!("the number {n}"),
            Token::Symbol(s) => format!("'{s}'"),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

/// Tokens with their 1-based character positions.
fn lex(text: &str) -> Result<Vec<(Token, usize)>, PredicateError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |position: usize, message: String| PredicateError { position, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        let what = if c == '\'' { "text" } else { "column name" };
                        return Err(error(start, format!("unterminated {what} starting here")));
                    }
                    Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                        value.push(c);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        value.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push((
                if c == '\'' {
                    Token::Text(value)
                } else {
                    Token::Quoted(value)
                },
                start,
            ));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let mut end = i + 1;
            while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.') {
                end += 1;
            }
            let literal: String = chars[i..end].iter().collect();
            let number = literal
                .parse::<f64>()
                .map_err(|_| error(start, format!("invalid number {literal}")))?;
            tokens.push((Token::Number(number), start));
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let mut end = i + 1;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            tokens.push((Token::Word(chars[i..end].iter().collect()), start));
            i = end;
        } else if "=<>!~".contains(c) {
            // The whole run of operator characters, so that `=~` or `==` is named as written.
            let mut end = i + 1;
            while end < chars.len() && "=<>!~".contains(chars[end]) {
                end += 1;
            }
            let written: String = chars[i..end].iter().collect();
            let symbol = match written.as_str() {
                "=" => "=",
                "!=" => "!=",
                "<>" => "<>",
                "<" => "<",
                "<=" => "<=",
                ">" => ">",
                ">=" => ">=",
                _ => return Err(error(start, format!("unknown operator '{written}'"))),
            };
            tokens.push((Token::Symbol(symbol), start));
            i = end;
        } else {
            let symbol = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                _ => return Err(error(start, format!("unexpected character '{c}'"))),
            };
            tokens.push((Token::Symbol(symbol), start));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    /// The position just past the text, for "expected ... at the end" errors.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(&Token, usize)> {
        self.tokens.get(self.at).map(|(t, p)| (t, *p))
    }

    fn next(&mut self) -> Option<(Token, usize)> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |(_, p)| p)
    }

    fn fail<T>(&self, expected: &str) -> Result<T, PredicateError> {
        let found = match self.peek() {
            Some((token, _)) => token.describe(),
            None => "the end of the condition".to_string(),
        };
        Err(PredicateError {
            position: self.position(),
            message: format!("expected {expected}, found {found}"),
        })
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_some_and(|(t, _)| t.is_keyword(keyword));
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some((Token::Symbol(s), _)) if *s == symbol);
        if found {
            self.at += 1;
        }
        found
    }

    fn expr(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            left = Predicate::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.unary()?;
        while self.eat_keyword("and") {
            left = Predicate::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Predicate, PredicateError> {
        if self.eat_keyword("not") {
            return Ok(Predicate::Not(Box::new(self.unary()?)));
        }
        if self.eat_symbol("(") {
            let inner = self.expr()?;
            if !self.eat_symbol(")") {
                return self.fail("')'");
            }
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Predicate, PredicateError> {
        let operand = match self.peek() {
            Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("op") => Operand::Op,
            Some((Token::Word(w), _)) if !is_reserved(w) => Operand::Column(w.clone()),
            Some((Token::Quoted(q), _)) => Operand::Column(q.clone()),
            _ => return self.fail("a column, op, 'not' or '('"),
        };
        self.at += 1;
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                return self.fail("'null'");
            }
            return Ok(Predicate::IsNull { operand, negated });
        }
        let negated = self.eat_keyword("not");
        if self.eat_keyword("in") {
            if !self.eat_symbol("(") {
                return self.fail("'(' after 'in'");
            }
            let mut values = vec![self.literal()?];
            while self.eat_symbol(",") {
                values.push(self.literal()?);
            }
            if !self.eat_symbol(")") {
                return self.fail("',' or ')'");
            }
            return Ok(Predicate::In {
                operand,
                values,
                negated,
            });
        }
        if negated {
            return self.fail("'in' after 'not'");
        }
        let op = match self.peek() {
            Some((Token::Symbol(s), _)) => match *s {
                "=" => CompareOp::Eq,
                "!=" | "<>" => CompareOp::Ne,
                "<" => CompareOp::Lt,
                "<=" => CompareOp::Le,
                ">" => CompareOp::Gt,
                ">=" => CompareOp::Ge,
                _ => return self.fail("a comparison operator"),
            },
            _ => return self.fail("a comparison operator, 'is' or 'in'"),
        };
        self.at += 1;
        let literal = self.literal()?;
        Ok(Predicate::Compare(operand, op, literal))
    }

    fn literal(&mut self) -> Result<Literal, PredicateError> {
        let position = self.position();
        match self.next() {
            Some((Token::Text(t), _)) => Ok(Literal::Text(t)),
            Some((Token::Number(n), _)) => Ok(Literal::Number(n)),
            Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("false") => {
                Ok(Literal::Bool(false))
            }
            Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("null") => Err(PredicateError {
                position,
                message: "a comparison with null is never true: use 'is null' or 'is not null'"
                    .into(),
            }),
            _ => {
                self.at -= 1;
                self.fail("a 'text', a number, true or false")
            }
        }
    }
}

fn is_reserved(word: &str) -> bool {
    ["and", "or", "not", "is", "in", "null", "true", "false"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row<'a> {
        op: &'a str,
        columns: Vec<(&'a str, Value)>,
    }

    impl Subject for Row<'_> {
        fn op(&self) -> &str {
            self.op
        }
        fn column(&self, name: &str) -> Option<&Value> {
            self.columns
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        }
    }

    fn row(op: &'static str, status: Value, amount: Value) -> Row<'static> {
        Row {
            op,
            columns: vec![
                ("status", status),
                ("amount", amount),
                ("op", Value::Text("x".into())),
            ],
        }
    }

    fn holds(condition: &str, subject: &Row<'_>) -> bool {
        Predicate::parse(condition)
            .unwrap_or_else(|e| panic!("{condition}: {e}"))
            .matches(subject)
    }

    #[test]
    fn op_and_column_comparisons_combine_with_and_or_not() {
        let active = row("c", Value::Text("active".into()), Value::Int32(50));
        assert!(holds("op != 'd' and status = 'active'", &active));
        assert!(!holds("op = 'd' and status = 'active'", &active));
        assert!(holds("op = 'd' or amount >= 50", &active));
        assert!(holds("not (amount < 10) and OP in ('c', 'u')", &active));
        assert!(!holds("op not in ('c', 'u')", &active));
        assert!(holds("amount > 49.5 and amount <= '50'", &active));
        assert!(holds("\"op\" = 'x' and status <> 'gone'", &active));
        assert!(holds("status > 'aardvark'", &active));
    }

    #[test]
    fn nulls_are_unknown_except_to_is_null() {
        let null = row("u", Value::Null, Value::UnchangedToast);
        assert!(!holds("status = 'active'", &null));
        assert!(!holds("status != 'active'", &null), "unknown, not true");
        assert!(holds("not (status = 'active') or status is null", &null));
        assert!(holds("status is null and amount is not null", &null));
        assert!(!holds("status in ('a', 'b')", &null));
        assert!(
            holds("missing is null", &null),
            "an absent column reads as null"
        );
        assert!(holds("status is null or amount = 1", &null));
    }

    #[test]
    fn numbers_compare_across_integer_decimal_and_text_values() {
        let decimal = sluice_api::Decimal::parse("10.25").unwrap();
        let subject = row(
            "r",
            Value::Text("7".into()),
            Value::Numeric(Numeric::Value(decimal)),
        );
        assert!(holds("amount > 10 and amount < 10.5", &subject));
        assert!(holds("status = 7", &subject));
    }

    #[test]
    fn parse_errors_name_the_position_and_the_problem() {
        let cases = [
            ("op != 'd' and status =~ 'x'", 22, "unknown operator '=~'"),
            ("status = 'open", 10, "unterminated text"),
            ("status = null", 10, "use 'is null'"),
            ("(status = 'a'", 14, "expected ')'"),
            ("status 'a'", 8, "expected a comparison operator"),
            ("status = 'a' status", 14, "unexpected 'status'"),
            ("and = 1", 1, "expected a column"),
            ("status is nothing", 11, "expected 'null'"),
            ("status == 'a'", 8, "unknown operator '=='"),
            ("x not = 1", 7, "expected 'in' after 'not'"),
        ];
        for (text, position, message) in cases {
            let error = Predicate::parse(text).expect_err(text);
            assert_eq!(error.position, position, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn the_columns_read_are_listed() {
        let p =
            Predicate::parse("a = 1 or (not b is null and op = 'c') or \"c d\" in (1)").unwrap();
        assert_eq!(p.columns(), ["a", "b", "c d"]);
    }
}
