//! Validated domain values, parsed once at the edge so that handlers only ever see valid
//! ones: [`Sku`], [`CartId`], [`Quantity`], [`Currency`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused; the message names what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {expected}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub expected: String,
}

fn invalid(field: &'static str, expected: impl Into<String>) -> InvalidValue {
    InvalidValue {
        field,
        expected: expected.into(),
    }
}

fn is_token(text: &str, max_len: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_len
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// A stock-keeping unit: 1 to 64 characters of letters, digits, `-`, `_` or `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if is_token(text, 64) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "sku",
                "1 to 64 characters of letters, digits, '-', '_' or '.'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cart's id: 1 to 64 characters of letters, digits, `-`, `_` or `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CartId(String);

impl CartId {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if is_token(text, 64) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "cart id",
                "1 to 64 characters of letters, digits, '-', '_' or '.'",
            ))
        }
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CartId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive number of units, at most [`Quantity::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(u32);

impl Quantity {
    /// The most units of one SKU a cart line may hold.
    pub const MAX: u32 = 99;

    pub fn new(units: i64) -> Result<Self, InvalidValue> {
        match u32::try_from(units) {
            Ok(units) if (1..=Self::MAX).contains(&units) => Ok(Self(units)),
            _ => Err(invalid(
                "quantity",
                format!("a whole number from 1 to {}", Self::MAX),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if text.len() == 3 && text.bytes().all(|byte| byte.is_ascii_uppercase()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid("currency", "three upper-case letters, e.g. USD"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_tokens() {
        assert!(Sku::parse("SKU-1_a.b").is_ok());
        for bad in ["", "has space", "ümlaut", &"x".repeat(65), "a/b"] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_are_bounded() {
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(99).map(Quantity::get), Ok(99));
        for bad in [0, -1, 100, i64::MAX, i64::MIN] {
            assert!(Quantity::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_are_iso_codes() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }
}
