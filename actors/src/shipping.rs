//! Shipping: the destination of an order and what shipping there costs.
//!
//! [`ShippingRates`] is a flat rate table by destination country, in cents of the cart's
//! currency, with an optional default (`*`) for every other country; it is configured per
//! node (`shipping_rates`, e.g. `US=500,DE=900,*=1500`). A country with no rate and no
//! default cannot be shipped to.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

/// Every officially assigned ISO 3166-1 alpha-2 code.
const ISO_3166_ALPHA_2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An ISO 3166-1 alpha-2 country code, upper-case (`US`, `DE`).
///
/// On the wire a string, checked again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country(String);

crate::values::string_value_serde!(Country);

impl Country {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if ISO_3166_ALPHA_2.binary_search(&text).is_ok() {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue {
                field: "shipping_address.country",
                expected: "an ISO 3166-1 alpha-2 country code in upper case, e.g. US or DE"
                    .to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order goes (also its stored form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: Country,
}

/// Longest accepted `name`, `line1` and `city`, in characters.
pub const MAX_ADDRESS_FIELD_CHARS: usize = 200;
/// Longest accepted `postal_code`.
pub const MAX_POSTAL_CODE_CHARS: usize = 16;

impl ShippingAddress {
    /// Check every field; `None` means the field was missing. The first problem is
    /// returned, naming the field.
    pub fn parse(
        name: Option<&str>,
        line1: Option<&str>,
        city: Option<&str>,
        postal_code: Option<&str>,
        country: Option<&str>,
    ) -> Result<Self, InvalidValue> {
        let text = |field: &'static str, value: Option<&str>, max: usize| {
            let value = value.map(str::trim).unwrap_or_default();
            let chars = value.chars().count();
            if chars == 0 || chars > max || value.chars().any(char::is_control) {
                Err(InvalidValue {
                    field,
                    expected: format!("1 to {max} characters, no control characters"),
                })
            } else {
                Ok(value.to_owned())
            }
        };
        let name = text("shipping_address.name", name, MAX_ADDRESS_FIELD_CHARS)?;
        let line1 = text("shipping_address.line1", line1, MAX_ADDRESS_FIELD_CHARS)?;
        let city = text("shipping_address.city", city, MAX_ADDRESS_FIELD_CHARS)?;
        let postal_code = text(
            "shipping_address.postal_code",
            postal_code,
            MAX_POSTAL_CODE_CHARS,
        )?;
        if !postal_code
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b' ' | b'-'))
        {
            return Err(InvalidValue {
                field: "shipping_address.postal_code",
                expected: format!("1 to {MAX_POSTAL_CODE_CHARS} letters, digits, spaces or '-'"),
            });
        }
        let country = Country::parse(country.unwrap_or_default())?;
        Ok(Self {
            name,
            line1,
            city,
            postal_code,
            country,
        })
    }
}

/// Flat shipping rates by destination country, in cents, with an optional default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShippingRates {
    by_country: BTreeMap<String, i64>,
    fallback: Option<i64>,
}

/// Largest rate accepted: 1 000 000 cents.
pub const MAX_RATE_CENTS: i64 = 1_000_000;

impl ShippingRates {
    /// From `(country or "*", cents)` pairs, as the node configuration gives them.
    pub fn from_table<'a>(
        table: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<Self, InvalidValue> {
        let mut rates = Self::default();
        for (country, cents) in table {
            let cents = i64::try_from(cents)
                .ok()
                .filter(|cents| *cents <= MAX_RATE_CENTS)
                .ok_or_else(|| InvalidValue {
                    field: "shipping_rates",
                    expected: format!("rates from 0 to {MAX_RATE_CENTS} cents"),
                })?;
            if country == "*" {
                rates.fallback = Some(cents);
            } else {
                let country = Country::parse(country).map_err(|_| InvalidValue {
                    field: "shipping_rates",
                    expected: format!("ISO 3166-1 alpha-2 countries or '*', not {country:?}"),
                })?;
                rates.by_country.insert(country.0, cents);
            }
        }
        Ok(rates)
    }

    /// Parse `US=500,DE=900,*=1500`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let expected = || {
            InvalidValue {
            field: "shipping_rates",
            expected: "a comma-separated list of COUNTRY=CENTS with '*' as the default, e.g. US=500,DE=900,*=1500".to_owned(),
        }
        };
        let mut pairs = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (country, cents) = entry.split_once('=').ok_or_else(expected)?;
            let cents: u64 = cents.trim().parse().map_err(|_| expected())?;
            pairs.push((country.trim(), cents));
        }
        Self::from_table(pairs)
    }

    /// The shipping cost to `country`; `None` when it cannot be shipped to.
    pub fn quote(&self, country: &Country) -> Option<i64> {
        self.by_country
            .get(country.as_str())
            .copied()
            .or(self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_list_is_sorted_so_binary_search_works() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ISO_3166_ALPHA_2.len(), 249);
    }

    #[test]
    fn countries_are_assigned_upper_case_codes() {
        assert!(Country::parse("DE").is_ok());
        for bad in ["de", "XX", "USA", "", "U"] {
            assert!(Country::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_with_and_without_a_default() {
        let rates = ShippingRates::parse("US=500, DE=900,*=1500").unwrap();
        let c = |code| Country::parse(code).unwrap();
        assert_eq!(rates.quote(&c("US")), Some(500));
        assert_eq!(rates.quote(&c("DE")), Some(900));
        assert_eq!(rates.quote(&c("FR")), Some(1500));
        let no_default = ShippingRates::parse("US=500").unwrap();
        assert_eq!(no_default.quote(&c("FR")), None);
        for bad in ["US", "US=x", "usa=1", "US=-1", "XX=1"] {
            assert!(ShippingRates::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_name_the_bad_field() {
        let ok = ShippingAddress::parse(
            Some("Ada"),
            Some("1 Main St"),
            Some("Springfield"),
            Some("12345"),
            Some("US"),
        );
        assert!(ok.is_ok());
        let missing = ShippingAddress::parse(Some("Ada"), None, Some("x"), Some("1"), Some("US"));
        assert_eq!(missing.unwrap_err().field, "shipping_address.line1");
        let country =
            ShippingAddress::parse(Some("A"), Some("l"), Some("c"), Some("1"), Some("us"));
        assert_eq!(country.unwrap_err().field, "shipping_address.country");
    }
}
