//! CometBFT's event query language: conditions joined by `AND`, each `key OP value` with
//! OP one of `=`, `<`, `<=`, `>`, `>=`, `CONTAINS`, or `key EXISTS`. Keys are composite
//! (`transfer.recipient`, `tx.height`, `tm.event`); values are single-quoted strings or
//! numbers. Used by `tx_search`, `block_search` and WebSocket subscriptions.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Exists,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Str(String),
    Num(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub key: String,
    pub op: Op,
    pub value: Option<Operand>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub text: String,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid query {query:?}: {reason}")]
pub struct QueryError {
    pub query: String,
    pub reason: String,
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Longest query accepted (a subscription is kept in memory per client).
pub const MAX_QUERY_LEN: usize = 512;

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let err = |reason: &str| QueryError {
            query: text.chars().take(80).collect(),
            reason: reason.to_string(),
        };
        if text.len() > MAX_QUERY_LEN {
            return Err(err("too long"));
        }
        let mut conditions = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err("empty"));
        }
        loop {
            // Key.
            let key_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
                .unwrap_or(rest.len());
            if key_len == 0 {
                return Err(err("expected a key"));
            }
            let key = rest[..key_len].to_string();
            rest = rest[key_len..].trim_start();
            // Operator.
            let (op, len) = if rest.starts_with("<=") {
                (Op::Le, 2)
            } else if rest.starts_with(">=") {
                (Op::Ge, 2)
            } else if rest.starts_with('<') {
                (Op::Lt, 1)
            } else if rest.starts_with('>') {
                (Op::Gt, 1)
            } else if rest.starts_with('=') {
                (Op::Eq, 1)
            } else if rest.starts_with("CONTAINS") {
                (Op::Contains, 8)
            } else if rest.starts_with("EXISTS") {
                (Op::Exists, 6)
            } else {
                return Err(err(&format!("expected an operator after {key}")));
            };
            rest = rest[len..].trim_start();
            // Operand.
            let value = if op == Op::Exists {
                None
            } else if let Some(after) = rest.strip_prefix('\'') {
                let end = after.find('\'').ok_or_else(|| err("unterminated string"))?;
                let v = after[..end].to_string();
                rest = after[end + 1..].trim_start();
                Some(Operand::Str(v))
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let n: f64 = rest[..end].parse().map_err(|_| {
                    err(&format!("expected a quoted string or a number after {key}"))
                })?;
                rest = rest[end..].trim_start();
                Some(Operand::Num(n))
            };
            if op == Op::Contains && !matches!(value, Some(Operand::Str(_))) {
                return Err(err("CONTAINS takes a string"));
            }
            conditions.push(Condition { key, op, value });
            if rest.is_empty() {
                break;
            }
            rest = rest
                .strip_prefix("AND")
                .ok_or_else(|| err("conditions must be joined by AND"))?
                .trim_start();
        }
        Ok(Query {
            text: text.to_string(),
            conditions,
        })
    }

    /// Whether the attributes (composite key, value) satisfy every condition.
    pub fn matches(&self, attributes: &[(String, String)]) -> bool {
        self.conditions.iter().all(|c| {
            attributes
                .iter()
                .filter(|(k, _)| *k == c.key)
                .any(|(_, v)| c.holds(v))
        })
    }
}

impl Condition {
    pub fn holds(&self, actual: &str) -> bool {
        match (&self.op, &self.value) {
            (Op::Exists, _) => true,
            (Op::Contains, Some(Operand::Str(s))) => actual.contains(s.as_str()),
            (op, Some(Operand::Str(s))) => match op {
                Op::Eq => actual == s,
                // Numbers may be quoted (`tx.height > '5'`): compare numerically when both are.
                _ => match (actual.parse::<f64>(), s.parse::<f64>()) {
                    (Ok(a), Ok(b)) => compare(op, a, b),
                    _ => false,
                },
            },
            (op, Some(Operand::Num(n))) => actual.parse::<f64>().is_ok_and(|a| compare(op, a, *n)),
            _ => false,
        }
    }

    /// The exact value this condition requires, if it is an equality (for index look-ups).
    pub fn equals(&self) -> Option<String> {
        match (&self.op, &self.value) {
            (Op::Eq, Some(Operand::Str(s))) => Some(s.clone()),
            (Op::Eq, Some(Operand::Num(n))) => Some(format_num(*n)),
            _ => None,
        }
    }
}

fn format_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e18 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn compare(op: &Op, a: f64, b: f64) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let a = attrs(&[
            ("tm.event", "Tx"),
            ("tx.height", "12"),
            ("transfer.recipient", "ABCDEF"),
            ("transfer.amount", "500"),
            ("transfer.amount", "7"),
        ]);
        let yes = [
            "tm.event='Tx'",
            "tm.event = 'Tx' AND tx.height=12",
            "tx.height > 11 AND tx.height <= 12 AND tx.height >= 12 AND tx.height < 13",
            "transfer.recipient CONTAINS 'CDE'",
            "transfer.amount < 10",
            "transfer.amount EXISTS",
            "tx.height > '5'",
        ];
        for q in yes {
            assert!(Query::parse(q).unwrap().matches(&a), "{q}");
        }
        let no = [
            "tm.event='NewBlock'",
            "tx.height > 12",
            "transfer.recipient CONTAINS 'ZZ'",
            "missing.key EXISTS",
            "tm.event='Tx' AND tx.height=13",
        ];
        for q in no {
            assert!(!Query::parse(q).unwrap().matches(&a), "{q}");
        }
        assert_eq!(
            Query::parse("tx.height=5").unwrap().conditions[0].equals(),
            Some("5".into())
        );
    }

    #[test]
    fn malformed_queries_are_errors() {
        for q in [
            "",
            "tm.event",
            "tm.event='Tx",
            "tm.event='Tx' OR tx.height=1",
            "a CONTAINS 5",
            "= 'x'",
            "a = b",
        ] {
            assert!(Query::parse(q).is_err(), "{q:?} parsed");
        }
        assert!(Query::parse(&"a".repeat(600)).is_err());
    }
}
