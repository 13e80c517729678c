//! The load test's own options, taken out of the command line before goose parses the rest.
//!
//! Contract: goose's parser refuses flags it does not know, so [`split`] removes ours
//! (`--hosts`, `--mix`, `--admin-email`, as `--flag VALUE` or `--flag=VALUE`) and hands every
//! other argument to goose unchanged. Each option also has an environment variable; a flag
//! wins over it. The admin password is read from the environment only, never from the
//! command line, where `ps` would show it.

use std::fmt;

/// `LOAD_HOSTS`: nodes to spread the users over, comma-separated base URLs.
pub const HOSTS_ENV: &str = "LOAD_HOSTS";
/// `LOAD_MIX`: the storefront's weights, `browse=60,cart=25,checkout=10,restock=5`.
pub const MIX_ENV: &str = "LOAD_MIX";
/// `LOAD_ADMIN_EMAIL`: the admin who stocks the shop and restocks.
pub const ADMIN_EMAIL_ENV: &str = "LOAD_ADMIN_EMAIL";
/// `LOAD_ADMIN_PASSWORD`: that admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "LOAD_ADMIN_PASSWORD";

/// What goes into our usage, after goose's.
pub const USAGE: &str = "\
Emporium's options (flag, or environment variable):
  --hosts URL,URL,...     LOAD_HOSTS: spread the users over these nodes (user i on node i mod n);
                          the first is the host when --host is not given
  --mix SPEC              LOAD_MIX: the Storefront's weights (default browse=60,cart=25,checkout=10,restock=5)
  --admin-email EMAIL     LOAD_ADMIN_EMAIL: the admin who stocks the shop before the run and restocks
                          LOAD_ADMIN_PASSWORD: that admin's password (environment only)
Scenarios (--scenarios): browse, cart, checkout, restock, storefront (the default).";

/// Why the command line or the environment was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("invalid {what}: {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{set} is set without {missing}: give both or neither")]
    HalfAdmin {
        set: &'static str,
        missing: &'static str,
    },
}

/// The admin's login.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AdminLogin {
    pub email: String,
    pub password: String,
}

impl fmt::Debug for AdminLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminLogin")
            .field("email", &self.email)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The Storefront's weights: how many of every 100 visits (say) are of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub browse: usize,
    pub cart: usize,
    pub checkout: usize,
    pub restock: usize,
}

impl Default for Mix {
    /// Most visitors only look; a quarter put something in a cart; one in ten buys (a high
    /// conversion, so that the checkout saga carries real load); the admin's writes are rare.
    fn default() -> Self {
        Self {
            browse: 60,
            cart: 25,
            checkout: 10,
            restock: 5,
        }
    }
}

impl Mix {
    /// Parses `browse=60,cart=25,checkout=10,restock=5`; a kind left out weighs 0.
    pub fn parse(spec: &str) -> Result<Self, OptionsError> {
        let invalid = |why| OptionsError::Invalid {
            what: "mix",
            value: spec.to_owned(),
            why,
        };
        let mut mix = Mix {
            browse: 0,
            cart: 0,
            checkout: 0,
            restock: 0,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, weight) = part
                .split_once('=')
                .ok_or_else(|| invalid("expected kind=weight pairs"))?;
            let weight: usize = weight
                .trim()
                .parse()
                .map_err(|_| invalid("a weight is a whole number"))?;
            let slot = match kind.trim() {
                "browse" => &mut mix.browse,
                "cart" => &mut mix.cart,
                "checkout" => &mut mix.checkout,
                "restock" => &mut mix.restock,
                _ => return Err(invalid("kinds are browse, cart, checkout, restock")),
            };
            *slot = weight;
        }
        if mix.weights().iter().all(|w| *w == 0) {
            return Err(invalid("at least one weight above 0"));
        }
        Ok(mix)
    }

    /// The weights in the order browse, cart, checkout, restock.
    pub fn weights(&self) -> [usize; 4] {
        [self.browse, self.cart, self.checkout, self.restock]
    }

    /// Whether a visit of this mix needs the admin (stock for checkouts, or restocking).
    pub fn needs_admin(&self) -> bool {
        self.checkout > 0 || self.restock > 0
    }
}

/// Our options, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadOptions {
    pub hosts: Vec<String>,
    pub mix: Mix,
    pub admin: Option<AdminLogin>,
}

/// Takes our options out of `args` (flags, then `env` for what no flag gave); answers them
/// and the arguments left for goose.
pub fn split(
    args: Vec<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(LoadOptions, Vec<String>), OptionsError> {
    let mut hosts = None;
    let mut mix = None;
    let mut admin_email = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--hosts" => &mut hosts,
            "--mix" => &mut mix,
            "--admin-email" => &mut admin_email,
            _ => {
                rest.push(arg);
                continue;
            }
        };
        let name = match flag.as_str() {
            "--hosts" => "--hosts",
            "--mix" => "--mix",
            _ => "--admin-email",
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or(OptionsError::MissingValue(name))?;
        *slot = Some(value);
    }
    let hosts = hosts.or_else(|| env(HOSTS_ENV)).unwrap_or_default();
    let mix = match mix.or_else(|| env(MIX_ENV)) {
        Some(spec) => Mix::parse(&spec)?,
        None => Mix::default(),
    };
    let admin = admin_login(
        admin_email.or_else(|| env(ADMIN_EMAIL_ENV)),
        env(ADMIN_PASSWORD_ENV),
    )?;
    let options = LoadOptions {
        hosts: parse_hosts(&hosts)?,
        mix,
        admin,
    };
    Ok((options, rest))
}

fn parse_hosts(list: &str) -> Result<Vec<String>, OptionsError> {
    let hosts: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_end_matches('/').to_owned())
        .collect();
    match hosts
        .iter()
        .find(|h| !h.starts_with("http://") && !h.starts_with("https://"))
    {
        Some(bad) => Err(OptionsError::Invalid {
            what: "hosts",
            value: bad.clone(),
            why: "each host is a base URL like http://127.0.0.11:8080",
        }),
        None => Ok(hosts),
    }
}

fn admin_login(
    email: Option<String>,
    password: Option<String>,
) -> Result<Option<AdminLogin>, OptionsError> {
    let email = email.filter(|e| !e.is_empty());
    let password = password.filter(|p| !p.is_empty());
    match (email, password) {
        (Some(email), Some(password)) => Ok(Some(AdminLogin { email, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(OptionsError::HalfAdmin {
            set: "the admin's e-mail",
            missing: ADMIN_PASSWORD_ENV,
        }),
        (None, Some(_)) => Err(OptionsError::HalfAdmin {
            set: ADMIN_PASSWORD_ENV,
            missing: "the admin's e-mail",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn our_flags_are_taken_out_and_goose_keeps_the_rest() {
        let (options, rest) = split(
            args(&[
                "--host",
                "http://a:1",
                "--hosts=http://b:2/,http://c:3",
                "-u",
                "5",
                "--mix",
                "browse=1,checkout=1",
                "--run-time",
                "5s",
            ]),
            no_env,
        )
        .unwrap();
        assert_eq!(
            rest,
            args(&["--host", "http://a:1", "-u", "5", "--run-time", "5s"])
        );
        assert_eq!(options.hosts, args(&["http://b:2", "http://c:3"]));
        assert_eq!(options.mix.weights(), [1, 0, 1, 0]);
        assert!(options.mix.needs_admin());
        assert_eq!(options.admin, None);
    }

    #[test]
    fn a_flag_wins_over_the_environment_and_the_password_comes_from_it() {
        let env = |key: &str| match key {
            ADMIN_EMAIL_ENV => Some("env@x.io".to_owned()),
            ADMIN_PASSWORD_ENV => Some("secret-pw".to_owned()),
            MIX_ENV => Some("browse=3".to_owned()),
            _ => None,
        };
        let (options, _) = split(args(&["--admin-email", "flag@x.io"]), env).unwrap();
        let admin = options.admin.unwrap();
        assert_eq!(admin.email, "flag@x.io");
        assert_eq!(admin.password, "secret-pw");
        assert_eq!(options.mix.weights(), [3, 0, 0, 0]);
        assert!(!format!("{admin:?}").contains("secret-pw"));
    }

    #[test]
    fn bad_options_are_refused() {
        assert_eq!(
            split(args(&["--mix"]), no_env).unwrap_err(),
            OptionsError::MissingValue("--mix")
        );
        assert!(split(args(&["--hosts", "127.0.0.1:8080"]), no_env).is_err());
        assert!(split(args(&["--admin-email", "a@x.io"]), no_env).is_err());
        assert!(Mix::parse("browse=0").is_err());
        assert!(Mix::parse("browse=ten").is_err());
        assert!(Mix::parse("shoplift=1").is_err());
        assert!(
            Mix::parse("")
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
    }

    #[test]
    fn the_default_mix_is_60_25_10_5() {
        assert_eq!(Mix::default().weights(), [60, 25, 10, 5]);
    }
}
