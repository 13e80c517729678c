//! The `meili://` address of a Meilisearch index, as the node's configuration gives it.
//!
//! `meili://host[:port][/path]?key=KEY&index=NAME` speaks HTTP to the server,
//! `meilis://…` HTTPS. Both parameters are optional: without `key` the requests carry no
//! `Authorization` header (a server without a master key), without `index` the index is
//! [`DEFAULT_INDEX`]. The port defaults to Meilisearch's own 7700 for `meili://` and to 443
//! for `meilis://` (a server behind a TLS-terminating proxy). A path is kept as the prefix
//! of every API path, for a server behind a proxy that mounts it below one.
//!
//! The key is percent-decoded (`key=a%2Bb` is `a+b`); the other parts must be as written.
//! Anything else (user info, a fragment, an unknown or repeated parameter) is refused by
//! name rather than ignored, so a typo does not silently connect somewhere else.

use reqwest::Url;

/// The index used when the address names none.
pub const DEFAULT_INDEX: &str = "products";

/// Meilisearch's own port, the default of `meili://`.
pub const DEFAULT_PORT: u16 = 7700;

/// The longest index uid Meilisearch accepts, in bytes.
const MAX_INDEX_BYTES: usize = 400;

/// What a `meili://` address says: where the server is, how to authenticate, which index.
#[derive(Clone, PartialEq, Eq)]
pub struct MeiliSettings {
    /// The server's base URL, `http://…` or `https://…`, without a trailing slash.
    pub url: String,
    /// The API key sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// The index uid.
    pub index: String,
}

/// Keeps the API key out of logs.
impl std::fmt::Debug for MeiliSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("index", &self.index)
            .finish()
    }
}

/// Why a `meili://` address was refused; each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeiliUrlError {
    #[error("not a URL ({0}); expected meili://host:port?key=…&index=…")]
    Syntax(String),
    #[error("scheme {0:?}: expected meili:// (HTTP) or meilis:// (HTTPS)")]
    Scheme(String),
    #[error("no host; expected meili://host:port?key=…&index=…")]
    MissingHost,
    #[error("user info before the host is not supported; give the API key as ?key=…")]
    UserInfo,
    #[error("a fragment (#…) is not supported")]
    Fragment,
    #[error("unknown parameter {0:?}: expected key or index")]
    UnknownParameter(String),
    #[error("parameter {0:?} given twice")]
    RepeatedParameter(String),
    #[error("parameter key is empty; leave it out for a server without a master key")]
    EmptyKey,
    #[error("index {0:?}: expected 1 to {MAX_INDEX_BYTES} characters of a-z, A-Z, 0-9, '-' or '_'")]
    Index(String),
}

/// Parse a `meili://` or `meilis://` address (see the module documentation).
pub fn parse_meili_url(address: &str) -> Result<MeiliSettings, MeiliUrlError> {
    let parsed = Url::parse(address).map_err(|error| MeiliUrlError::Syntax(error.to_string()))?;
    let (http_scheme, default_port) = match parsed.scheme() {
        "meili" => ("http", DEFAULT_PORT),
        "meilis" => ("https", 443),
        other => return Err(MeiliUrlError::Scheme(other.to_owned())),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(MeiliUrlError::UserInfo);
    }
    if parsed.fragment().is_some() {
        return Err(MeiliUrlError::Fragment);
    }
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(MeiliUrlError::MissingHost),
    };
    let port = parsed.port().unwrap_or(default_port);
    let path = parsed.path().trim_end_matches('/');
    let (api_key, index) = parameters(&parsed)?;
    Ok(MeiliSettings {
        url: format!("{http_scheme}://{host}:{port}{path}"),
        api_key,
        index: index.unwrap_or_else(|| DEFAULT_INDEX.to_owned()),
    })
}

/// The `key` and `index` parameters, each at most once.
fn parameters(parsed: &Url) -> Result<(Option<String>, Option<String>), MeiliUrlError> {
    let mut key = None;
    let mut index = None;
    for (name, value) in parsed.query_pairs() {
        let slot = match name.as_ref() {
            "key" => &mut key,
            "index" => &mut index,
            other => return Err(MeiliUrlError::UnknownParameter(other.to_owned())),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(MeiliUrlError::RepeatedParameter(name.into_owned()));
        }
    }
    if key.as_deref() == Some("") {
        return Err(MeiliUrlError::EmptyKey);
    }
    if let Some(name) = &index {
        check_index_name(name)?;
    }
    Ok((key, index))
}

/// Meilisearch's rule for index uids: 1 to 400 bytes of ASCII letters, digits, `-`, `_`.
pub fn check_index_name(name: &str) -> Result<(), MeiliUrlError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_INDEX_BYTES
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(MeiliUrlError::Index(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, key: Option<&str>, index: &str) -> MeiliSettings {
        MeiliSettings {
            url: url.to_owned(),
            api_key: key.map(str::to_owned),
            index: index.to_owned(),
        }
    }

    #[test]
    fn parses_host_port_key_and_index() {
        assert_eq!(
            parse_meili_url("meili://search.internal:7701?key=s3cr%2Bt&index=shop_1"),
            Ok(settings(
                "http://search.internal:7701",
                Some("s3cr+t"),
                "shop_1"
            ))
        );
        assert_eq!(
            parse_meili_url("meilis://10.0.0.7:8443?index=products-eu&key=k"),
            Ok(settings("https://10.0.0.7:8443", Some("k"), "products-eu"))
        );
    }

    #[test]
    fn defaults_port_key_and_index() {
        assert_eq!(
            parse_meili_url("meili://127.0.0.1"),
            Ok(settings("http://127.0.0.1:7700", None, DEFAULT_INDEX))
        );
        assert_eq!(
            parse_meili_url("meilis://search.example.com/"),
            Ok(settings(
                "https://search.example.com:443",
                None,
                DEFAULT_INDEX
            ))
        );
        assert_eq!(
            parse_meili_url("meili://[::1]:7700"),
            Ok(settings("http://[::1]:7700", None, DEFAULT_INDEX))
        );
    }

    #[test]
    fn keeps_a_path_prefix() {
        assert_eq!(
            parse_meili_url("meilis://proxy.example.com/search/?key=k").map(|s| s.url),
            Ok("https://proxy.example.com:443/search".to_owned())
        );
    }

    #[test]
    fn refuses_bad_parts_by_name() {
        use MeiliUrlError::*;
        let cases = [
            ("http://127.0.0.1:7700", Scheme("http".to_owned())),
            ("meili://user:pw@host", UserInfo),
            ("meili://host#top", Fragment),
            ("meili://host?kye=x", UnknownParameter("kye".to_owned())),
            (
                "meili://host?key=a&key=b",
                RepeatedParameter("key".to_owned()),
            ),
            (
                "meili://host?index=a&index=b",
                RepeatedParameter("index".to_owned()),
            ),
            ("meili://host?key=", EmptyKey),
            (
                "meili://host?index=my.products",
                Index("my.products".to_owned()),
            ),
            ("meili://host?index=", Index(String::new())),
        ];
        for (address, expected) in cases {
            assert_eq!(parse_meili_url(address), Err(expected), "{address}");
        }
        for address in ["meili://", "meili:///products", "meili:host"] {
            assert_eq!(parse_meili_url(address), Err(MissingHost), "{address}");
        }
        assert!(matches!(parse_meili_url("not a url"), Err(Syntax(_))));
        assert!(matches!(
            parse_meili_url("meili://host:99999"),
            Err(Syntax(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let shown = format!("{:?}", settings("http://h:1", Some("hunter2"), "p"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
