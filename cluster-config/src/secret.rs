//! [`Secret`]: a string that never shows up in logs.
//!
//! JWT keys, the admin password, the cluster secret and database passwords
//! travel through the configuration like any other value, but they must not
//! leak through a `{:?}` in a log line or a panic message. Wrapping them in a
//! newtype makes the safe thing the default: `Debug` prints `***`, there is no
//! `Display`, and reading the value takes an explicit [`Secret::expose`].

use std::fmt;

/// A secret string. `Debug` prints `***`; read it with [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call this only where the value is used (signing a
    /// token, opening a connection), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (safe to log; used by validation messages).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compares in time that depends only on the lengths, not on where the first
/// differing byte is.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2-hunter2-hunter2-hunter2-x");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2-hunter2-x");
        assert_eq!(s.len(), 33);
    }

    #[test]
    fn equality_compares_the_values() {
        assert_eq!(Secret::from("abc"), Secret::new("abc"));
        assert_ne!(Secret::from("abc"), Secret::new("abd"));
        assert_ne!(Secret::from("abc"), Secret::new("abcd"));
    }
}
