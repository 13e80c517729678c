//! A/B experiments: a stable assignment of each user key to one variant per experiment.
//!
//! Assignment is a pure function of `(experiment, key)` — a 64-bit FNV-1a hash mapped onto
//! the variants' weights — so every node, every restart and every event agrees on it
//! without storing anything. Funnel events carry the assignment ([`Experiments::variants_for`])
//! and analytics break conversion down by it.

use std::collections::BTreeMap;

use crate::events::Variants;
use crate::values::InvalidValue;

/// One experiment: its variants and their relative weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experiment {
    variants: Vec<(String, u32)>,
    total_weight: u64,
}

impl Experiment {
    /// The variant of `key`, stable across calls, nodes and restarts.
    pub fn assign(&self, name: &str, key: &str) -> &str {
        let mut point = fnv1a(name, key) % self.total_weight;
        for (variant, weight) in &self.variants {
            if point < u64::from(*weight) {
                return variant;
            }
            point -= u64::from(*weight);
        }
        // Unreachable: the weights sum to `total_weight`; the last variant is the safe answer.
        self.variants.last().map_or("", |(variant, _)| variant)
    }

    /// The variant names, in declaration order.
    pub fn variant_names(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|(name, _)| name.as_str())
    }
}

/// Every configured experiment, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Experiments {
    by_name: BTreeMap<String, Experiment>,
}

impl Experiments {
    /// Parse `name=variant[:weight],variant[:weight];name=…` (weight 1 when omitted), e.g.
    /// `checkout-button=control:50,green:50`. Empty text: no experiments.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let invalid = |expected: String| InvalidValue {
            field: "experiments",
            expected,
        };
        let mut by_name = BTreeMap::new();
        for spec in text
            .split(';')
            .map(str::trim)
            .filter(|spec| !spec.is_empty())
        {
            let (name, variants) = spec.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "`name=variant,variant` per experiment, got `{spec}`"
                ))
            })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(invalid(format!(
                    "an experiment name before `=` in `{spec}`"
                )));
            }
            let mut parsed = Vec::new();
            for variant in variants.split(',').map(str::trim) {
                let (variant, weight) = match variant.split_once(':') {
                    Some((variant, weight)) => {
                        let weight = weight.trim().parse::<u32>().map_err(|_| {
                            invalid(format!("a whole-number weight in `{variant}:{weight}`"))
                        })?;
                        (variant.trim(), weight)
                    }
                    None => (variant, 1),
                };
                if variant.is_empty() || weight == 0 {
                    return Err(invalid(format!(
                        "non-empty variants with weights above 0 in `{spec}`"
                    )));
                }
                parsed.push((variant.to_owned(), weight));
            }
            if parsed.len() < 2 {
                return Err(invalid(format!("at least two variants in `{spec}`")));
            }
            let total_weight = parsed.iter().map(|(_, weight)| u64::from(*weight)).sum();
            by_name.insert(
                name.to_owned(),
                Experiment {
                    variants: parsed,
                    total_weight,
                },
            );
        }
        Ok(Self { by_name })
    }

    /// The experiment `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Experiment> {
        self.by_name.get(name)
    }

    /// The variant of `key` in every experiment: what funnel events carry.
    pub fn variants_for(&self, key: &str) -> Variants {
        self.by_name
            .iter()
            .map(|(name, experiment)| (name.clone(), experiment.assign(name, key).to_owned()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// 64-bit FNV-1a of `name`, a zero byte, then `key`: stable across Rust versions and
/// platforms (unlike `std`'s hasher), which the assignment must be.
fn fnv1a(name: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes()
        .chain(std::iter::once(0))
        .chain(key.bytes())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_follows_the_weights() {
        let experiments = Experiments::parse("button=control:3,green:1").unwrap();
        let button = experiments.get("button").unwrap();
        let first = button.assign("button", "user-42").to_owned();
        assert_eq!(button.assign("button", "user-42"), first);
        let green = (0..4000)
            .filter(|i| button.assign("button", &format!("user-{i}")) == "green")
            .count();
        assert!((800..1200).contains(&green), "about a quarter, got {green}");
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        for bad in [
            "button",
            "button=one",
            "=a,b",
            "button=a:0,b",
            "button=a:x,b",
        ] {
            let error = Experiments::parse(bad).unwrap_err();
            assert_eq!(error.field, "experiments", "{bad}");
        }
        assert!(Experiments::parse("").unwrap().is_empty());
    }

    #[test]
    fn variants_for_names_every_experiment() {
        let experiments = Experiments::parse("a=x,y; b=p,q,r").unwrap();
        let variants = experiments.variants_for("k");
        assert_eq!(variants.len(), 2);
        assert!(["p", "q", "r"].contains(&variants["b"].as_str()));
    }
}
