//! What one goose user remembers between its requests: goose keeps one value per user, so
//! every scenario's memory is a field of [`Shopper`].
//!
//! Contract: a flow *takes* its state out ([`Shopper`]'s `Option` fields) at the start of a
//! step and puts it back only when the step succeeded. A failed step (already recorded in
//! goose's report) leaves nothing behind, so the following steps of that iteration skip
//! quietly instead of failing again on expectations that no longer hold.

use goose::prelude::*;

use crate::wire::Order;

/// A cart line the shopper expects: SKU, quantity, catalog price.
pub type Line = (String, u32, i64);

/// A guest cart being filled by the Cart flow.
#[derive(Debug, Clone)]
pub struct GuestCart {
    pub id: String,
    pub lines: Vec<Line>,
}

/// The customer account of the Checkout flow.
#[derive(Debug, Clone)]
pub struct Customer {
    pub email: String,
    pub password: String,
    pub token: String,
    pub cart_id: String,
    pub logged_in: std::time::Instant,
    /// What this visit put in the cart.
    pub lines: Vec<Line>,
    /// The order of this visit's checkout.
    pub order: Option<Order>,
}

/// A restock the Restock flow made and reads back.
#[derive(Debug, Clone)]
pub struct Restock {
    pub sku: String,
    pub warehouse: String,
    pub on_hand: u64,
}

/// One goose user's memory.
#[derive(Debug, Default)]
pub struct Shopper {
    /// SKUs seen on listing pages, to open one.
    pub seen: Vec<String>,
    pub cart: Option<GuestCart>,
    pub customer: Option<Customer>,
    pub restock: Option<Restock>,
    /// Restocks made, to go through the catalog in turn.
    pub restocks: usize,
}

/// This user's memory, created empty on first use.
pub fn shopper(user: &mut GooseUser) -> &mut Shopper {
    if user.get_session_data::<Shopper>().is_none() {
        user.set_session_data(Shopper::default());
    }
    user.get_session_data_unchecked_mut::<Shopper>()
}
