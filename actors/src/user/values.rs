//! The validated values of an account: [`Email`], [`Password`], [`UserName`], [`Role`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

fn invalid(field: &'static str, expected: impl Into<String>) -> InvalidValue {
    InvalidValue {
        field,
        expected: expected.into(),
    }
}

/// A normalized e-mail address: trimmed and lower-cased, `local@domain`, at most 254 bytes.
/// Two addresses that differ only in case or surrounding spaces are the same account.
///
/// On the wire a string, checked (and normalized) again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address accepted, in bytes (RFC 5321's path limit less the brackets).
    pub const MAX_LEN: usize = 254;

    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let email = text.trim().to_lowercase();
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            (1..=64).contains(&local.len())
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with(['.', '-'])
                && !domain.ends_with(['.', '-'])
                && !domain.contains("..")
        });
        let clean = !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        if well_formed && clean && email.len() <= Self::MAX_LEN {
            Ok(Self(email))
        } else {
            Err(invalid(
                "email",
                format!(
                    "an e-mail address like ada@example.com, at most {} bytes",
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password in clear, as typed at sign-up: 8 to 1024 characters. `Debug` hides it and it
/// has no `Display` and no serde: it only ever goes to the hasher.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// A bound on what one request can make the hasher read, not a policy.
    pub const MAX_BYTES: usize = 1024;

    /// A new password (sign-up): the length rules apply.
    pub fn new(text: &str) -> Result<Self, InvalidValue> {
        if text.chars().count() >= Self::MIN_CHARS && text.len() <= Self::MAX_BYTES {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "password",
                format!(
                    "at least {} characters (at most {} bytes)",
                    Self::MIN_CHARS,
                    Self::MAX_BYTES
                ),
            ))
        }
    }

    /// A password as presented at login or configured by an operator: taken as it is (the
    /// rules may have changed since it was chosen). Its size is bounded by the request body
    /// limit; argon2 digests it once before the costly part, so length barely matters.
    pub fn presented(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The clear text, for the hasher only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1 to 100 characters once trimmed, no control characters.
///
/// On the wire a string, checked (and trimmed) again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

crate::values::string_value_serde!(Email, UserName);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let name = text.trim();
        let chars = name.chars().count();
        if (1..=Self::MAX_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(invalid(
                "name",
                format!(
                    "1 to {} characters without control characters",
                    Self::MAX_CHARS
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an account may do. Every account is a customer; admins also manage the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            Email::parse("  Ada.Lovelace+shop@Example.COM ").map(|e| e.0),
            Ok("ada.lovelace+shop@example.com".to_owned())
        );
        assert!(Email::parse("root@localhost").is_ok());
    }

    #[test]
    fn bad_emails_name_the_field() {
        let long = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("a@{}.com", "b".repeat(260));
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "ada@@example.com",
            "a@b@c",
            "ada lovelace@example.com",
            "ada@exa mple.com",
            "ada@.example.com",
            "ada@example.com.",
            "ada@example..com",
            "<ada@example.com>",
            "ada@exa\u{7}mple.com",
            "ada\u{0}@example.com",
            &long,
            &too_long,
        ] {
            let error = Email::parse(bad).expect_err(bad);
            assert_eq!(error.field, "email", "{bad:?}");
        }
    }

    #[test]
    fn passwords_have_a_minimum_length_and_hide_in_debug() {
        assert!(Password::new("12345678").is_ok());
        assert!(Password::new("ééééééée").is_ok(), "counted in characters");
        let error = Password::new("1234567").unwrap_err();
        assert_eq!(error.field, "password");
        assert!(Password::new(&"x".repeat(1025)).is_err());
        let password = Password::new("hunter2hunter2").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert_eq!(Password::presented("short").expose(), "short");
        let long = "é".repeat(600);
        assert_eq!(Password::presented(&long).expose(), long, "never cut");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada ").unwrap().as_str(), "Ada");
        for bad in ["", "   ", "a\u{0}b", &"n".repeat(101)] {
            assert_eq!(UserName::parse(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }

    #[test]
    fn roles_serialize_lowercase() {
        assert_eq!(Role::Admin.as_str(), "admin");
        assert_eq!(Role::Customer.as_str(), "customer");
    }
}
