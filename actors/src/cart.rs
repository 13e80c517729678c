//! The cart actor: one per cart id, guest or owned.
//!
//! A cart holds lines of `(sku, quantity, unit price at add time)`. Adding a SKU asks its
//! product actor for the current price; later price changes do not touch lines already in
//! the cart. Limits: at most [`MAX_LINES`] lines and [`Quantity::MAX`] units per line.
//!
//! # Who may use a cart
//! A guest cart (no owner) is open to anyone holding its id; an owned cart to its owner and
//! to admins. The edge wraps a shopper's command in [`CartCommand::AsCaller`] with the
//! caller it verified ([`CartCaller`]), and the cart decides in the same turn that runs the
//! command: [`CartRejection::SignInRequired`] for nobody, [`CartRejection::NotYourCart`] for
//! another account. Checking inside the turn costs nothing more than the command itself,
//! where a read before each command would cost a second ask — and a second cluster hop when
//! the cart lives on another node. An owner never changes once a cart exists, so the check
//! and the command cannot disagree either way. Commands the domain sends itself (checkout,
//! login merge) are not wrapped: they carry their own rules (`BeginCheckout`'s `user`).
//!
//! # Events
//! Raised in the commit of the change they report; a rejected command or one that changes
//! nothing raises nothing. The funnel events carry the shopper's experiment variants, those
//! of the owner's user id, or of the cart id for a guest cart.
//! - `CartCreated` when a cart is created (not on a repeated `Create`).
//! - `CartItemAdded` / `CartItemRemoved` for every change of a line's quantity by the
//!   shopper, by the difference: `AddItem` adds its units, `SetQuantity` adds or removes the
//!   difference, `RemoveItem` (and `SetQuantity` to 0) removes the line's units.
//! - Login merge (`MergeFrom`): the user's cart raises `CartItemAdded` for what each guest
//!   line really added (after the line cap; a line left out adds nothing), priced as the line
//!   now stands in the user's cart; the login flow then removes the merged lines from the
//!   guest cart, which raises `CartItemRemoved` for them. So in each cart's own stream the
//!   added minus removed units always equal what it holds, and a merge is never counted as
//!   a new purchase intent twice (the guest's adds are cancelled by its removes).
//! - Completing a checkout empties the lines *without* `CartItemRemoved`: those units were
//!   bought, and the order's events say so.
//! - `CartAbandoned`: every change of a cart that leaves it with lines and not held by a
//!   checkout (re)sets the `abandon` reminder, due the kind's inactivity later; a change
//!   that empties it or hands it to a checkout cancels it. When the reminder fires and the
//!   cart still has lines and no checkout holds it, `CartAbandoned` is raised, once: only a
//!   later change arms it again. An aborted checkout unlocks the cart with its lines, which
//!   arms it again.

use std::time::Duration;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use crate::catalog::{ProductActor, ProductCommand, VersionedProduct};
use crate::events::{DomainEvent, EventLine, Variants};
use crate::experiments::Experiments;
use crate::values::{Currency, Quantity, Sku};

/// The reminder that raises `CartAbandoned` after the inactivity delay.
const ABANDON_REMINDER: &str = "abandon";

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
    /// When the cart last changed (Unix ms). An armed abandon reminder is left where it is on
    /// a change (moving it is one more durable write per change); when it fires early, it is
    /// armed again from here.
    #[serde(default)]
    pub changed_at_ms: u64,
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

/// Who asks a shopper's command of a cart: a signed-in account (`None`: nobody signed in)
/// and whether that account is an admin. A domain value: the edge makes it from a verified
/// token, the cart judges it in its turn (see "Who may use a cart").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartCaller {
    pub account: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

impl CartCaller {
    /// Nobody signed in: guest carts only.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A signed-in account; `admin` opens every cart.
    pub fn account(id: impl Into<String>, admin: bool) -> Self {
        Self {
            account: Some(id.into()),
            admin,
        }
    }

    /// May this caller use a cart owned by `owner` (`None`: a guest cart)?
    fn may_use(&self, owner: Option<&str>) -> Result<(), CartRejection> {
        match (owner, self.account.as_deref()) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(CartRejection::SignInRequired),
            (Some(owner), Some(account)) if account == owner || self.admin => Ok(()),
            (Some(_), Some(_)) => Err(CartRejection::NotYourCart),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    /// `command` on behalf of `caller`: refused with [`CartRejection::SignInRequired`] or
    /// [`CartRejection::NotYourCart`] when the cart exists and `caller` may not use it, in
    /// the same turn that runs `command` (a cart that does not exist is `NotFound`, as
    /// unwrapped). What the edge sends for every shopper's read and change.
    AsCaller {
        caller: CartCaller,
        command: Box<CartCommand>,
    },
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
    /// An owned cart asked by nobody signed in.
    #[error("this cart belongs to a user: send that user's bearer token")]
    SignInRequired,
    #[error("a checkout of this cart is in progress")]
    CheckoutInProgress,
}

impl CartCommand {
    /// This command on behalf of `caller` (see [`CartCommand::AsCaller`]).
    pub fn as_caller(self, caller: CartCaller) -> Self {
        Self::AsCaller {
            caller,
            command: Box::new(self),
        }
    }

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

/// The cart actor kind, with the experiments its events report and the inactivity after
/// which a cart with lines is abandoned.
pub struct CartActor {
    experiments: Experiments,
    abandon_after: Duration,
}

impl CartActor {
    pub fn new(experiments: Experiments, abandon_after: Duration) -> Self {
        Self {
            experiments,
            abandon_after,
        }
    }

    /// The variants of the cart's shopper: its owner, or the cart itself for a guest.
    fn variants(&self, turn: &Turn<Self>) -> Variants {
        let shopper = turn.state().owner.as_deref().unwrap_or(turn.key());
        self.experiments.variants_for(shopper)
    }

    /// After a change: a cart with lines that no checkout holds is abandoned if nothing
    /// else changes for `abandon_after`; any other cart has nothing to abandon. A reminder
    /// already armed stays (it is due no later than the new deadline, and
    /// [`Self::abandon_if_idle`] re-arms it from `changed_at_ms`).
    fn rearm_abandon(&self, turn: &mut Turn<Self>) {
        let now_ms = turn.now_ms();
        turn.state_mut().changed_at_ms = now_ms;
        let state = turn.state();
        if !state.lines.is_empty() && state.checkout.is_none() {
            if turn.reminder(ABANDON_REMINDER).is_none() {
                let due_at_ms = self.abandon_deadline(now_ms);
                turn.set_reminder(ABANDON_REMINDER, due_at_ms);
            }
        } else {
            turn.cancel_reminder(ABANDON_REMINDER);
        }
    }

    /// When a cart last changed at `changed_at_ms` counts as abandoned.
    fn abandon_deadline(&self, changed_at_ms: u64) -> u64 {
        let after_ms = u64::try_from(self.abandon_after.as_millis()).unwrap_or(u64::MAX);
        changed_at_ms.saturating_add(after_ms)
    }

    /// The abandon reminder fired: raise `CartAbandoned` if the cart has been idle for the
    /// whole delay, else arm the reminder again for the end of the idle spell.
    fn abandon_if_idle(&self, turn: &mut Turn<Self>) -> Result<(), RuntimeError> {
        let state = turn.state();
        if state.lines.is_empty() || state.checkout.is_some() {
            return Ok(());
        }
        let deadline_ms = self.abandon_deadline(state.changed_at_ms);
        if turn.now_ms() < deadline_ms {
            turn.set_reminder(ABANDON_REMINDER, deadline_ms);
            return Ok(());
        }
        let event = DomainEvent::CartAbandoned {
            cart_id: turn.key().to_owned(),
            user_id: state.owner.clone(),
            lines: state.lines.iter().map(EventLine::from).collect(),
            subtotal_cents: subtotal_cents(&state.lines),
            currency: state.currency.as_str().to_owned(),
            variants: self.variants(turn),
        };
        turn.emit(event)
    }
}

impl VirtualActor for CartActor {
    const KIND: &'static str = "cart";
    type State = CartState;
    type Command = CartCommand;
    type Reply = Result<CartView, CartRejection>;

    fn is_read(command: &CartCommand) -> bool {
        match command {
            CartCommand::AsCaller { command, .. } => Self::is_read(command),
            command => matches!(command, CartCommand::Get),
        }
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        mut command: CartCommand,
    ) -> Result<Self::Reply, RuntimeError> {
        while let CartCommand::AsCaller {
            caller,
            command: inner,
        } = command
        {
            if turn.state().created
                && let Err(refused) = caller.may_use(turn.state().owner.as_deref())
            {
                return Ok(Err(refused));
            }
            command = *inner;
        }
        if let CartCommand::Create { owner } = command {
            if !turn.state().created {
                let state = turn.state_mut();
                state.created = true;
                state.owner = owner.clone();
                let variants = self.variants(turn);
                turn.emit(DomainEvent::CartCreated {
                    cart_id: turn.key().to_owned(),
                    user_id: owner,
                    variants,
                })?;
            }
            return Ok(Ok(view(turn)));
        }
        if !turn.state().created {
            return Ok(Err(CartRejection::NotFound));
        }
        if turn.state().checkout.is_some() && command.changes_lines() {
            return Ok(Err(CartRejection::CheckoutInProgress));
        }
        if matches!(command, CartCommand::Get) {
            // A read changes nothing: no copy of the state to compare against.
            return Ok(Ok(view(turn)));
        }
        let before = turn.state().clone();
        let shopper_changes_lines = command.changes_lines();
        let outcome = match command {
            CartCommand::Create { .. } | CartCommand::Get | CartCommand::AsCaller { .. } => Ok(()),
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
        if *turn.state() != before {
            if shopper_changes_lines {
                for event in item_events(turn, &before.lines) {
                    turn.emit(event)?;
                }
            }
            self.rearm_abandon(turn);
        }
        Ok(outcome.map(|()| view(turn)))
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        if name == ABANDON_REMINDER {
            self.abandon_if_idle(turn)?;
        }
        Ok(())
    }
}

/// The item events of a change of lines from `before` to the cart's lines now: one per
/// SKU whose quantity changed, by the difference, in the order of the lines (removed
/// lines last).
fn item_events(turn: &Turn<CartActor>, before: &[CartLine]) -> Vec<DomainEvent> {
    let state = turn.state();
    let cart_id = turn.key();
    let quantity_before = |sku: &Sku| {
        before
            .iter()
            .find(|line| line.sku == *sku)
            .map_or(0, |line| line.quantity)
    };
    let added_or_changed = state.lines.iter().filter_map(|line| {
        let was = quantity_before(&line.sku);
        match line.quantity.cmp(&was) {
            std::cmp::Ordering::Greater => Some(DomainEvent::CartItemAdded {
                cart_id: cart_id.to_owned(),
                user_id: state.owner.clone(),
                sku: line.sku.to_string(),
                quantity: line.quantity - was,
                unit_price_cents: line.unit_price_cents,
                currency: state.currency.as_str().to_owned(),
            }),
            std::cmp::Ordering::Less => Some(removed(turn, &line.sku, was - line.quantity)),
            std::cmp::Ordering::Equal => None,
        }
    });
    let gone = before
        .iter()
        .filter(|line| !state.lines.iter().any(|now| now.sku == line.sku))
        .map(|line| removed(turn, &line.sku, line.quantity));
    added_or_changed.chain(gone).collect()
}

fn removed(turn: &Turn<CartActor>, sku: &Sku, quantity: u32) -> DomainEvent {
    DomainEvent::CartItemRemoved {
        cart_id: turn.key().to_owned(),
        user_id: turn.state().owner.clone(),
        sku: sku.to_string(),
        quantity,
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
    let Ok(Some(VersionedProduct { product, .. })) = product else {
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
    if turn.state().lines[index].quantity == quantity {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use emporium_runtime::store::MemoryStore;
    use emporium_runtime::{ActorHandle, ActorId, ManualClock, Runtime, StateStore};

    use super::*;
    use crate::catalog::ProductDraft;
    use crate::events::emitted;
    use crate::user::{Email, Password, UserName, Users};
    use crate::values::CartId;
    use crate::{DomainPorts, register_with};

    const START_MS: u64 = 1_700_000_000_000;
    const ABANDON_AFTER: Duration = Duration::from_secs(3600);
    const EXPERIMENTS: &str = "button=control,green; banner=a,b,c";

    struct Shop {
        runtime: Runtime,
        store: Arc<dyn StateStore>,
        clock: Arc<ManualClock>,
    }

    async fn shop() -> Shop {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(START_MS));
        let ports = DomainPorts {
            cart_abandon_after: ABANDON_AFTER,
            experiments: Experiments::parse(EXPERIMENTS).unwrap(),
            ..DomainPorts::default()
        };
        let runtime = register_with(Runtime::builder(store.clone()).clock(clock.clone()), &ports)
            .build()
            .await
            .unwrap();
        for (sku, price_cents) in [("MUG", 1_200), ("TEE", 2_500)] {
            runtime
                .actor::<ProductActor>(sku)
                .ask(ProductCommand::Upsert(ProductDraft {
                    name: sku.to_owned(),
                    description: String::new(),
                    price_cents,
                    currency: Currency::default(),
                    category: "test".to_owned(),
                    attributes: BTreeMap::new(),
                }))
                .await
                .unwrap()
                .unwrap();
        }
        Shop {
            runtime,
            store,
            clock,
        }
    }

    impl Shop {
        fn cart(&self, id: &str) -> ActorHandle<CartActor> {
            self.runtime.actor::<CartActor>(id)
        }

        async fn events(&self, id: &str) -> Vec<DomainEvent> {
            emitted::events(self.store.as_ref(), "cart", id).await
        }

        async fn version(&self, id: &str) -> u64 {
            let id = ActorId::new("cart", id);
            self.store.load(&id).await.unwrap().map_or(0, |v| v.version)
        }

        /// Move the clock past the abandon delay and give the reminder scheduler (which
        /// looks at the clock at least every second) time to deliver.
        async fn idle_past_the_abandon_delay(&self) {
            self.clock.advance_ms(ABANDON_AFTER.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(2_500)).await;
        }

        /// The `CartAbandoned` events of `id`, waiting up to 5 s for the `expected`-th.
        async fn abandoned(&self, id: &str, expected: usize) -> Vec<DomainEvent> {
            for _ in 0..50 {
                let abandoned = self.abandoned_now(id).await;
                if abandoned.len() >= expected {
                    return abandoned;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.abandoned_now(id).await
        }

        async fn abandoned_now(&self, id: &str) -> Vec<DomainEvent> {
            self.events(id)
                .await
                .into_iter()
                .filter(|event| matches!(event, DomainEvent::CartAbandoned { .. }))
                .collect()
        }
    }

    fn sku(text: &str) -> Sku {
        Sku::parse(text).unwrap()
    }

    fn add(text: &str, quantity: i64) -> CartCommand {
        CartCommand::AddItem {
            sku: sku(text),
            quantity: Quantity::new(quantity).unwrap(),
        }
    }

    fn set(text: &str, quantity: u32) -> CartCommand {
        CartCommand::SetQuantity {
            sku: sku(text),
            quantity,
        }
    }

    fn added(cart: &str, user: Option<&str>, sku: &str, quantity: u32, price: i64) -> DomainEvent {
        DomainEvent::CartItemAdded {
            cart_id: cart.to_owned(),
            user_id: user.map(str::to_owned),
            sku: sku.to_owned(),
            quantity,
            unit_price_cents: price,
            currency: "USD".to_owned(),
        }
    }

    fn removed(cart: &str, user: Option<&str>, sku: &str, quantity: u32) -> DomainEvent {
        DomainEvent::CartItemRemoved {
            cart_id: cart.to_owned(),
            user_id: user.map(str::to_owned),
            sku: sku.to_owned(),
            quantity,
        }
    }

    fn created(cart: &str, user: Option<&str>) -> DomainEvent {
        let experiments = Experiments::parse(EXPERIMENTS).unwrap();
        DomainEvent::CartCreated {
            cart_id: cart.to_owned(),
            user_id: user.map(str::to_owned),
            variants: experiments.variants_for(user.unwrap_or(cart)),
        }
    }

    #[tokio::test]
    async fn item_events_follow_each_change_of_a_line_by_the_difference() {
        let shop = shop().await;
        let cart = shop.cart("c-1");
        let ok = |reply: Result<CartView, CartRejection>| reply.unwrap();
        ok(cart.ask(CartCommand::Create { owner: None }).await.unwrap());
        ok(cart
            .ask(CartCommand::Create {
                owner: Some("u-9".to_owned()),
            })
            .await
            .unwrap());
        ok(cart.ask(add("MUG", 2)).await.unwrap());
        ok(cart.ask(add("MUG", 1)).await.unwrap());
        ok(cart.ask(set("MUG", 5)).await.unwrap());
        let version = shop.version("c-1").await;
        ok(cart.ask(set("MUG", 5)).await.unwrap());
        assert_eq!(
            shop.version("c-1").await,
            version,
            "the same quantity: no write"
        );
        ok(cart.ask(set("MUG", 1)).await.unwrap());
        ok(cart.ask(add("TEE", 1)).await.unwrap());
        ok(cart
            .ask(CartCommand::RemoveItem { sku: sku("TEE") })
            .await
            .unwrap());
        // Refused: nothing raised.
        for refused in [
            add("NOPE", 1),
            add("MUG", 99),
            set("MUG", 100),
            set("TEE", 1),
            CartCommand::RemoveItem { sku: sku("TEE") },
        ] {
            assert!(cart.ask(refused).await.unwrap().is_err());
        }
        assert!(
            shop.cart("never")
                .ask(add("MUG", 1))
                .await
                .unwrap()
                .is_err()
        );
        ok(cart.ask(set("MUG", 0)).await.unwrap());

        let guest = None;
        assert_eq!(
            shop.events("c-1").await,
            [
                created("c-1", guest),
                added("c-1", guest, "MUG", 2, 1_200),
                added("c-1", guest, "MUG", 1, 1_200),
                added("c-1", guest, "MUG", 2, 1_200),
                removed("c-1", guest, "MUG", 4),
                added("c-1", guest, "TEE", 1, 2_500),
                removed("c-1", guest, "TEE", 1),
                removed("c-1", guest, "MUG", 1),
            ]
        );
        assert!(shop.events("never").await.is_empty());
    }

    #[tokio::test]
    async fn a_login_merge_adds_to_the_users_cart_what_leaves_the_guest_cart() {
        let shop = shop().await;
        let users = Users::new(shop.runtime.clone());
        let user = users
            .sign_up(
                Email::parse("ada@example.com").unwrap(),
                UserName::parse("Ada").unwrap(),
                &Password::new("analytical").unwrap(),
            )
            .await
            .unwrap();
        let mine = users
            .open_cart(&user.id, None)
            .await
            .unwrap()
            .unwrap()
            .cart
            .id;
        shop.cart(&mine).ask(add("MUG", 98)).await.unwrap().unwrap();
        let guest = CartId::generate();
        let guest_cart = shop.cart(guest.as_str());
        guest_cart
            .ask(CartCommand::Create { owner: None })
            .await
            .unwrap()
            .unwrap();
        guest_cart.ask(add("MUG", 2)).await.unwrap().unwrap();
        guest_cart.ask(add("TEE", 1)).await.unwrap().unwrap();
        users
            .open_cart(&user.id, Some(guest.clone()))
            .await
            .unwrap()
            .unwrap();

        let me = Some(user.id.as_str());
        assert_eq!(
            shop.events(&mine).await,
            [
                created(&mine, me),
                added(&mine, me, "MUG", 98, 1_200),
                // Capped at 99 units: the merge really added 1 of the guest's 2.
                added(&mine, me, "MUG", 1, 1_200),
                added(&mine, me, "TEE", 1, 2_500),
            ]
        );
        let guest = guest.as_str();
        assert_eq!(
            shop.events(guest).await,
            [
                created(guest, None),
                added(guest, None, "MUG", 2, 1_200),
                added(guest, None, "TEE", 1, 2_500),
                removed(guest, None, "MUG", 2),
                removed(guest, None, "TEE", 1),
            ]
        );
        // A merge that merges nothing (another currency into a non-empty cart) raises nothing.
        let before = shop.events(&mine).await.len();
        let euro = vec![CartLine {
            sku: sku("TEE"),
            quantity: 1,
            unit_price_cents: 2_000,
        }];
        shop.cart(&mine)
            .ask(CartCommand::MergeFrom {
                lines: euro,
                currency: Currency::parse("EUR").unwrap(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shop.events(&mine).await.len(), before);
    }

    #[tokio::test]
    async fn an_idle_cart_with_lines_is_abandoned_once_per_idle_spell() {
        let shop = shop().await;
        let cart = shop.cart("c-1");
        cart.ask(CartCommand::Create {
            owner: Some("u-1".to_owned()),
        })
        .await
        .unwrap()
        .unwrap();
        // An empty cart is never abandoned.
        shop.idle_past_the_abandon_delay().await;
        assert!(shop.abandoned_now("c-1").await.is_empty());

        cart.ask(add("MUG", 2)).await.unwrap().unwrap();
        cart.ask(add("TEE", 1)).await.unwrap().unwrap();
        shop.idle_past_the_abandon_delay().await;
        let abandoned = shop.abandoned("c-1", 1).await;
        let experiments = Experiments::parse(EXPERIMENTS).unwrap();
        assert_eq!(
            abandoned,
            [DomainEvent::CartAbandoned {
                cart_id: "c-1".to_owned(),
                user_id: Some("u-1".to_owned()),
                lines: vec![
                    EventLine {
                        sku: "MUG".to_owned(),
                        quantity: 2,
                        unit_price_cents: 1_200,
                    },
                    EventLine {
                        sku: "TEE".to_owned(),
                        quantity: 1,
                        unit_price_cents: 2_500,
                    },
                ],
                subtotal_cents: 4_900,
                currency: "USD".to_owned(),
                variants: experiments.variants_for("u-1"),
            }]
        );
        // Once: more idle time raises nothing more.
        shop.idle_past_the_abandon_delay().await;
        assert_eq!(shop.abandoned_now("c-1").await.len(), 1);

        // A later change arms it again.
        cart.ask(set("TEE", 2)).await.unwrap().unwrap();
        shop.idle_past_the_abandon_delay().await;
        assert_eq!(shop.abandoned("c-1", 2).await.len(), 2);

        // Held by a checkout: not abandoned, however long.
        cart.ask(add("MUG", 1)).await.unwrap().unwrap();
        let begin = |id: &str| CartCommand::BeginCheckout {
            user: "u-1".to_owned(),
            checkout_id: id.to_owned(),
        };
        cart.ask(begin("k-1")).await.unwrap().unwrap();
        shop.idle_past_the_abandon_delay().await;
        assert_eq!(shop.abandoned_now("c-1").await.len(), 2);

        // The checkout failed: the cart is open again with its lines, and abandoned later.
        cart.ask(CartCommand::AbortCheckout {
            checkout_id: "k-1".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
        shop.idle_past_the_abandon_delay().await;
        assert_eq!(shop.abandoned("c-1", 3).await.len(), 3);

        // Checked out: emptied without item events, and never abandoned.
        cart.ask(add("MUG", 1)).await.unwrap().unwrap();
        cart.ask(begin("k-2")).await.unwrap().unwrap();
        cart.ask(CartCommand::CompleteCheckout {
            checkout_id: "k-2".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
        shop.idle_past_the_abandon_delay().await;
        let events = shop.events("c-1").await;
        assert_eq!(shop.abandoned_now("c-1").await.len(), 3);
        assert!(
            matches!(
                events.last(),
                Some(DomainEvent::CartItemAdded { quantity: 1, .. })
            ),
            "{:?}",
            events.last()
        );
    }

    #[tokio::test]
    async fn a_callers_command_is_checked_against_the_owner_in_the_same_turn() {
        let shop = shop().await;
        let owned = shop.cart("c-owned");
        owned
            .ask(CartCommand::Create {
                owner: Some("u-1".to_owned()),
            })
            .await
            .unwrap()
            .unwrap();
        owned.ask(add("MUG", 2)).await.unwrap().unwrap();
        let version = shop.version("c-owned").await;
        let nobody = CartCaller::anonymous();
        let other = CartCaller::account("u-2", false);
        for command in [
            CartCommand::Get,
            add("MUG", 1),
            set("MUG", 5),
            CartCommand::RemoveItem { sku: sku("MUG") },
        ] {
            let refused = |caller: &CartCaller| command.clone().as_caller(caller.clone());
            assert_eq!(
                owned.ask(refused(&nobody)).await.unwrap(),
                Err(CartRejection::SignInRequired),
                "{command:?}"
            );
            assert_eq!(
                owned.ask(refused(&other)).await.unwrap(),
                Err(CartRejection::NotYourCart),
                "{command:?}"
            );
        }
        assert_eq!(shop.version("c-owned").await, version, "refused: no write");
        let quantity = |reply: Result<CartView, CartRejection>| reply.unwrap().items[0].quantity;
        let owner = CartCaller::account("u-1", false);
        let admin = CartCaller::account("admin-1", true);
        assert_eq!(
            quantity(owned.ask(add("MUG", 1).as_caller(owner)).await.unwrap()),
            3
        );
        assert_eq!(
            quantity(owned.ask(set("MUG", 7).as_caller(admin)).await.unwrap()),
            7
        );
        assert!(CartActor::is_read(
            &CartCommand::Get.as_caller(nobody.clone())
        ));
        assert!(!CartActor::is_read(
            &add("MUG", 1).as_caller(nobody.clone())
        ));

        // A guest cart is open to anyone; an unknown cart is not found, whoever asks.
        let guest = shop.cart("c-guest");
        guest
            .ask(CartCommand::Create { owner: None })
            .await
            .unwrap()
            .unwrap();
        for caller in [&nobody, &other] {
            let reply = guest.ask(add("TEE", 1).as_caller(caller.clone())).await;
            assert!(reply.unwrap().is_ok());
            let unknown = shop.cart("c-none");
            let reply = unknown
                .ask(CartCommand::Get.as_caller(caller.clone()))
                .await;
            assert_eq!(reply.unwrap(), Err(CartRejection::NotFound));
        }
    }

    /// A change while the abandon reminder is armed leaves the stored reminder as it is (no
    /// write of the reminder per change), yet the cart is abandoned only after a whole idle
    /// spell from its last change: the early reminder re-arms itself.
    #[tokio::test]
    async fn a_change_moves_the_abandonment_without_rewriting_the_reminder() {
        let shop = shop().await;
        let cart = shop.cart("c-1");
        let id = ActorId::new("cart", "c-1");
        let stored_due = || async {
            let shard = emporium_runtime::shard_of_id(&id);
            let reminders = shop.store.list_reminders(shard).await.unwrap();
            reminders
                .iter()
                .find(|reminder| reminder.actor == id)
                .map(|reminder| reminder.due_at_ms)
        };
        let after_ms = ABANDON_AFTER.as_millis() as u64;
        cart.ask(CartCommand::Create { owner: None })
            .await
            .unwrap()
            .unwrap();
        cart.ask(add("MUG", 1)).await.unwrap().unwrap();
        assert_eq!(stored_due().await, Some(START_MS + after_ms));

        shop.clock.advance_ms(after_ms / 2);
        cart.ask(add("MUG", 1)).await.unwrap().unwrap();
        assert_eq!(
            stored_due().await,
            Some(START_MS + after_ms),
            "not rewritten"
        );

        // The first deadline passes: the cart changed since, so it is not abandoned yet.
        shop.clock.advance_ms(after_ms / 2 + 1);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(shop.abandoned_now("c-1").await.is_empty());
        assert_eq!(
            stored_due().await,
            Some(START_MS + after_ms / 2 + after_ms),
            "armed again for the end of the idle spell"
        );

        // A whole idle spell after the last change: abandoned, once.
        shop.clock.advance_ms(after_ms / 2);
        assert_eq!(shop.abandoned("c-1", 1).await.len(), 1);
        assert_eq!(stored_due().await, None);
    }

    #[tokio::test]
    async fn an_emptied_cart_is_not_abandoned() {
        let shop = shop().await;
        let cart = shop.cart("c-1");
        cart.ask(CartCommand::Create { owner: None })
            .await
            .unwrap()
            .unwrap();
        cart.ask(add("MUG", 1)).await.unwrap().unwrap();
        cart.ask(CartCommand::RemoveItem { sku: sku("MUG") })
            .await
            .unwrap()
            .unwrap();
        shop.idle_past_the_abandon_delay().await;
        assert!(shop.abandoned_now("c-1").await.is_empty());
    }
}
