//! The scenarios: one module each, and their registration with goose.
//!
//! | scenario (`--scenarios`) | a goose user … |
//! | --- | --- |
//! | `browse` | lists a catalog page, searches a catalog word, opens a product page |
//! | `cart` | creates a guest cart, adds two items, changes a quantity, removes one, reads it back |
//! | `checkout` | signs up and logs in once, then fills its cart, checks out with the test card, reads the order |
//! | `restock` | as the admin, restocks a SKU in a warehouse of its own and reads the stock back |
//! | `storefront` | visits the shop like the four above, mixed by weight (`--mix`) |
//!
//! Each step is one goose transaction named like the shopper's step; every answer is
//! checked (status and body, see `crate::wire`).

pub mod browse;
pub mod cart;
pub mod checkout;
pub mod restock;
pub mod storefront;

use std::sync::Arc;

use goose::prelude::*;

use crate::options::Mix;
use crate::shop::{Admin, Shop};

/// A transaction named `$name` running `$step(user, &shop[, &admin])`.
macro_rules! step {
    ($name:expr, $step:path, $shop:expr) => {{
        let shop = ::std::sync::Arc::clone(&$shop);
        Transaction::new(::std::sync::Arc::new(move |user| {
            let shop = ::std::sync::Arc::clone(&shop);
            Box::pin(async move { $step(user, &shop).await })
        }))
        .set_name($name)
    }};
    ($name:expr, $step:path, $shop:expr, $admin:expr) => {{
        let shop = ::std::sync::Arc::clone(&$shop);
        let admin = ::std::sync::Arc::clone(&$admin);
        Transaction::new(::std::sync::Arc::new(move |user| {
            let shop = ::std::sync::Arc::clone(&shop);
            let admin = ::std::sync::Arc::clone(&admin);
            Box::pin(async move { $step(user, &shop, &admin).await })
        }))
        .set_name($name)
    }};
}
pub(crate) use step;

/// The scenario names, as `--scenarios` takes them.
pub const NAMES: [&str; 5] = ["browse", "cart", "checkout", "restock", "storefront"];

/// Whether `--scenarios` (`active`, matched by substring as goose does) selects `name`.
pub fn selected(active: &[String], name: &str) -> bool {
    active.iter().any(|a| name.contains(a.as_str()))
}

/// Whether a run of `active` scenarios needs the admin: checkouts need stock, restocks are
/// the admin's.
pub fn need_admin(active: &[String], mix: &Mix) -> bool {
    let runs = |name| selected(active, name);
    runs("checkout") || runs("restock") || (runs("storefront") && mix.needs_admin())
}

/// Registers the scenarios `active` selects (goose would list the others in its report,
/// idle); those that need the admin only with one.
pub fn register(
    mut attack: GooseAttack,
    active: &[String],
    shop: &Arc<Shop>,
    admin: Option<&Arc<Admin>>,
    mix: &Mix,
) -> Result<GooseAttack, GooseError> {
    let runs = |name| selected(active, name);
    if runs("browse") {
        attack = attack.register_scenario(browse::scenario(shop)?);
    }
    if runs("cart") {
        attack = attack.register_scenario(cart::scenario(shop)?);
    }
    if let Some(admin) = admin {
        if runs("checkout") {
            attack = attack.register_scenario(checkout::scenario(shop)?);
        }
        if runs("restock") {
            attack = attack.register_scenario(restock::scenario(shop, admin)?);
        }
    }
    if runs("storefront") && (admin.is_some() || !mix.needs_admin()) {
        attack = attack.register_scenario(storefront::scenario(shop, admin, mix)?);
    }
    Ok(attack)
}

/// The on-start step of every scenario: a user with `--hosts` goes to its node (user i to
/// node i mod n), so that the load is spread over the cluster.
pub async fn arrive(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    if shop.hosts.is_empty() {
        return Ok(());
    }
    let host = &shop.hosts[user.weighted_users_index % shop.hosts.len()];
    user.set_base_url(host)
}

/// A uniformly drawn index below `n` (`n` > 0).
pub fn pick(n: usize) -> usize {
    rand::random_range(0..n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_runs_with_checkouts_or_restocks_need_the_admin() {
        let mix = Mix::default();
        assert!(!need_admin(&active(&["browse", "cart"]), &mix));
        assert!(need_admin(&active(&["checkout"]), &mix));
        assert!(need_admin(&active(&["restock"]), &mix));
        assert!(need_admin(&active(&["storefront"]), &mix));
        let browsing = Mix::parse("browse=1,cart=1").unwrap();
        assert!(!need_admin(&active(&["storefront"]), &browsing));
        assert!(
            need_admin(&active(&["store"]), &mix),
            "goose matches substrings"
        );
    }
}
