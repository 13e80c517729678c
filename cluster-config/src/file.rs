//! The TOML file layer.
//!
//! The file holds the same settings as the environment, under the TOML keys
//! (`idle_timeout = "5m"`), plus the `[scylla]` and `[postgres]` tables. A
//! key that is not a setting is an error: a typo must not silently leave the
//! default in place. TOML types are taken for what they say (`demo = false`,
//! `max_active_actors = 5000`, `seeds = ["a:7101", "b:7101"]`), and strings
//! work everywhere, the same as in the environment.

use std::path::Path;

use toml::Value;

use crate::error::{ConfigError, Origin};
use crate::fields::{self, Field};
use crate::layers::{Layer, Raw};

/// Reads the file; `named_by` is `--config` or `EMPORIUM_CONFIG`.
pub(crate) fn read(path: &Path, named_by: &'static str) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::FileRead {
        path: path.to_owned(),
        origin: named_by,
        source,
    })?;
    parse(&text, path)
}

/// Parses the text of the file at `path` into a layer.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Layer, ConfigError> {
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigError::FileSyntax {
                path: path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
    let mut layer = Layer::new();
    for (key, value) in table {
        if let Some(&table_name) = fields::TABLES.iter().find(|t| **t == key) {
            let Value::Table(inner) = value else {
                return Err(ConfigError::FileSyntax {
                    path: path.to_owned(),
                    message: format!(
                        "`{key}` must be a table: [{key}] with keys {}",
                        known_in(Some(table_name))
                    ),
                });
            };
            for (inner_key, value) in inner {
                let dotted = format!("{key}.{inner_key}");
                let field = fields::by_key(&dotted)
                    .ok_or_else(|| unknown(path, dotted.clone(), Some(table_name)))?;
                layer.insert(field.key, raw(field, value, path)?);
            }
        } else {
            let field = fields::by_key(&key)
                .filter(|f| !f.key.contains('.'))
                .ok_or_else(|| unknown(path, key.clone(), None))?;
            layer.insert(field.key, raw(field, value, path)?);
        }
    }
    Ok(layer)
}

/// A TOML value as the text the parsers take.
fn raw(field: &'static Field, value: Value, path: &Path) -> Result<Raw, ConfigError> {
    let origin = Origin::File(path.to_owned());
    let text = match value {
        Value::String(s) => Some(s),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(d) => Some(d.to_string()),
        // A list (`seeds`): comma-separated, as in the environment.
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        Value::Table(_) => None,
    };
    text.map(|text| Raw {
        text,
        origin: origin.clone(),
    })
    .ok_or_else(|| ConfigError::Invalid {
        key: field.key,
        env: field.env,
        value: None,
        expected: "a single value (a string, number or boolean) or a list of strings, not a table or a list of other things".to_owned(),
        origin,
    })
}

/// The keys allowed at the top level (`None`) or inside a table.
fn known_in(table: Option<&str>) -> String {
    let keys: Vec<&str> = match table {
        None => fields::ALL
            .iter()
            .map(|f| f.key)
            .filter(|k| !k.contains('.'))
            .chain(fields::TABLES.iter().copied())
            .collect(),
        Some(table) => fields::ALL
            .iter()
            .filter_map(|f| f.key.strip_prefix(table)?.strip_prefix('.'))
            .collect(),
    };
    keys.join(", ")
}

fn unknown(path: &Path, key: String, table: Option<&str>) -> ConfigError {
    ConfigError::UnknownKey {
        path: path.to_owned(),
        hint: closest(&key, table),
        key,
        known: known_in(table),
    }
}

/// The known key closest to `key`: the same key spelled as an environment
/// variable (`EMPORIUM_HTTP_ADDR`), or one within two typos.
fn closest(key: &str, table: Option<&str>) -> Option<String> {
    let level = |f: &&Field| match table {
        None => !f.key.contains('.'),
        Some(t) => f.key.starts_with(&format!("{t}.")),
    };
    let wanted = key.to_ascii_lowercase();
    let wanted = wanted.strip_prefix("emporium_").unwrap_or(&wanted);
    fields::ALL
        .iter()
        .filter(level)
        .map(|f| {
            (
                distance(wanted, &f.key.replace('.', "_")).min(distance(wanted, f.key)),
                f.key,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.to_owned())
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Layer, ConfigError> {
        parse(text, Path::new("/etc/emporium.toml"))
    }

    fn text(layer: &Layer, key: &str) -> String {
        layer.get(key).map(|r| r.text.clone()).unwrap_or_default()
    }

    #[test]
    fn toml_types_become_text() {
        let layer = p(r#"
            http_addr = "0.0.0.0:80"
            max_active_actors = 5000
            demo = false
            seeds = ["a:7101", "b:7102"]
            [scylla]
            replication_factor = 3
        "#)
        .expect("parses");
        assert_eq!(text(&layer, "http_addr"), "0.0.0.0:80");
        assert_eq!(text(&layer, "max_active_actors"), "5000");
        assert_eq!(text(&layer, "demo"), "false");
        assert_eq!(text(&layer, "seeds"), "a:7101,b:7102");
        assert_eq!(text(&layer, "scylla.replication_factor"), "3");
        assert_eq!(
            layer["demo"].origin,
            Origin::File("/etc/emporium.toml".into())
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = p("idle_timout = \"5m\"").expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.starts_with("unknown key `idle_timout` in config file /etc/emporium.toml (did you mean `idle_timeout`?)"),
            "{msg}"
        );
        assert!(msg.contains("http_addr, data_dir"), "{msg}");

        let err = p("[scylla]\nusr = \"x\"").expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("`scylla.usr`"), "{msg}");
        assert!(msg.contains("(did you mean `scylla.user`?)"), "{msg}");
        assert!(
            msg.contains("known keys are: user, password, replication_factor, datacenter"),
            "{msg}"
        );

        let err = p("EMPORIUM_HTTP_ADDR = \"x\"").expect_err("unknown");
        assert!(
            err.to_string().contains("did you mean `http_addr`?"),
            "{err}"
        );

        let err = p("[redis]\nurl = \"redis://x\"").expect_err("unknown");
        assert!(err.to_string().contains("unknown key `redis`"), "{err}");

        let err = p("user = \"x\"").expect_err("table keys only in their table");
        assert!(err.to_string().contains("unknown key `user`"), "{err}");
    }

    #[test]
    fn bad_shapes() {
        let err = p("scylla = 3").expect_err("not a table");
        assert!(
            err.to_string().contains("`scylla` must be a table"),
            "{err}"
        );
        let err = p("[log]\nlevel = \"x\"").expect_err("a table");
        assert!(
            err.to_string()
                .contains("invalid EMPORIUM_LOG (log): expected a single value"),
            "{err}"
        );
        let err = p("seeds = [1, 2]").expect_err("a list of numbers");
        assert!(
            err.to_string().contains("invalid EMPORIUM_SEEDS (seeds)"),
            "{err}"
        );
        let err = p("demo = ").expect_err("syntax");
        assert!(
            err.to_string()
                .starts_with("config file /etc/emporium.toml is not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", "abc"), 0);
    }
}
