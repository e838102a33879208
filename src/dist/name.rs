//! Node names and cookies as types, so an unvalidated string can never be used as either.
//!
//! Erlang distinguishes long names (`name@host.domain` or `name@1.2.3.4`) from short names
//! (`name@host`); nodes of the two kinds cannot talk to each other, and Erlang refuses to mix
//! them. We validate and classify a name once, at the edge.

use std::fmt;

use thiserror::Error;

/// Whether a name's host part is fully qualified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `-name`: the host has dots (or is an IP address).
    Long,
    /// `-sname`: a bare host name.
    Short,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Long => "long",
            NameKind::Short => "short",
        })
    }
}

/// Why a string is not a node name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// No `@`, or more than one.
    #[error("invalid node name {0:?}: expected name@host")]
    Shape(String),
    /// The part before `@` has a character Erlang does not allow.
    #[error(
        "invalid node name {0:?}: the name part may contain only letters, digits, '_' and '-'"
    )]
    BadAlive(String),
    /// The whole name is longer than an atom may be.
    #[error("invalid node name {0:?}: longer than 255 characters")]
    TooLong(String),
}

/// A validated `name@host`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName {
    full: String,
    at: usize,
}

impl NodeName {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<NodeName, NameError> {
        let (alive, host) = s
            .split_once('@')
            .ok_or_else(|| NameError::Shape(s.into()))?;
        if alive.is_empty() || host.is_empty() || host.contains('@') {
            return Err(NameError::Shape(s.into()));
        }
        if !alive
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(NameError::BadAlive(s.into()));
        }
        if s.chars().count() > 255 {
            return Err(NameError::TooLong(s.into()));
        }
        Ok(NodeName {
            full: s.to_owned(),
            at: alive.len(),
        })
    }

    /// The whole name, `name@host`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The part before `@`: what the port mapper knows the node by.
    pub fn alive(&self) -> &str {
        &self.full[..self.at]
    }

    /// The part after `@`.
    pub fn host(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// Long or short.
    pub fn kind(&self) -> NameKind {
        let host = self.host();
        if host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
            NameKind::Long
        } else {
            NameKind::Short
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.full)
    }
}

impl std::str::FromStr for NodeName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeName::parse(s)
    }
}

/// The shared secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String);

impl Cookie {
    /// Wraps a cookie value.
    pub fn new(value: impl Into<String>) -> Cookie {
        Cookie(value.into())
    }

    /// The secret, for computing digests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<redacted>)")
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl serde::Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_classified() {
        let n = NodeName::parse("gate1@127.0.0.1").unwrap();
        assert_eq!(
            (n.alive(), n.host(), n.kind()),
            ("gate1", "127.0.0.1", NameKind::Long)
        );
        assert_eq!(NodeName::parse("a@box").unwrap().kind(), NameKind::Short);
        assert_eq!(
            NodeName::parse("a@b.example").unwrap().kind(),
            NameKind::Long
        );
        assert_eq!(NodeName::parse("a-b_c@h").unwrap().alive(), "a-b_c");
        for bad in ["", "a", "@h", "a@", "a@b@c", "a b@h", "é@h"] {
            assert!(NodeName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            NodeName::parse(&format!("{}@h", "a".repeat(300))),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn cookies_never_print() {
        let c = Cookie::new("s3cret");
        assert!(!format!("{c:?} {c}").contains("s3cret"));
        assert_eq!(c.expose(), "s3cret");
    }
}
