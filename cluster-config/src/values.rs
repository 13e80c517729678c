//! Parsers for single values, and URL masking.
//!
//! Each parser takes the text of one value (whatever layer it came from) and
//! returns the typed value or, as the error, what was expected: the caller
//! adds the field's names, the bad value and its origin.

use std::net::SocketAddr;
use std::time::Duration;

/// The error of a parser: the "expected ..." part of the message.
pub(crate) type Expected = String;

pub(crate) const DURATION_EXPECTED: &str = "a duration like 30s, 5m or 250ms";

/// A humantime duration (`30s`, `5m`, `1h 30m`, `250ms`), greater than zero.
pub(crate) fn positive_duration(text: &str) -> Result<Duration, Expected> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err(format!("{DURATION_EXPECTED}, greater than zero")),
        Ok(d) => Ok(d),
        Err(_) => Err(DURATION_EXPECTED.to_owned()),
    }
}

/// `true/false/1/0/yes/no/on/off`, any case.
pub(crate) fn boolean(text: &str) -> Result<bool, Expected> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("a boolean: true/false, 1/0, yes/no or on/off".to_owned()),
    }
}

/// An IP socket address; port 0 is allowed (the OS picks one).
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, Expected> {
    text.trim().parse().map_err(|_| {
        "a socket address like 127.0.0.1:8080 or [::1]:8080 (an IP address, not a host name)"
            .to_owned()
    })
}

/// An integer in `min..=max`.
pub(crate) fn integer_in<T>(text: &str, min: T, max: T) -> Result<T, Expected>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let expected = || format!("a whole number from {min} to {max}");
    let n: T = text.trim().parse().map_err(|_| expected())?;
    if n < min || n > max {
        return Err(expected());
    }
    Ok(n)
}

/// A node id: `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
pub(crate) fn node_id(text: &str) -> Result<String, Expected> {
    if is_node_id(text) {
        Ok(text.to_owned())
    } else {
        Err(
            "1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
                .to_owned(),
        )
    }
}

pub(crate) fn is_node_id(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && text.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A `host:port` with a non-empty host and a port in 1..=65535 (`[v6]:port`
/// for IPv6).
pub(crate) fn host_port(text: &str) -> Result<(String, u16), Expected> {
    let (host, port) = text.rsplit_once(':').ok_or_else(String::new)?;
    let port: u16 = port.parse().map_err(|_| String::new())?;
    let host_ok = !host.is_empty()
        && port != 0
        && if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
    if host_ok {
        Ok((host.to_owned(), port))
    } else {
        Err(String::new())
    }
}

/// A comma-separated list of `host:port`; empty means none.
pub(crate) fn seeds(text: &str) -> Result<Vec<String>, Expected> {
    let expected =
        || "a comma-separated list of HOST:PORT like 10.0.0.2:7101,node3.internal:7101".to_owned();
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            host_port(s)
                .map(|(h, p)| format!("{h}:{p}"))
                .map_err(|_| expected())
        })
        .collect()
}

/// A URL with one of the given schemes and something after `://`.
pub(crate) fn url_with_scheme(text: &str, schemes: &[&str]) -> Result<String, Expected> {
    let text = text.trim();
    let ok = schemes.iter().any(|scheme| {
        text.strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
    });
    if ok {
        Ok(text.to_owned())
    } else {
        let forms: Vec<String> = schemes.iter().map(|s| format!("{s}://...")).collect();
        Err(format!("a URL like {}", forms.join(" or ")))
    }
}

/// A rate `N/s`, `N/m` or `N/h` (N in 1..=1000000), or `off`: `None`.
pub(crate) fn rate(text: &str) -> Result<Option<(u32, Duration)>, Expected> {
    let expected =
        || "a rate like 50/s, 600/m or 1000/h (1 to 1000000 per unit), or off".to_owned();
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (count, unit) = text.split_once('/').ok_or_else(expected)?;
    let count = integer_in(count, 1u32, 1_000_000).map_err(|_| expected())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(expected()),
    };
    Ok(Some((count, per)))
}

/// A key prefix: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-' or ':'.
pub(crate) fn key_prefix(text: &str) -> Result<String, Expected> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-' or ':'".to_owned())
    }
}

/// A `tracing_subscriber::EnvFilter` directive string (`info`,
/// `warn,emporium=debug`).
pub(crate) fn log_filter(text: &str) -> Result<String, Expected> {
    let expected = || "a tracing filter like info, debug or warn,emporium=debug".to_owned();
    if text.trim().is_empty() {
        return Err(expected());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{} ({e})", expected()))
}

/// A shipping rate table `US=500,DE=900,*=1500`: two upper-case letters (a country
/// code) or `*` (every other country) to cents, 0 to 1000000; at least one entry. Whether
/// each code is an assigned country is checked by the domain when the node starts.
pub(crate) fn shipping_rates(
    text: &str,
) -> Result<std::collections::BTreeMap<String, u64>, Expected> {
    let expected = || {
        "a comma-separated list of COUNTRY=CENTS with * for every other country, e.g. US=500,DE=900,*=1500 (0 to 1000000 cents)"
            .to_owned()
    };
    let mut table = std::collections::BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (country, cents) = entry.split_once('=').ok_or_else(expected)?;
        let country = country.trim();
        let is_code = country == "*"
            || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
        let cents = integer_in(cents, 0u64, 1_000_000).map_err(|_| expected())?;
        if !is_code || table.insert(country.to_owned(), cents).is_some() {
            return Err(expected());
        }
    }
    if table.is_empty() {
        return Err(expected());
    }
    Ok(table)
}

/// An e-mail address, checked only for shape (`local@domain`).
pub(crate) fn email(text: &str) -> Result<String, Expected> {
    let ok = text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !text.contains(char::is_whitespace)
    });
    if ok {
        Ok(text.to_owned())
    } else {
        Err("an e-mail address like admin@example.com".to_owned())
    }
}

/// A word of text without spaces or control characters (user names, data
/// center names).
pub(crate) fn word(text: &str) -> Result<String, Expected> {
    if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        Ok(text.to_owned())
    } else {
        Err("a non-empty name without spaces".to_owned())
    }
}

/// A JetStream stream name: 1 to 64 of `A-Z a-z 0-9 _ -` (NATS forbids `.`, `*`, `>`,
/// spaces and path separators in stream names; the narrower set is also file-name safe).
pub(crate) fn stream_name(text: &str) -> Result<String, Expected> {
    let ok = (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("a stream name of 1 to 64 letters, digits, _ or -".to_owned())
    }
}

/// `tantivy` (the in-process index): `None`; or a `meili://` / `meilis://` URL, whose parts
/// the Meilisearch adapter checks when the node starts.
pub(crate) fn search(text: &str) -> Result<Option<String>, Expected> {
    if text.trim() == "tantivy" {
        return Ok(None);
    }
    url_with_scheme(text, &["meili", "meilis"])
        .map(Some)
        .map_err(|_| "tantivy, or a URL like meili://host:7700?key=...&index=...".to_owned())
}

/// `memory` (the in-process bus): `None`; or a `nats://` URL.
pub(crate) fn events(text: &str) -> Result<Option<String>, Expected> {
    if text.trim() == "memory" {
        return Ok(None);
    }
    url_with_scheme(text, &["nats"])
        .map(Some)
        .map_err(|_| "memory, or a URL like nats://host:4222".to_owned())
}

/// A NATS subject prefix: empty, or dot-separated tokens of letters, digits, `_` and `-`.
pub(crate) fn subject_prefix(text: &str) -> Result<String, Expected> {
    let text = text.trim();
    let ok = text.is_empty()
        || (text.len() <= 64
            && text.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("dot-separated tokens of letters, digits, _ or - (at most 64 characters)".to_owned())
    }
}

/// Masks what in a URL may be a credential: the password of `user:pass@`
/// (a lone `token@` entirely), and the values of query parameters whose name
/// mentions a password, secret, token or key. Text without `://` comes back
/// as it is, unless it has an `@`: then all before it is masked.
pub(crate) fn mask_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        // Not a URL (a typo like `postgres:/u:pw@db`?): mask up to the '@'.
        return match text.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => text.to_owned(),
        };
    };
    // The last '@' ends the credentials even if they contain '/', '?' or '@'.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let userinfo = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => "***@".to_owned(),
        },
        None => String::new(),
    };
    let query = query.map(|q| {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_credential_name(k) => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        format!("?{}", params.join("&"))
    });
    format!("{scheme}://{userinfo}{rest}{}", query.unwrap_or_default())
}

fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key"]
        .iter()
        .any(|w| name.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(positive_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(positive_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("300").is_err());
        assert!(positive_duration("").is_err());
    }

    #[test]
    fn booleans() {
        for t in ["true", "1", "yes", "on", "TRUE", "On"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "0", "no", "off", "False", "OFF"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert!(boolean("maybe").is_err());
        assert!(boolean("").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(integer_in("5", 1usize, 10), Ok(5));
        assert!(integer_in("0", 1usize, 10).is_err());
        assert!(integer_in("11", 1usize, 10).is_err());
        assert!(integer_in("-1", 1usize, 10).is_err());
        assert!(integer_in("1e3", 1usize, 10_000).is_err());
    }

    #[test]
    fn node_ids() {
        for ok in ["node-1", "a", "A.b_c-d", "9", &"x".repeat(63)] {
            assert!(is_node_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-node",
            ".x",
            "node 1",
            "node/1",
            "nöde",
            &"x".repeat(64),
        ] {
            assert!(!is_node_id(bad), "{bad}");
        }
    }

    #[test]
    fn seed_lists() {
        assert_eq!(seeds(""), Ok(vec![]));
        assert_eq!(
            seeds(" 127.0.0.1:7101, node2.local:7102 ,[::1]:7103"),
            Ok(vec![
                "127.0.0.1:7101".to_owned(),
                "node2.local:7102".to_owned(),
                "[::1]:7103".to_owned()
            ])
        );
        for bad in [
            "host",
            "host:",
            ":7101",
            "host:0",
            "host:70000",
            "a b:1",
            "[zz]:1",
        ] {
            assert!(seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(url_with_scheme("redis://cache:6379", &["redis", "rediss"]).is_ok());
        assert!(url_with_scheme("rediss://cache:6379", &["redis", "rediss"]).is_ok());
        assert!(url_with_scheme("redis://", &["redis"]).is_err());
        assert!(url_with_scheme("http://cache", &["redis"]).is_err());
        assert_eq!(
            url_with_scheme("x", &["nats"]),
            Err("a URL like nats://...".to_owned())
        );
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(mask_url("nats://tok3n@bus:4222"), "nats://***@bus:4222");
        assert_eq!(
            mask_url("postgresql://db/shop?sslmode=require&password=x"),
            "postgresql://db/shop?sslmode=require&password=***"
        );
        assert_eq!(mask_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            mask_url("postgres://app:a/b?c@d@db/shop"),
            "postgres://app:***@db/shop"
        );
        assert_eq!(mask_url("embedded:/var/x"), "embedded:/var/x");
        assert_eq!(mask_url("postgres:/app:pw@db"), "***@db");
    }

    #[test]
    fn rates() {
        assert_eq!(rate("50/s"), Ok(Some((50, Duration::from_secs(1)))));
        assert_eq!(rate(" 600/m "), Ok(Some((600, Duration::from_secs(60)))));
        assert_eq!(rate("1/h"), Ok(Some((1, Duration::from_secs(3600)))));
        assert_eq!(rate("OFF"), Ok(None));
        for bad in ["50", "0/s", "50/d", "/s", "x/s", "1000001/s", ""] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_prefixes() {
        assert!(key_prefix("emporium").is_ok());
        assert!(key_prefix("test:run-1.a_b").is_ok());
        for bad in ["", "a b", "a*", &"x".repeat(65)] {
            assert!(key_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_filters() {
        assert!(log_filter("info").is_ok());
        assert!(log_filter("warn,emporium=debug").is_ok());
        assert!(log_filter("emporium=loud").is_err());
        assert!(log_filter(" ").is_err());
    }

    #[test]
    fn shipping_rate_tables() {
        let table = shipping_rates("US=500, DE=900,*=1500").unwrap();
        assert_eq!(table.get("US"), Some(&500));
        assert_eq!(table.get("*"), Some(&1500));
        assert_eq!(shipping_rates("US=0").unwrap().len(), 1);
        for bad in [
            "",
            "US",
            "us=1",
            "USA=1",
            "US=-1",
            "US=x",
            "US=1,US=2",
            "US=1000001",
        ] {
            assert!(shipping_rates(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(email("admin@example.com").is_ok());
        for bad in ["admin", "@x", "a@", "a@b@c", "a b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
