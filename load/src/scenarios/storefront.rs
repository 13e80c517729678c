//! Storefront: the shop as its visitors use it. Each goose user makes visits of four kinds —
//! browsing, a cart, a checkout, the admin's restock — in the proportions of the mix
//! (`--mix`, default browse 60 / cart 25 / checkout 10 / restock 5).
//!
//! Why those weights: most visits of a shop only look at products; about a quarter put
//! something in a cart (cart creation and writes are the actors' hottest writes); one in
//! ten buys, a high conversion rate on purpose, so the checkout saga (17 durable writes per
//! order) weighs on the run as it would on a busy sale day; admin writes are rare. Each
//! visit is one goose transaction (its requests are named like the steps of the scenario
//! of its kind), and goose runs them in the weighted order round robin per user.

use std::sync::Arc;

use goose::prelude::*;

use super::{arrive, browse, cart, checkout, restock, step};
use crate::options::Mix;
use crate::shop::{Admin, Shop};

pub fn scenario(
    shop: &Arc<Shop>,
    admin: Option<&Arc<Admin>>,
    mix: &Mix,
) -> Result<Scenario, GooseError> {
    let divisor = mix.weights().into_iter().fold(0, gcd).max(1);
    let mut scenario =
        scenario!("Storefront").register_transaction(step!("arrive", arrive, shop).set_on_start());
    if mix.browse > 0 {
        scenario = scenario.register_transaction(
            step!("a browsing visit", browsing_visit, shop).set_weight(mix.browse / divisor)?,
        );
    }
    if mix.cart > 0 {
        scenario = scenario.register_transaction(
            step!("a cart visit", cart::visit, shop).set_weight(mix.cart / divisor)?,
        );
    }
    if let Some(admin) = admin {
        if mix.checkout > 0 {
            scenario = scenario.register_transaction(
                step!("a checkout visit", checkout::visit, shop)
                    .set_weight(mix.checkout / divisor)?,
            );
        }
        if mix.restock > 0 {
            scenario = scenario.register_transaction(
                step!("a restock visit", restock::visit, shop, admin)
                    .set_weight(mix.restock / divisor)?,
            );
        }
    }
    Ok(scenario)
}

/// List, search, open a product.
async fn browsing_visit(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    browse::list_products(user, shop).await?;
    browse::search_catalog(user, shop).await?;
    browse::open_product_page(user, shop).await
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::gcd;

    #[test]
    fn weights_are_reduced_by_their_gcd() {
        assert_eq!([60, 25, 10, 5].into_iter().fold(0, gcd), 5);
        assert_eq!([3, 0, 0, 0].into_iter().fold(0, gcd), 3);
        assert_eq!([0, 0, 0, 0].into_iter().fold(0, gcd), 0);
    }
}
