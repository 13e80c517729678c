//! Validated domain values, parsed once at the edge so that handlers only ever see valid
//! ones: [`Sku`], [`CartId`], [`Quantity`], [`Currency`].

use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize};

/// Why a value was refused; the message names what is expected.
///
/// On the wire `field` is a string; decoding maps it back to a `&'static str` (see
/// [`field_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {expected}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub expected: String,
}

/// [`InvalidValue`] as decoded, before its field name is made `'static`.
#[derive(Deserialize)]
struct DecodedInvalidValue {
    field: String,
    expected: String,
}

/// By hand: a derive would borrow `field` from the input (`'de: 'static`), which rules out
/// `DeserializeOwned`.
impl<'de> Deserialize<'de> for InvalidValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = DecodedInvalidValue::deserialize(deserializer)?;
        Ok(Self {
            field: field_name(&decoded.field),
            expected: decoded.expected,
        })
    }
}

/// Every field name the domain refuses values of. A decoded [`InvalidValue`] names one of
/// these without allocating.
const KNOWN_FIELDS: &[&str] = &[
    "attributes",
    "cart id",
    "category",
    "currency",
    "description",
    "email",
    "experiments",
    "Idempotency-Key",
    "name",
    "password",
    "payment.token",
    "price_cents",
    "quantity",
    "shipping_address.city",
    "shipping_address.country",
    "shipping_address.line1",
    "shipping_address.name",
    "shipping_address.postal_code",
    "shipping_rates",
    "sku",
    "warehouse",
];

/// Most distinct field names outside [`KNOWN_FIELDS`] (from a peer running newer code) kept
/// for the life of the process; past it, such names decode as `"value"`.
const MAX_EXTRA_FIELDS: usize = 64;

/// The `&'static str` for a field name read from the wire: a known name, else the name
/// leaked once and reused (at most [`MAX_EXTRA_FIELDS`] of them), else `"value"`.
pub fn field_name(name: &str) -> &'static str {
    if let Some(known) = KNOWN_FIELDS.iter().find(|known| **known == name) {
        return known;
    }
    static EXTRA: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut extra = EXTRA.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(seen) = extra.iter().find(|seen| **seen == name) {
        return seen;
    }
    if extra.len() >= MAX_EXTRA_FIELDS {
        return "value";
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    extra.push(leaked);
    leaked
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
///
/// On the wire a string, checked again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
///
/// On the wire a string, checked again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
///
/// On the wire a number, checked again when decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
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
///
/// On the wire a string, checked again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

/// Decoding and encoding of the validated strings: decoding goes through the same parser as
/// the edge, so a payload from the wire or the store can never hold an invalid value.
macro_rules! string_value_serde {
    ($($type:ty),* $(,)?) => {$(
        impl TryFrom<String> for $type {
            type Error = InvalidValue;

            fn try_from(text: String) -> Result<Self, InvalidValue> {
                Self::parse(&text)
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.0
            }
        }
    )*};
}
pub(crate) use string_value_serde;

string_value_serde!(Sku, CartId, Currency);

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;

    fn try_from(units: i64) -> Result<Self, InvalidValue> {
        Self::new(units)
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.0
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
