//! The four layers and the one rule that stacks them.
//!
//! Each layer is a map from a field's TOML key to the text of its value and
//! where that text came from: the built-in defaults, the TOML file, the
//! environment, the command line. [`resolve`] stacks them, highest precedence
//! last, so for each field the value of the highest layer that sets it wins:
//!
//! ```text
//! flags  >  environment  >  TOML file  >  built-in defaults
//! ```
//!
//! Values stay text until the stack is resolved and are parsed once, by the
//! same parser whatever layer won, so every layer accepts the same forms and
//! every error message has the same shape. A layer that sets an optional
//! field to the empty string unsets it (so `EMPORIUM_REDIS_URL=` turns off a
//! Redis URL from the file).

use std::collections::BTreeMap;

use crate::error::{ConfigError, Origin};
use crate::fields::{self, Field, Shown};
use crate::values::{self, Expected};

/// One value as given, before parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Raw {
    pub text: String,
    pub origin: Origin,
}

/// One layer: TOML key → value.
pub(crate) type Layer = BTreeMap<&'static str, Raw>;

/// The precedence rule: later layers win. This is the only place it is
/// written down.
pub(crate) fn resolve(defaults: Layer, file: Layer, env: Layer, flags: Layer) -> Resolved {
    let mut winner = defaults;
    for layer in [file, env, flags] {
        winner.extend(layer);
    }
    Resolved(winner)
}

/// The built-in defaults, `node_id` included (`node-<hostname>`).
pub(crate) fn defaults(
    env: &dyn Fn(&str) -> Option<String>,
    hostname_file: &dyn Fn() -> Option<String>,
) -> Layer {
    let mut layer: Layer = fields::ALL
        .iter()
        .filter_map(|f| {
            let text = f.default?.to_owned();
            Some((
                f.key,
                Raw {
                    text,
                    origin: Origin::Default,
                },
            ))
        })
        .collect();
    layer.insert(
        fields::NODE_ID.key,
        Raw {
            text: default_node_id(env, hostname_file),
            origin: Origin::Default,
        },
    );
    layer
}

/// `node-` + the host name (the `HOSTNAME` variable, else `/etc/hostname`),
/// with characters a node id cannot have replaced by `-`; `node-1` when
/// there is no host name.
pub(crate) fn default_node_id(
    env: &dyn Fn(&str) -> Option<String>,
    hostname_file: &dyn Fn() -> Option<String>,
) -> String {
    let host = env("HOSTNAME")
        .filter(|h| !h.trim().is_empty())
        .or_else(hostname_file)
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63 - "node-".len())
        .collect();
    let id = format!("node-{host}");
    if host.is_empty() || !values::is_node_id(&id) {
        "node-1".to_owned()
    } else {
        id
    }
}

/// `/etc/hostname`, if it can be read.
pub(crate) fn read_etc_hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname").ok()
}

/// The fields' environment variables that are set.
pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    fields::ALL
        .iter()
        .filter_map(|f| {
            let text = env(f.env)?;
            Some((
                f.key,
                Raw {
                    text,
                    origin: Origin::Env,
                },
            ))
        })
        .collect()
}

/// The winning value of every field, with typed accessors that turn a bad
/// value into a [`ConfigError::Invalid`] naming the field.
#[derive(Debug)]
pub(crate) struct Resolved(Layer);

impl Resolved {
    fn get(&self, field: &Field) -> Option<&Raw> {
        self.0.get(field.key)
    }

    /// Whether the field has a non-empty value.
    pub(crate) fn is_set(&self, field: &Field) -> bool {
        self.get(field)
            .is_some_and(|raw| !raw.text.trim().is_empty())
    }

    /// A field that always has a value (it has a default).
    pub(crate) fn required<T>(
        &self,
        field: &Field,
        parse: impl FnOnce(&str) -> Result<T, Expected>,
    ) -> Result<T, ConfigError> {
        let missing = Raw {
            text: String::new(),
            origin: Origin::Default,
        };
        let raw = self.get(field).unwrap_or(&missing);
        parse(&raw.text).map_err(|expected| invalid(field, raw, expected))
    }

    /// An optional field: `None` when no layer sets it, or the winning layer
    /// sets it to the empty string.
    pub(crate) fn optional<T>(
        &self,
        field: &Field,
        parse: impl FnOnce(&str) -> Result<T, Expected>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(field) {
            Some(raw) if !raw.text.trim().is_empty() => parse(&raw.text)
                .map(Some)
                .map_err(|expected| invalid(field, raw, expected)),
            _ => Ok(None),
        }
    }

    /// `field (origin)`, for conflict messages: names the field by env var
    /// and key, and says where its value came from.
    pub(crate) fn describe(&self, field: &Field) -> String {
        let origin = match self.get(field).map(|raw| &raw.origin) {
            Some(Origin::Env) | None => String::new(),
            Some(other) => format!(", {other}"),
        };
        format!("{} ({}{origin})", field.env, field.key)
    }

    /// The error for two fields of which exactly one is set.
    pub(crate) fn both_or_neither(&self, a: &Field, b: &Field) -> ConfigError {
        let (set, unset) = if self.is_set(a) { (a, b) } else { (b, a) };
        ConfigError::Conflict {
            message: format!(
                "{} ({}) and {} ({}) go together, set both or neither: {} is set but {} is not",
                a.env,
                a.key,
                b.env,
                b.key,
                self.describe(set),
                unset.env,
            ),
        }
    }
}

/// The error for a bad value, showing as much of it as the field allows.
fn invalid(field: &Field, raw: &Raw, expected: Expected) -> ConfigError {
    let value = match field.shown {
        Shown::Plain => Some(raw.text.clone()),
        Shown::Url => Some(values::mask_url(&raw.text)),
        Shown::Secret => None,
    };
    ConfigError::Invalid {
        key: field.key,
        env: field.env,
        value,
        expected,
        origin: raw.origin.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str, origin: Origin) -> Raw {
        Raw {
            text: text.to_owned(),
            origin,
        }
    }

    fn layer(origin: Origin, text: &str) -> Layer {
        [("http_addr", raw(text, origin))].into_iter().collect()
    }

    #[test]
    fn later_layers_win() {
        let file = Origin::File("/etc/e.toml".into());
        let all = resolve(
            layer(Origin::Default, "d"),
            layer(file.clone(), "f"),
            layer(Origin::Env, "e"),
            layer(Origin::Flag("--http-addr"), "c"),
        );
        assert_eq!(all.0["http_addr"].text, "c");
        let no_flag = resolve(
            layer(Origin::Default, "d"),
            layer(file.clone(), "f"),
            layer(Origin::Env, "e"),
            Layer::new(),
        );
        assert_eq!(no_flag.0["http_addr"].text, "e");
        let file_only = resolve(
            layer(Origin::Default, "d"),
            layer(file.clone(), "f"),
            Layer::new(),
            Layer::new(),
        );
        assert_eq!(file_only.0["http_addr"], raw("f", file));
    }

    #[test]
    fn node_id_from_the_host_name() {
        let none = |_: &str| None;
        let no_file = || None;
        let host = |name: &'static str| move |k: &str| (k == "HOSTNAME").then(|| name.to_owned());
        assert_eq!(default_node_id(&host("web-3"), &no_file), "node-web-3");
        assert_eq!(
            default_node_id(&none, &|| Some("box.lan\n".to_owned())),
            "node-box.lan"
        );
        assert_eq!(default_node_id(&none, &no_file), "node-1");
        assert_eq!(default_node_id(&host("  "), &no_file), "node-1");
        assert_eq!(default_node_id(&host("my box!"), &no_file), "node-my-box-");
        let long_name = "h".repeat(100);
        let long = default_node_id(&|_: &str| Some(long_name.clone()), &no_file);
        assert_eq!(long.len(), 63);
        assert!(values::is_node_id(&long));
    }

    #[test]
    fn empty_unsets_an_optional_field() {
        let r = resolve(
            [("redis_url", raw("redis://x", Origin::Default))]
                .into_iter()
                .collect(),
            Layer::new(),
            [("redis_url", raw("", Origin::Env))].into_iter().collect(),
            Layer::new(),
        );
        assert_eq!(
            r.optional(&fields::REDIS_URL, |t| Ok(t.to_owned())).ok(),
            Some(None)
        );
    }
}
