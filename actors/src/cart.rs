//! The cart actor: one per cart id, guest or owned.
//!
//! A cart holds lines of `(sku, quantity, unit price at add time)`. Adding a SKU asks its
//! product actor for the current price; later price changes do not touch lines already in
//! the cart. Limits: at most [`MAX_LINES`] lines and [`Quantity::MAX`] units per line.

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use crate::catalog::{ProductActor, ProductCommand};
use crate::values::{Currency, Quantity, Sku};

/// The most distinct SKUs one cart may hold.
pub const MAX_LINES: usize = 50;

/// One line of a cart (also its stored form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: Sku,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// A cart's stored state. `created` tells a real cart from a never-created id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartState {
    pub created: bool,
    /// The user owning the cart; `None` for a guest cart.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub currency: Currency,
    #[serde(default)]
    pub lines: Vec<CartLine>,
    /// The checkout holding this cart: its lines cannot change and no other checkout may
    /// start until it completes (lines emptied) or aborts (lines kept).
    #[serde(default)]
    pub checkout: Option<String>,
}

/// What callers see of a cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartView {
    pub id: String,
    pub owner: Option<String>,
    pub items: Vec<CartLine>,
    pub subtotal_cents: i64,
    pub currency: Currency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    /// Create the cart (idempotent: creating an existing cart returns it unchanged).
    Create {
        owner: Option<String>,
    },
    Get,
    /// Add units of a SKU, priced now; adds to an existing line.
    AddItem {
        sku: Sku,
        quantity: Quantity,
    },
    /// Set a line's quantity; `0` removes the line.
    SetQuantity {
        sku: Sku,
        quantity: u32,
    },
    RemoveItem {
        sku: Sku,
    },
    /// Lock the cart for checkout `checkout_id` and answer its lines. The cart must be
    /// owned by `user` (a guest cart is refused). Repeating it with the same id is harmless.
    BeginCheckout {
        user: String,
        checkout_id: String,
    },
    /// The checkout placed its order: empty the lines and unlock. Idempotent.
    CompleteCheckout {
        checkout_id: String,
    },
    /// The checkout failed: unlock, lines intact. Idempotent; ignores other checkouts.
    AbortCheckout {
        checkout_id: String,
    },
    /// Login merge: add a guest cart's lines (priced in `currency`) to this cart, by the
    /// rules of [`crate::user::merge`]; lines that do not fit are left out, not refused.
    MergeFrom {
        lines: Vec<CartLine>,
        currency: Currency,
    },
}

/// Why a cart refused a command. These are answers, not failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CartRejection {
    #[error("cart not found")]
    NotFound,
    #[error("unknown sku {0}")]
    UnknownSku(Sku),
    #[error("sku {0} is not in the cart")]
    LineNotFound(Sku),
    #[error("a cart holds at most {max} different items")]
    TooManyLines { max: usize },
    #[error("a cart line holds at most {max} units")]
    QuantityTooLarge { max: u32 },
    #[error("{product} is priced in {product_currency}, the cart in {cart_currency}")]
    CurrencyMismatch {
        product: Sku,
        product_currency: Currency,
        cart_currency: Currency,
    },
    #[error("this cart belongs to another user")]
    NotYourCart,
    #[error("a checkout of this cart is in progress")]
    CheckoutInProgress,
}

impl CartCommand {
    /// Whether the command changes the lines (refused while a checkout holds the cart).
    fn changes_lines(&self) -> bool {
        matches!(
            self,
            Self::AddItem { .. }
                | Self::SetQuantity { .. }
                | Self::RemoveItem { .. }
                | Self::MergeFrom { .. }
        )
    }
}

/// The cart actor kind.
pub struct CartActor;

impl VirtualActor for CartActor {
    const KIND: &'static str = "cart";
    type State = CartState;
    type Command = CartCommand;
    type Reply = Result<CartView, CartRejection>;

    fn is_read(command: &CartCommand) -> bool {
        matches!(command, CartCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: CartCommand,
    ) -> Result<Self::Reply, RuntimeError> {
        if let CartCommand::Create { owner } = command {
            if !turn.state().created {
                let state = turn.state_mut();
                state.created = true;
                state.owner = owner;
            }
            return Ok(Ok(view(turn)));
        }
        if !turn.state().created {
            return Ok(Err(CartRejection::NotFound));
        }
        if turn.state().checkout.is_some() && command.changes_lines() {
            return Ok(Err(CartRejection::CheckoutInProgress));
        }
        let outcome = match command {
            CartCommand::Create { .. } | CartCommand::Get => Ok(()),
            CartCommand::AddItem { sku, quantity } => add_item(turn, sku, quantity).await?,
            CartCommand::SetQuantity { sku, quantity } => set_quantity(turn, &sku, quantity),
            CartCommand::RemoveItem { sku } => set_quantity(turn, &sku, 0),
            CartCommand::BeginCheckout { user, checkout_id } => {
                begin_checkout(turn, user, checkout_id)
            }
            CartCommand::CompleteCheckout { checkout_id } => {
                end_checkout(turn, &checkout_id, true);
                Ok(())
            }
            CartCommand::AbortCheckout { checkout_id } => {
                end_checkout(turn, &checkout_id, false);
                Ok(())
            }
            CartCommand::MergeFrom { lines, currency } => {
                let state = turn.state();
                let (mut merged, mut merged_currency) =
                    (state.lines.clone(), state.currency.clone());
                let report =
                    crate::user::merge_lines(&mut merged, &mut merged_currency, &lines, &currency);
                if report.changed() {
                    let state = turn.state_mut();
                    state.lines = merged;
                    state.currency = merged_currency;
                }
                Ok(())
            }
        };
        Ok(outcome.map(|()| view(turn)))
    }
}

async fn add_item(
    turn: &mut Turn<CartActor>,
    sku: Sku,
    quantity: Quantity,
) -> Result<Result<(), CartRejection>, RuntimeError> {
    if let Some(line) = turn.state().lines.iter().find(|line| line.sku == sku) {
        let total = line.quantity + quantity.get();
        if total > Quantity::MAX {
            return Ok(Err(CartRejection::QuantityTooLarge { max: Quantity::MAX }));
        }
        let state = turn.state_mut();
        if let Some(line) = state.lines.iter_mut().find(|line| line.sku == sku) {
            line.quantity = total;
        }
        return Ok(Ok(()));
    }
    if turn.state().lines.len() >= MAX_LINES {
        return Ok(Err(CartRejection::TooManyLines { max: MAX_LINES }));
    }
    let product = turn
        .runtime()
        .actor::<ProductActor>(sku.as_str())
        .ask(ProductCommand::Get)
        .await?;
    let Ok(Some(product)) = product else {
        return Ok(Err(CartRejection::UnknownSku(sku)));
    };
    let state = turn.state();
    if !state.lines.is_empty() && state.currency != product.currency {
        return Ok(Err(CartRejection::CurrencyMismatch {
            product: sku,
            product_currency: product.currency,
            cart_currency: state.currency.clone(),
        }));
    }
    let state = turn.state_mut();
    state.currency = product.currency;
    state.lines.push(CartLine {
        sku,
        quantity: quantity.get(),
        unit_price_cents: product.price_cents,
    });
    Ok(Ok(()))
}

fn set_quantity(turn: &mut Turn<CartActor>, sku: &Sku, quantity: u32) -> Result<(), CartRejection> {
    if quantity > Quantity::MAX {
        return Err(CartRejection::QuantityTooLarge { max: Quantity::MAX });
    }
    let Some(index) = turn.state().lines.iter().position(|line| line.sku == *sku) else {
        return Err(CartRejection::LineNotFound(sku.clone()));
    };
    let lines = &mut turn.state_mut().lines;
    if quantity == 0 {
        lines.remove(index);
    } else {
        lines[index].quantity = quantity;
    }
    Ok(())
}

fn begin_checkout(
    turn: &mut Turn<CartActor>,
    user: String,
    checkout_id: String,
) -> Result<(), CartRejection> {
    let state = turn.state();
    // Guest carts are not checked out: logging in merges them into the user's own cart.
    if state.owner.as_deref() != Some(user.as_str()) {
        return Err(CartRejection::NotYourCart);
    }
    match &state.checkout {
        Some(holder) if *holder == checkout_id => Ok(()),
        Some(_) => Err(CartRejection::CheckoutInProgress),
        None => {
            turn.state_mut().checkout = Some(checkout_id);
            Ok(())
        }
    }
}

fn end_checkout(turn: &mut Turn<CartActor>, checkout_id: &str, completed: bool) {
    if turn.state().checkout.as_deref() == Some(checkout_id) {
        let state = turn.state_mut();
        state.checkout = None;
        if completed {
            state.lines.clear();
        }
    }
}

fn view(turn: &Turn<CartActor>) -> CartView {
    let state = turn.state();
    CartView {
        id: turn.key().to_owned(),
        owner: state.owner.clone(),
        items: state.lines.clone(),
        subtotal_cents: subtotal_cents(&state.lines),
        currency: state.currency.clone(),
    }
}

/// Sum of quantity × unit price. Bounded: 50 lines × 99 units × 10^8 cents fits in i64.
pub fn subtotal_cents(lines: &[CartLine]) -> i64 {
    lines
        .iter()
        .map(|line| i64::from(line.quantity) * line.unit_price_cents)
        .sum()
}
