//! The checkout saga: one `checkout` actor per `{user_id}:{idempotency_key}`.
//!
//! # Steps
//! 1. **Start**: read the cart (a read, no lock), remember the request's fingerprint and
//!    the cart's lines, mint the checkout id (it names the stock reservations and the
//!    payment authorization) and the order id, arm the `recover` reminder. **Checkpoint**:
//!    the saga's first durable write, before any effect.
//! 2. **Lock the cart** ([`CartCommand::BeginCheckout`]): the cart must be the caller's (a
//!    guest cart is refused: login merges it into the user's cart); it records this
//!    checkout, refuses every change to its lines and every other checkout until this one
//!    completes or aborts, and answers its lines, priced at add time. Shipping is quoted
//!    from the rate table. Only if the lines differ from the ones read in step 1 (the cart
//!    changed in between) is this checkpointed, so that recovery knows what to release.
//! 3. **Reserve** every line on its SKU's inventory actor (all lines at once).
//! 4. **Authorize** subtotal + shipping (idempotency key: the checkout id), under the
//!    payment deadline.
//! 5. **Commit** every reservation (the stock is sold).
//! 6. **Capture** the authorized amount. *This is the pivot*: before it, any failure is
//!    compensated; after it, the saga only rolls forward. It is decided inside one
//!    payment record: a capture and a void by key cannot both win.
//! 7. **Place the order**, already paid (`placed` + `paid` in one write), then **index**
//!    it for the user and **empty the cart** (completing its checkout), both at once. A
//!    step that cannot be done now is retried by the `follow-up` reminder; the client
//!    already has its order.
//! 8. **Store the outcome** (and cancel the `recover` reminder): the saga's second and
//!    last durable write of its own.
//!
//! # Why two checkpoints are enough
//! Every step is idempotent by the checkout id, and every undo is too (a release or a void
//! of something that never happened leaves a tombstone that refuses it later), so a saga
//! needs no checkpoint *between* effects: recovery undoes everything the start checkpoint
//! says it may have done. The one question that must have a single answer is whether the
//! pivot passed, and the payment record answers it: recovery voids by key; voided means
//! the capture never happened and never will (compensate), refused means it happened
//! (roll forward, reading the reference from the gateway). Durable writes of a one-line
//! checkout: 10 (were 17); see ARCHITECTURE.md, "Checkout".
//!
//! # Compensation
//! Before the pivot, a failure undoes what was done, newest first: void the authorization
//! *by key* (so a timed-out authorization that did happen is voided, and one that arrives
//! late is refused; if the void is refused, the payment was captured: the pivot passed and
//! the saga rolls forward instead), release every reservation (releasing also leaves a
//! tombstone against late reserves, and returns committed units), unlock the cart with its
//! lines intact. Records of earlier versions that placed the order before the pivot have
//! it cancelled first.
//!
//! # Idempotency and crashes
//! The outcome (a placed order's snapshot, or the failure) is stored; a retry with the same
//! key and the same request gets it back unchanged; with a different request,
//! [`CheckoutRejection::KeyReused`]. A retry while the saga runs waits behind it (one turn at
//! a time). If the node dies mid-saga, the next request with the key, or the `recover`
//! reminder, finds the saga unfinished at `Started`: it voids by key; before the pivot it
//! is compensated and ends [`CheckoutFailure::Interrupted`]; after it, it rolls forward to
//! the order. Records of earlier versions (one checkpoint per step) are settled the same
//! way from the step they stored.
//!
//! Deadlocks: this actor asks cart, inventory, payment, order and user-orders actors; none
//! of them ever asks a checkout.
//!
//! # Events
//! - `CheckoutStarted` (with the user's experiment variants) in the checkpoint that records
//!   the start (step 1). That commit happens once per checkout: a retry or the recovery of
//!   a started saga finds the fingerprint and never starts again, and a start whose commit
//!   failed left nothing behind (its retry mints a new checkout id and raises its own).
//! - `PaymentCaptured` in the commit that records the capture as done: the saga's last
//!   write (or, after a crash, the commit of the turn whose void found it captured;
//!   for records of earlier versions, the one whose `follow_up.capture` turned false).
//!   The checkout is the one actor whose commit records a capture whatever the gateway:
//!   the built-in test gateway's `payment` actors stand in for an external processor and
//!   raise nothing. A capture the gateway refused (the payment was voided) raises nothing.

use std::time::Duration;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cart::{CartActor, CartCommand, CartLine, CartRejection, CartView, subtotal_cents};
use crate::events::DomainEvent;
use crate::experiments::Experiments;
use crate::inventory::{InventoryActor, StockCommand, StockRejection, StockReply};
use crate::order::{
    NewOrder, OrderActor, OrderCommand, OrderView, UserOrdersActor, UserOrdersCommand,
};
use crate::payment::{
    Authorization, AuthorizeRequest, PaymentError, PaymentProvider, PaymentRecord, PaymentStatus,
    within,
};
use crate::shipping::{ShippingAddress, ShippingRates};
use crate::values::{CartId, Currency, InvalidValue};

const RECOVER_REMINDER: &str = "recover";
const FOLLOW_UP_REMINDER: &str = "follow-up";
/// Margin on top of the payment deadline before an unfinished saga is presumed dead.
const RECOVER_MARGIN_MS: u64 = 30_000;
/// How soon roll-forward work that failed is retried.
const FOLLOW_UP_RETRY_MS: u64 = 10_000;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// Longest accepted payment token.
pub const MAX_TOKEN_CHARS: usize = 256;

/// An `Idempotency-Key`: 1 to 128 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if !text.is_empty()
            && text.len() <= MAX_IDEMPOTENCY_KEY_CHARS
            && text.bytes().all(|byte| byte.is_ascii_graphic())
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue {
                field: "Idempotency-Key",
                expected: format!(
                    "1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters, e.g. a UUID"
                ),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked payment token (passed to the gateway, never stored).
///
/// On the wire (a checkout forwarded to another node) a string, checked again when decoded.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PaymentToken(String);

impl TryFrom<String> for PaymentToken {
    type Error = InvalidValue;

    fn try_from(text: String) -> Result<Self, InvalidValue> {
        Self::parse(Some(&text))
    }
}

/// By hand rather than `into = "String"`: no public conversion hands the token out.
impl Serialize for PaymentToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl PaymentToken {
    pub fn parse(text: Option<&str>) -> Result<Self, InvalidValue> {
        match text {
            Some(token)
                if !token.is_empty()
                    && token.len() <= MAX_TOKEN_CHARS
                    && token.bytes().all(|byte| byte.is_ascii_graphic()) =>
            {
                Ok(Self(token.to_owned()))
            }
            _ => Err(InvalidValue {
                field: "payment.token",
                expected: format!("a card token of 1 to {MAX_TOKEN_CHARS} visible characters"),
            }),
        }
    }
}

impl std::fmt::Debug for PaymentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentToken(***)")
    }
}

/// The checkout actor's key: idempotency keys are scoped per user.
pub fn checkout_key(user_id: &str, key: &IdempotencyKey) -> String {
    format!("{user_id}:{}", key.as_str())
}

/// One checkout request, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    pub user_id: String,
    pub cart_id: CartId,
    pub shipping_address: ShippingAddress,
    pub token: PaymentToken,
}

impl CheckoutRequest {
    /// A digest of everything the request says: the same key with another request is
    /// refused. The token enters only through the digest.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!({
            "user": self.user_id,
            "cart": self.cart_id.as_str(),
            "address": self.shipping_address,
            "token": self.token.0,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Why a checkout did not place an order. Stored: a retry gets the same answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum CheckoutFailure {
    #[error("cart not found")]
    CartNotFound,
    #[error(
        "this cart is not yours: check out your own cart (a guest cart is merged into it when you log in)"
    )]
    NotYourCart,
    #[error("another checkout of this cart is in progress")]
    CartBusy,
    #[error("the cart is empty")]
    EmptyCart,
    #[error("no shipping to {country}")]
    NoShipping { country: String },
    #[error("not enough stock for {}", skus.join(", "))]
    InsufficientStock { skus: Vec<String> },
    #[error("the payment was declined ({code}): {message}")]
    PaymentDeclined { code: String, message: String },
    #[error(
        "the payment provider did not answer in time; the authorization was voided and the stock released: nothing was charged"
    )]
    PaymentTimeout,
    #[error(
        "the checkout was interrupted and rolled back: nothing was charged; start a new checkout with a new Idempotency-Key"
    )]
    Interrupted,
}

/// How a checkout ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckoutOutcome {
    /// The order as it was when the checkout answered.
    Placed {
        order: Box<OrderView>,
    },
    Failed {
        failure: CheckoutFailure,
    },
}

/// Refusals that are not outcomes (nothing is stored for them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CheckoutRejection {
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
}

pub type CheckoutReply = Result<CheckoutOutcome, CheckoutRejection>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutCommand {
    Run(Box<CheckoutRequest>),
}

/// How far the saga got.
///
/// A saga of this version *stores* only `Started` (its first checkpoint, before any
/// effect), `Committed` (when roll-forward work is left after the pivot) and `Done`; the
/// other steps are its progress within the turn that runs it, which compensation reads to
/// undo exactly what was done. They are also what records written by earlier versions
/// (one checkpoint per step) may hold, which recovery still settles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    #[default]
    New,
    Started,
    CartLocked,
    Reserved,
    Authorizing,
    Authorized,
    /// Earlier versions only: the order was placed before the pivot.
    OrderPlaced,
    /// The pivot passed: the payment is captured (earlier versions: the stock is
    /// committed, the capture still owed in [`FollowUp::capture`]).
    Committed,
    Done,
}

/// Roll-forward work after the pivot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Earlier versions only (they captured after the pivot).
    pub capture: bool,
    /// Earlier versions only (their order was placed before it was paid).
    pub mark_paid: bool,
    pub clear_cart: bool,
    /// Place the order, already paid.
    #[serde(default)]
    pub place_order: bool,
    /// Add the order to the user's index.
    #[serde(default)]
    pub index_order: bool,
}

impl FollowUp {
    /// What the pivot leaves to do.
    fn after_capture() -> Self {
        Self {
            place_order: true,
            index_order: true,
            clear_cart: true,
            ..Self::default()
        }
    }

    fn is_done(&self) -> bool {
        !(self.capture || self.mark_paid || self.clear_cart || self.place_order || self.index_order)
    }
}

/// A checkout's stored state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutState {
    pub fingerprint: Option<String>,
    pub step: Step,
    pub checkout_id: String,
    pub order_id: String,
    pub user_id: String,
    pub cart_id: String,
    pub shipping_address: Option<ShippingAddress>,
    /// From `Started` on, the lines whose stock the saga may reserve: what recovery
    /// releases. Read from the cart before the start, checkpointed again in the rare case
    /// that the cart changed before it was locked.
    pub lines: Vec<CartLine>,
    pub currency: Currency,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub payment_reference: Option<String>,
    pub follow_up: FollowUp,
    pub outcome: Option<CheckoutOutcome>,
    pub started_at_ms: u64,
}

impl CheckoutState {
    fn total_cents(&self) -> i64 {
        self.subtotal_cents + self.shipping_cents
    }
}

/// The checkout actor kind, with its ports and the experiments its events report.
pub struct CheckoutActor {
    payments: PaymentProvider,
    shipping: ShippingRates,
    payment_timeout: Duration,
    experiments: Experiments,
}

impl CheckoutActor {
    pub fn new(
        payments: PaymentProvider,
        shipping: ShippingRates,
        payment_timeout: Duration,
        experiments: Experiments,
    ) -> Self {
        Self {
            payments,
            shipping,
            payment_timeout,
            experiments,
        }
    }
}

/// A saga step's result: `Err(failure)` means "compensate and answer this".
type StepResult<T> = Result<Result<T, CheckoutFailure>, RuntimeError>;

/// Where a payment of unknown fate stands once it was voided by key.
enum Settled {
    /// Voided (or never authorized): no capture can happen any more.
    Voided,
    /// It had been captured: the pivot passed.
    Captured(PaymentRecord),
}

impl VirtualActor for CheckoutActor {
    const KIND: &'static str = "checkout";
    type State = CheckoutState;
    type Command = CheckoutCommand;
    type Reply = CheckoutReply;

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: CheckoutCommand,
    ) -> Result<CheckoutReply, RuntimeError> {
        let CheckoutCommand::Run(request) = command;
        let fingerprint = request.fingerprint();
        if let Some(stored) = &turn.state().fingerprint {
            if *stored != fingerprint {
                return Ok(Err(CheckoutRejection::KeyReused));
            }
            if let Some(outcome) = &turn.state().outcome {
                return Ok(Ok(outcome.clone()));
            }
            // Started before and never finished: the node died mid-saga.
            return Ok(Ok(self.recover_interrupted(turn).await?));
        }
        let lines = self.read_cart(turn, &request).await?;
        self.start(turn, &request, fingerprint, lines).await?;
        let outcome = match self.forward(turn, &request).await {
            Ok(Ok(order)) => CheckoutOutcome::Placed {
                order: Box::new(order),
            },
            Ok(Err(failure)) => self.unwind(turn, failure).await?,
            Err(error) => {
                // An actor or the store did not answer: settle it now if possible (undo
                // before the pivot, finish after it); else the recover reminder will.
                tracing::warn!(checkout = turn.key(), %error, "checkout step failed");
                return match self.recover(turn).await {
                    Ok(outcome) => Ok(Ok(outcome)),
                    Err(_) => Err(error),
                };
            }
        };
        Ok(Ok(self.finish(turn, outcome)))
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        match name {
            RECOVER_REMINDER if turn.state().outcome.is_none() && turn.state().step > Step::New => {
                tracing::warn!(checkout = turn.key(), step = ?turn.state().step, "recovering an unfinished checkout");
                self.recover_interrupted(turn).await?;
            }
            FOLLOW_UP_REMINDER if !turn.state().follow_up.is_done() => {
                self.roll_forward(turn).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl CheckoutActor {
    /// The cart's lines as they are now (a read: no write, no lock). They go into the
    /// start checkpoint, so that recovery knows which SKUs the saga may have reserved
    /// without a checkpoint after the lock. `None` when there is no readable cart (the
    /// lock then says why).
    async fn read_cart(
        &self,
        turn: &Turn<Self>,
        request: &CheckoutRequest,
    ) -> Result<Option<CartView>, RuntimeError> {
        let reply = turn
            .runtime()
            .actor::<CartActor>(request.cart_id.as_str())
            .ask(CartCommand::Get)
            .await?;
        Ok(reply.ok())
    }

    async fn start(
        &self,
        turn: &mut Turn<Self>,
        request: &CheckoutRequest,
        fingerprint: String,
        cart: Option<CartView>,
    ) -> Result<(), RuntimeError> {
        let now_ms = turn.now_ms();
        let recover_at = now_ms + self.budget_ms();
        let state = turn.state_mut();
        state.fingerprint = Some(fingerprint);
        state.step = Step::Started;
        state.checkout_id = uuid::Uuid::new_v4().to_string();
        state.order_id = uuid::Uuid::new_v4().to_string();
        state.user_id = request.user_id.clone();
        state.cart_id = request.cart_id.as_str().to_owned();
        state.shipping_address = Some(request.shipping_address.clone());
        state.started_at_ms = now_ms;
        // Quoted again at the lock (which refuses a country without a rate); stored now so
        // that a saga recovered past its pivot places the order it charged for.
        state.shipping_cents = self
            .shipping
            .quote(&request.shipping_address.country)
            .unwrap_or_default();
        if let Some(cart) = cart {
            state.subtotal_cents = subtotal_cents(&cart.items);
            state.lines = cart.items;
            state.currency = cart.currency;
        }
        let started = DomainEvent::CheckoutStarted {
            checkout_id: state.checkout_id.clone(),
            cart_id: state.cart_id.clone(),
            user_id: state.user_id.clone(),
            variants: self.experiments.variants_for(&request.user_id),
        };
        turn.emit(started)?;
        turn.set_reminder(RECOVER_REMINDER, recover_at);
        turn.commit().await
    }

    /// How long a saga may take before the `recover` reminder presumes it dead.
    fn budget_ms(&self) -> u64 {
        u64::try_from(self.payment_timeout.as_millis()).unwrap_or(u64::MAX / 2) + RECOVER_MARGIN_MS
    }

    fn set_step(turn: &mut Turn<Self>, step: Step) {
        turn.state_mut().step = step;
    }

    /// Steps 2 to 7. `Err(failure)`: stopped before the pivot, to be compensated.
    async fn forward(
        &self,
        turn: &mut Turn<Self>,
        request: &CheckoutRequest,
    ) -> StepResult<OrderView> {
        if let Err(failure) = self.lock_cart(turn, request).await? {
            return Ok(Err(failure));
        }
        if let Err(failure) = self.reserve(turn).await? {
            return Ok(Err(failure));
        }
        if let Err(failure) = self.authorize(turn, request).await? {
            return Ok(Err(failure));
        }
        if let Err(failure) = self.commit_stock(turn).await? {
            return Ok(Err(failure));
        }
        if let Err(failure) = self.capture(turn).await? {
            return Ok(Err(failure));
        }
        Ok(Ok(self.roll_forward(turn).await?))
    }

    async fn lock_cart(&self, turn: &mut Turn<Self>, request: &CheckoutRequest) -> StepResult<()> {
        let Some(shipping_cents) = self.shipping.quote(&request.shipping_address.country) else {
            return Ok(Err(CheckoutFailure::NoShipping {
                country: request.shipping_address.country.to_string(),
            }));
        };
        let state = turn.state();
        let reply = turn
            .runtime()
            .actor::<CartActor>(state.cart_id.clone())
            .ask(CartCommand::BeginCheckout {
                user: state.user_id.clone(),
                checkout_id: state.checkout_id.clone(),
            })
            .await?;
        let cart = match reply {
            Ok(cart) => cart,
            Err(CartRejection::NotFound) => return Ok(Err(CheckoutFailure::CartNotFound)),
            Err(CartRejection::NotYourCart) => return Ok(Err(CheckoutFailure::NotYourCart)),
            Err(CartRejection::CheckoutInProgress) => return Ok(Err(CheckoutFailure::CartBusy)),
            Err(other) => {
                tracing::warn!(error = %other, "unexpected cart answer to a checkout");
                return Ok(Err(CheckoutFailure::CartBusy));
            }
        };
        let changed = cart.items != turn.state().lines || cart.currency != turn.state().currency;
        let state = turn.state_mut();
        state.step = Step::CartLocked;
        state.subtotal_cents = subtotal_cents(&cart.items);
        state.lines = cart.items;
        state.currency = cart.currency;
        state.shipping_cents = shipping_cents;
        if state.lines.is_empty() {
            return Ok(Err(CheckoutFailure::EmptyCart));
        }
        if changed {
            // The cart changed between the read and the lock: recovery must know the
            // lines it is about to reserve. Rare; the only checkpoint before the pivot.
            turn.commit().await?;
        }
        Ok(Ok(()))
    }

    /// Ask every line's inventory actor at once; answers come back in line order. Every
    /// ask is awaited before an error is returned, so none is left in flight.
    async fn each_line(
        &self,
        turn: &Turn<Self>,
        command: impl Fn(&CartLine) -> StockCommand,
    ) -> Result<Vec<StockReply>, RuntimeError> {
        let runtime = turn.runtime();
        let asks = turn.state().lines.iter().map(|line| {
            let (sku, command) = (
                runtime.actor::<InventoryActor>(line.sku.as_str()),
                command(line),
            );
            async move { sku.ask(command).await }
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    async fn reserve(&self, turn: &mut Turn<Self>) -> StepResult<()> {
        let checkout_id = turn.state().checkout_id.clone();
        let replies = self
            .each_line(turn, |line| StockCommand::Reserve {
                reservation: checkout_id.clone(),
                units: u64::from(line.quantity),
            })
            .await?;
        let mut short = Vec::new();
        for (line, reply) in turn.state().lines.iter().zip(replies) {
            match reply {
                StockReply::Reservation(Ok(_)) => {}
                StockReply::Reservation(Err(StockRejection::Insufficient { sku, .. })) => {
                    short.push(sku);
                }
                StockReply::Reservation(Err(other)) => {
                    tracing::warn!(error = %other, "unexpected reservation answer");
                    short.push(line.sku.to_string());
                }
                _ => short.push(line.sku.to_string()),
            }
        }
        // Reserved (or some were): compensation releases every line either way.
        Self::set_step(turn, Step::Reserved);
        if !short.is_empty() {
            return Ok(Err(CheckoutFailure::InsufficientStock { skus: short }));
        }
        Ok(Ok(()))
    }

    async fn authorize(&self, turn: &mut Turn<Self>, request: &CheckoutRequest) -> StepResult<()> {
        // From here compensation voids by key: the authorization may have happened.
        Self::set_step(turn, Step::Authorizing);
        let state = turn.state();
        let gateway = self.payments.gateway(turn.runtime());
        let answer = within(
            self.payment_timeout,
            gateway.authorize(AuthorizeRequest {
                idempotency_key: state.checkout_id.clone(),
                amount_cents: state.total_cents(),
                currency: state.currency.clone(),
                token: request.token.0.clone(),
            }),
        )
        .await;
        match answer {
            Ok(Authorization::Approved { reference }) => {
                let state = turn.state_mut();
                state.payment_reference = Some(reference);
                state.step = Step::Authorized;
                Ok(Ok(()))
            }
            Ok(Authorization::Declined { code, message }) => {
                Ok(Err(CheckoutFailure::PaymentDeclined { code, message }))
            }
            Err(error) => {
                tracing::warn!(checkout = turn.key(), %error, "authorization outcome unknown");
                Ok(Err(CheckoutFailure::PaymentTimeout))
            }
        }
    }

    /// Sell the reserved units. Before the pivot: a lost reservation (expired, and the
    /// units sold meanwhile) is compensated like a short one.
    async fn commit_stock(&self, turn: &mut Turn<Self>) -> StepResult<()> {
        let checkout_id = turn.state().checkout_id.clone();
        let replies = self
            .each_line(turn, |_| StockCommand::Commit {
                reservation: checkout_id.clone(),
            })
            .await?;
        let lost: Vec<String> = turn
            .state()
            .lines
            .iter()
            .zip(replies)
            .filter(|(_, reply)| !matches!(reply, StockReply::Reservation(Ok(_))))
            .map(|(line, _)| line.sku.to_string())
            .collect();
        if !lost.is_empty() {
            return Ok(Err(CheckoutFailure::InsufficientStock { skus: lost }));
        }
        Ok(Ok(()))
    }

    /// *The pivot*: capture the authorized amount. One payment record decides it: a
    /// capture and a void by key cannot both win, so a capture whose answer was lost is
    /// settled by voiding: refused means it was captured.
    async fn capture(&self, turn: &mut Turn<Self>) -> StepResult<()> {
        let state = turn.state();
        let gateway = self.payments.gateway(turn.runtime());
        let reference = state.payment_reference.clone().unwrap_or_default();
        let captured = within(
            self.payment_timeout,
            gateway.capture(
                &reference,
                state.total_cents(),
                &format!("capture:{}", state.checkout_id),
            ),
        )
        .await;
        let failure = match captured {
            Ok(record) if is_captured(&record) => {
                self.pivot(turn, &record)?;
                return Ok(Ok(()));
            }
            Ok(record) => {
                tracing::warn!(
                    checkout = turn.key(),
                    status = record.status.as_str(),
                    "capture not applied"
                );
                CheckoutFailure::Interrupted
            }
            Err(PaymentError::Refused(reason)) => {
                tracing::warn!(checkout = turn.key(), reason, "capture refused");
                CheckoutFailure::Interrupted
            }
            Err(PaymentError::Unavailable(reason)) => {
                tracing::warn!(checkout = turn.key(), reason, "capture outcome unknown");
                CheckoutFailure::PaymentTimeout
            }
        };
        Ok(Err(failure))
    }

    /// The pivot passed: record what is left to do, and the capture's event (committed
    /// with the saga's next write, its last in the usual case).
    fn pivot(&self, turn: &mut Turn<Self>, record: &PaymentRecord) -> Result<(), RuntimeError> {
        let state = turn.state_mut();
        state.step = Step::Committed;
        state.payment_reference = Some(record.reference.clone());
        state.follow_up = FollowUp::after_capture();
        let captured = DomainEvent::PaymentCaptured {
            order_id: state.order_id.clone(),
            user_id: state.user_id.clone(),
            reference: record.reference.clone(),
            amount_cents: record.captured_cents,
            currency: record.currency.as_str().to_owned(),
        };
        turn.emit(captured)
    }

    /// The order this checkout places (the `placed` event's payload).
    fn new_order(turn: &Turn<Self>) -> Result<NewOrder, RuntimeError> {
        Self::new_order_of(turn.state()).ok_or_else(|| RuntimeError::CorruptState {
            actor: turn.id().clone(),
            reason: "a started checkout has an address".to_owned(),
        })
    }

    /// The order of a checkout state; `None` for a state without an address (never
    /// started).
    fn new_order_of(state: &CheckoutState) -> Option<NewOrder> {
        Some(NewOrder {
            user_id: state.user_id.clone(),
            checkout_id: state.checkout_id.clone(),
            items: state.lines.clone(),
            subtotal_cents: state.subtotal_cents,
            shipping_cents: state.shipping_cents,
            currency: state.currency.clone(),
            shipping_address: state.shipping_address.clone()?,
            payment_reference: state.payment_reference.clone().unwrap_or_default(),
        })
    }

    /// Place the order, already paid, in one write. Its id is a fresh UUID: a clash is
    /// a bug, not a user error.
    async fn place_order(&self, turn: &Turn<Self>) -> Result<OrderView, RuntimeError> {
        let order_id = turn.state().order_id.clone();
        let placed = turn
            .runtime()
            .actor::<OrderActor>(order_id.clone())
            .ask(OrderCommand::PlacePaid(Box::new(Self::new_order(turn)?)))
            .await?;
        placed.map_err(|rejection| RuntimeError::Unreachable {
            actor: turn.id().clone(),
            reason: format!("cannot place order {order_id}: {rejection}"),
        })
    }

    /// After the pivot: place the order (paid), then index it and empty the cart, both
    /// at once. Every call is idempotent. What fails after the order exists is left to
    /// the `follow-up` reminder; the client already has its order. Answers the order as
    /// it stands. (Records of earlier versions may still owe a capture and a `paid`.)
    async fn roll_forward(&self, turn: &mut Turn<Self>) -> Result<OrderView, RuntimeError> {
        let mut follow_up = turn.state().follow_up.clone();
        let state = turn.state().clone();
        if follow_up.capture {
            self.legacy_capture(turn, &mut follow_up).await?;
        }
        let mut order = None;
        if follow_up.place_order {
            order = Some(self.place_order(turn).await?);
            follow_up.place_order = false;
        }
        if follow_up.mark_paid && !follow_up.capture {
            let paid = turn
                .runtime()
                .actor::<OrderActor>(state.order_id.clone())
                .ask(OrderCommand::MarkPaid)
                .await;
            if paid.is_ok() {
                // A refusal means the order was cancelled meanwhile: nothing more to do.
                follow_up.mark_paid = false;
            }
        }
        let runtime = turn.runtime().clone();
        let index = async {
            !follow_up.index_order
                || runtime
                    .actor::<UserOrdersActor>(state.user_id.clone())
                    .ask(UserOrdersCommand::Add {
                        order_id: state.order_id.clone(),
                    })
                    .await
                    .is_ok()
        };
        let clear = async {
            !follow_up.clear_cart
                || runtime
                    .actor::<CartActor>(state.cart_id.clone())
                    .ask(CartCommand::CompleteCheckout {
                        checkout_id: state.checkout_id.clone(),
                    })
                    .await
                    .is_ok()
        };
        let (indexed, cleared) = tokio::join!(index, clear);
        follow_up.index_order &= !indexed;
        follow_up.clear_cart &= !cleared;
        if follow_up.is_done() {
            turn.cancel_reminder(FOLLOW_UP_REMINDER);
        } else {
            let retry_at = turn.now_ms() + FOLLOW_UP_RETRY_MS;
            turn.set_reminder(FOLLOW_UP_REMINDER, retry_at);
        }
        let done = follow_up.is_done();
        if follow_up != state.follow_up {
            turn.state_mut().follow_up = follow_up;
        }
        if done && turn.state().step < Step::Done {
            Self::set_step(turn, Step::Done);
        }
        match order {
            Some(order) => Ok(order),
            None => self.current_order(turn).await,
        }
    }

    async fn current_order(&self, turn: &Turn<Self>) -> Result<OrderView, RuntimeError> {
        let order_id = turn.state().order_id.clone();
        let order = turn
            .runtime()
            .actor::<OrderActor>(order_id.clone())
            .ask(OrderCommand::Get)
            .await?;
        order.map_err(|rejection| RuntimeError::Unreachable {
            actor: turn.id().clone(),
            reason: format!("order {order_id} is missing: {rejection}"),
        })
    }

    /// A record of an earlier version, past its pivot (stock committed): capture now.
    async fn legacy_capture(
        &self,
        turn: &mut Turn<Self>,
        follow_up: &mut FollowUp,
    ) -> Result<(), RuntimeError> {
        let state = turn.state().clone();
        let gateway = self.payments.gateway(turn.runtime());
        let reference = state.payment_reference.clone().unwrap_or_default();
        let captured = within(
            self.payment_timeout,
            gateway.capture(
                &reference,
                state.total_cents(),
                &format!("capture:{}", state.checkout_id),
            ),
        )
        .await;
        match captured {
            Ok(record) if record.status != PaymentStatus::Authorized => {
                follow_up.capture = false;
                turn.emit(DomainEvent::PaymentCaptured {
                    order_id: state.order_id.clone(),
                    user_id: state.user_id.clone(),
                    reference: record.reference,
                    amount_cents: record.captured_cents,
                    currency: record.currency.as_str().to_owned(),
                })?;
            }
            Ok(_) => {}
            Err(PaymentError::Refused(reason)) => {
                // Voided meanwhile (the order was cancelled): nothing to charge.
                tracing::warn!(checkout = turn.key(), reason, "capture refused");
                follow_up.capture = false;
                follow_up.mark_paid = false;
            }
            Err(error) => {
                tracing::warn!(checkout = turn.key(), %error, "capture not done yet; will retry");
            }
        }
        Ok(())
    }

    /// Before the pivot: void the payment by key if it may exist, which settles whether
    /// the pivot passed after all (a capture whose answer was lost); then undo the rest,
    /// or roll forward if it was captured.
    async fn unwind(
        &self,
        turn: &mut Turn<Self>,
        failure: CheckoutFailure,
    ) -> Result<CheckoutOutcome, RuntimeError> {
        if turn.state().step >= Step::Authorizing
            && let Settled::Captured(record) = self.void(turn).await?
        {
            self.pivot(turn, &record)?;
            return Ok(CheckoutOutcome::Placed {
                order: Box::new(self.roll_forward(turn).await?),
            });
        }
        self.compensate(turn).await?;
        Ok(CheckoutOutcome::Failed { failure })
    }

    /// Void by the authorization's key: voids it if it exists and leaves a tombstone
    /// otherwise, so a late authorization or capture is refused. A refusal means the money
    /// was captured; the record then gives the reference. No answer: the saga stays
    /// unfinished and the recover reminder tries again.
    async fn void(&self, turn: &Turn<Self>) -> Result<Settled, RuntimeError> {
        let checkout_id = &turn.state().checkout_id;
        let gateway = self.payments.gateway(turn.runtime());
        let unreachable = |error: PaymentError| RuntimeError::Unreachable {
            actor: turn.id().clone(),
            reason: format!("cannot settle the payment yet: {error}"),
        };
        let reason = match within(self.payment_timeout, gateway.void(checkout_id)).await {
            Ok(_) => return Ok(Settled::Voided),
            Err(PaymentError::Refused(reason)) => reason,
            Err(error) => return Err(unreachable(error)),
        };
        let found = within(self.payment_timeout, gateway.authorization(checkout_id))
            .await
            .map_err(unreachable)?;
        match found {
            Some(record) if is_captured(&record) => Ok(Settled::Captured(record)),
            _ => {
                tracing::error!(
                    checkout = turn.key(),
                    reason,
                    "cannot void a checkout's payment"
                );
                Ok(Settled::Voided)
            }
        }
    }

    /// Undo what was done before the pivot, newest first, the payment aside (see
    /// [`Self::unwind`]). Every call is idempotent, so it is safe to run on a saga whose
    /// exact progress is unknown (after a crash).
    async fn compensate(&self, turn: &mut Turn<Self>) -> Result<(), RuntimeError> {
        let state = turn.state().clone();
        let runtime = turn.runtime().clone();
        if state.step >= Step::OrderPlaced {
            // Earlier versions placed the order before the pivot.
            let cancelled = runtime
                .actor::<OrderActor>(state.order_id.clone())
                .ask(OrderCommand::Cancel {
                    reason: "checkout failed".to_owned(),
                })
                .await?;
            if let Err(rejection) = cancelled {
                tracing::warn!(checkout = turn.key(), %rejection, "order not cancellable");
            }
        }
        if state.step >= Step::CartLocked {
            self.each_line(turn, |_| StockCommand::Release {
                reservation: state.checkout_id.clone(),
            })
            .await?;
        }
        if state.step >= Step::Started {
            let aborted = runtime
                .actor::<CartActor>(state.cart_id.clone())
                .ask(CartCommand::AbortCheckout {
                    checkout_id: state.checkout_id.clone(),
                })
                .await?;
            // A cart that is gone, or was never locked by us, has nothing to unlock.
            let _ = aborted;
        }
        Ok(())
    }

    /// A saga found unfinished by a later turn (the node died mid-saga). Nothing between
    /// its start and its end was checkpointed, so a record at `Started` may have got as
    /// far as the capture: settle it as if the payment were in flight.
    async fn recover_interrupted(
        &self,
        turn: &mut Turn<Self>,
    ) -> Result<CheckoutOutcome, RuntimeError> {
        if turn.state().step == Step::Started {
            Self::set_step(turn, Step::Authorizing);
        }
        self.recover(turn).await
    }

    /// An unfinished saga: compensate before the pivot, roll forward after.
    async fn recover(&self, turn: &mut Turn<Self>) -> Result<CheckoutOutcome, RuntimeError> {
        let outcome = if turn.state().step >= Step::Committed {
            CheckoutOutcome::Placed {
                order: Box::new(self.roll_forward(turn).await?),
            }
        } else {
            self.unwind(turn, CheckoutFailure::Interrupted).await?
        };
        Ok(self.finish(turn, outcome))
    }

    /// Store the outcome (committed at the end of the turn, before the reply).
    fn finish(&self, turn: &mut Turn<Self>, outcome: CheckoutOutcome) -> CheckoutOutcome {
        turn.cancel_reminder(RECOVER_REMINDER);
        let state = turn.state_mut();
        state.outcome = Some(outcome.clone());
        if matches!(outcome, CheckoutOutcome::Failed { .. }) {
            state.step = Step::Done;
        }
        outcome
    }
}

/// Whether the money was taken (a refund later does not undo the pivot).
fn is_captured(record: &PaymentRecord) -> bool {
    matches!(
        record.status,
        PaymentStatus::Captured | PaymentStatus::Refunded
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use emporium_runtime::store::{CountingStore, MemoryStore, ReminderChange, StateWrite};
    use emporium_runtime::{ActorId, ManualClock, Runtime, StateStore};

    use super::*;
    use crate::catalog::{ProductActor, ProductCommand, ProductDraft};
    use crate::inventory::{StockView, WarehouseId};
    use crate::order::NewOrder;
    use crate::order::OrderStatus;
    use crate::payment::{PaymentActor, PaymentGateway, PaymentRecord, TestGateway};
    use crate::values::{Quantity, Sku};
    use crate::{DomainPorts, register_with};

    const START_MS: u64 = 1_700_000_000_000;

    struct Shop {
        runtime: Runtime,
        store: Arc<dyn StateStore>,
    }

    const EXPERIMENTS: &str = "button=control,green";

    async fn shop(payment_timeout: Duration) -> Shop {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        shop_on(store, payment_timeout).await
    }

    async fn shop_on(store: Arc<dyn StateStore>, payment_timeout: Duration) -> Shop {
        shop_with_clock(store, Arc::new(ManualClock::new(START_MS)), payment_timeout).await
    }

    async fn shop_with_clock(
        store: Arc<dyn StateStore>,
        clock: Arc<ManualClock>,
        payment_timeout: Duration,
    ) -> Shop {
        let ports = DomainPorts {
            payment_timeout,
            experiments: Experiments::parse(EXPERIMENTS).unwrap(),
            ..DomainPorts::default()
        };
        let runtime = register_with(Runtime::builder(store.clone()).clock(clock), &ports)
            .build()
            .await
            .unwrap();
        let shop = Shop { runtime, store };
        for (sku, price) in [("SKU-A", 1_000), ("SKU-B", 250)] {
            shop.runtime
                .actor::<ProductActor>(sku)
                .ask(ProductCommand::Upsert(ProductDraft {
                    name: sku.to_owned(),
                    description: String::new(),
                    price_cents: price,
                    currency: Currency::default(),
                    category: "test".to_owned(),
                    attributes: BTreeMap::new(),
                }))
                .await
                .unwrap()
                .unwrap();
        }
        shop
    }

    impl Shop {
        async fn set_stock(&self, sku: &str, on_hand: u64) {
            self.runtime
                .actor::<InventoryActor>(sku)
                .ask(StockCommand::SetStock {
                    warehouse: WarehouseId::parse("main").unwrap(),
                    on_hand,
                    low_stock_threshold: None,
                })
                .await
                .unwrap();
        }

        async fn stock(&self, sku: &str) -> StockView {
            match self
                .runtime
                .actor::<InventoryActor>(sku)
                .ask(StockCommand::Get)
                .await
                .unwrap()
            {
                StockReply::View(Some(view)) => view,
                _ => panic!("no stock for {sku}"),
            }
        }

        async fn cart(&self, id: &str, lines: &[(&str, i64)]) -> Result<(), CartRejection> {
            let cart = self.runtime.actor::<CartActor>(id);
            cart.ask(CartCommand::Create {
                owner: Some("u-1".to_owned()),
            })
            .await
            .unwrap()?;
            for (sku, quantity) in lines {
                cart.ask(CartCommand::AddItem {
                    sku: Sku::parse(sku).unwrap(),
                    quantity: Quantity::new(*quantity).unwrap(),
                })
                .await
                .unwrap()?;
            }
            Ok(())
        }

        async fn cart_lines(&self, id: &str) -> Vec<CartLine> {
            self.runtime
                .actor::<CartActor>(id)
                .ask(CartCommand::Get)
                .await
                .unwrap()
                .unwrap()
                .items
        }

        async fn checkout(&self, user: &str, key: &str, cart: &str, token: &str) -> CheckoutReply {
            let key = IdempotencyKey::parse(key).unwrap();
            self.runtime
                .actor::<CheckoutActor>(checkout_key(user, &key))
                .ask(CheckoutCommand::Run(Box::new(request(user, cart, token))))
                .await
                .unwrap()
        }

        /// What the checkout `user`/`key` raised, in order.
        async fn events(&self, user: &str, key: &str) -> Vec<DomainEvent> {
            let key = checkout_key(user, &IdempotencyKey::parse(key).unwrap());
            crate::events::emitted::events(self.store.as_ref(), "checkout", &key).await
        }

        async fn payment(&self, reference: &str) -> Option<PaymentRecord> {
            TestGateway::new(self.runtime.clone())
                .retrieve(reference)
                .await
                .unwrap()
        }
    }

    fn request(user: &str, cart: &str, token: &str) -> CheckoutRequest {
        CheckoutRequest {
            user_id: user.to_owned(),
            cart_id: CartId::parse(cart).unwrap(),
            shipping_address: ShippingAddress::parse(
                Some("Ada"),
                Some("1 Main St"),
                Some("Springfield"),
                Some("12345"),
                Some("DE"),
            )
            .unwrap(),
            token: PaymentToken::parse(Some(token)).unwrap(),
        }
    }

    fn placed(reply: CheckoutReply) -> OrderView {
        match reply {
            Ok(CheckoutOutcome::Placed { order }) => *order,
            other => panic!("not placed: {other:?}"),
        }
    }

    fn failed(reply: CheckoutReply) -> CheckoutFailure {
        match reply {
            Ok(CheckoutOutcome::Failed { failure }) => failure,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_checkout_sells_stock_charges_once_and_empties_the_cart() {
        let shop = shop(Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 10).await;
        shop.set_stock("SKU-B", 10).await;
        shop.cart("cart-1", &[("SKU-A", 2), ("SKU-B", 1)])
            .await
            .unwrap();
        let order = placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.subtotal_cents, 2_250);
        assert_eq!(order.shipping_cents, 900, "DE rate");
        assert_eq!(order.total_cents, 3_150);
        assert_eq!(order.user_id, "u-1");
        let a = shop.stock("SKU-A").await;
        assert_eq!((a.on_hand, a.reserved), (8, 0));
        assert!(shop.cart_lines("cart-1").await.is_empty());
        let index = shop
            .runtime
            .actor::<UserOrdersActor>("u-1")
            .ask(UserOrdersCommand::List)
            .await
            .unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index[0], order.id);
        let payment = shop.payment(&order.payment_reference).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Captured);
        assert_eq!(payment.captured_cents, 3_150);

        // The same key and request: the same outcome, nothing done twice.
        let again = placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        assert_eq!(again, order);
        let payment = shop.payment(&order.payment_reference).await.unwrap();
        assert_eq!(payment.operations.len(), 2, "one authorize, one capture");
        assert_eq!(shop.stock("SKU-A").await.on_hand, 8);
        // The same key with another request is refused.
        assert_eq!(
            shop.checkout("u-1", "k-1", "cart-1", "tok_chargeDeclined")
                .await,
            Err(CheckoutRejection::KeyReused)
        );
        // Keys are per user: another user's k-1 is another checkout, of a cart not theirs.
        assert_eq!(
            failed(shop.checkout("u-2", "k-1", "cart-1", "tok_visa").await),
            CheckoutFailure::NotYourCart
        );
    }

    #[tokio::test]
    async fn failures_before_the_pivot_are_compensated() {
        let shop = shop(Duration::from_millis(300)).await;
        shop.set_stock("SKU-A", 10).await;
        shop.set_stock("SKU-B", 1).await;
        shop.cart("cart-1", &[("SKU-A", 2), ("SKU-B", 1)])
            .await
            .unwrap();

        let declined = failed(
            shop.checkout("u-1", "k-1", "cart-1", "tok_chargeDeclined")
                .await,
        );
        assert!(
            matches!(&declined, CheckoutFailure::PaymentDeclined { code, .. } if code == "card_declined")
        );
        assert_eq!(shop.stock("SKU-A").await.reserved, 0);
        assert_eq!(shop.stock("SKU-B").await.reserved, 0);
        assert_eq!(shop.cart_lines("cart-1").await.len(), 2, "cart intact");

        let timeout = failed(shop.checkout("u-1", "k-2", "cart-1", "tok_timeout").await);
        assert_eq!(timeout, CheckoutFailure::PaymentTimeout);
        assert_eq!(shop.stock("SKU-A").await.reserved, 0);
        // The authorization happened at the "processor"; the saga voided it by key.
        let checkouts = shop
            .runtime
            .list_keys::<PaymentActor>(None, 100)
            .await
            .unwrap();
        let mut voided = 0;
        for key in checkouts {
            let record = shop.payment(&format!("pay_{key}")).await.unwrap();
            if record.status == PaymentStatus::Voided {
                voided += 1;
                assert_eq!(record.captured_cents, 0);
            }
        }
        assert_eq!(voided, 1);

        shop.set_stock("SKU-B", 0).await;
        let short = failed(shop.checkout("u-1", "k-3", "cart-1", "tok_visa").await);
        assert_eq!(
            short,
            CheckoutFailure::InsufficientStock {
                skus: vec!["SKU-B".to_owned()]
            }
        );
        assert_eq!(shop.stock("SKU-A").await.reserved, 0, "SKU-A released");

        // The cart is unlocked after each failure: it can change and check out again.
        shop.runtime
            .actor::<CartActor>("cart-1")
            .ask(CartCommand::RemoveItem {
                sku: Sku::parse("SKU-B").unwrap(),
            })
            .await
            .unwrap()
            .unwrap();
        let order = placed(shop.checkout("u-1", "k-4", "cart-1", "tok_visa").await);
        assert_eq!(order.items.len(), 1);

        shop.cart("empty", &[]).await.unwrap();
        assert_eq!(
            failed(shop.checkout("u-1", "k-5", "empty", "tok_visa").await),
            CheckoutFailure::EmptyCart
        );
        assert_eq!(
            failed(shop.checkout("u-1", "k-6", "nope", "tok_visa").await),
            CheckoutFailure::CartNotFound
        );
    }

    #[tokio::test]
    async fn a_locked_cart_refuses_changes_and_other_checkouts() {
        let shop = shop(Duration::from_secs(5)).await;
        shop.cart("cart-1", &[("SKU-A", 1)]).await.unwrap();
        let cart = shop.runtime.actor::<CartActor>("cart-1");
        cart.ask(CartCommand::BeginCheckout {
            user: "u-1".to_owned(),
            checkout_id: "other".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
        let add = cart
            .ask(CartCommand::AddItem {
                sku: Sku::parse("SKU-B").unwrap(),
                quantity: Quantity::new(1).unwrap(),
            })
            .await
            .unwrap();
        assert_eq!(add.unwrap_err(), CartRejection::CheckoutInProgress);
        assert_eq!(
            failed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await),
            CheckoutFailure::CartBusy
        );
        // The failed checkout did not unlock the other one's cart.
        assert_eq!(
            cart.ask(CartCommand::RemoveItem {
                sku: Sku::parse("SKU-A").unwrap()
            })
            .await
            .unwrap()
            .unwrap_err(),
            CartRejection::CheckoutInProgress
        );
    }

    /// What a node of an earlier version (one checkpoint per step) that died mid-saga
    /// leaves behind, which this version still settles: the cart locked, `units` of SKU-A
    /// reserved (committed too from `Step::Committed` on), the payment authorized and the
    /// order placed when the step says so, and the checkout's own record at `step`, with
    /// its `recover` reminder due at `recover_at` if given.
    async fn dead_saga(
        shop: &Shop,
        store: &Arc<dyn StateStore>,
        key: &str,
        step: Step,
        recover_at: Option<u64>,
    ) -> CheckoutState {
        let request = request("u-1", "cart-1", "tok_visa");
        let lines = shop.cart_lines("cart-1").await;
        let checkout_id = format!("ck-{key}");
        let order_id = format!("o-{key}");
        shop.runtime
            .actor::<CartActor>("cart-1")
            .ask(CartCommand::BeginCheckout {
                user: "u-1".to_owned(),
                checkout_id: checkout_id.clone(),
            })
            .await
            .unwrap()
            .unwrap();
        let sku = shop.runtime.actor::<InventoryActor>("SKU-A");
        sku.ask(StockCommand::Reserve {
            reservation: checkout_id.clone(),
            units: 2,
        })
        .await
        .unwrap();
        let mut state = CheckoutState {
            fingerprint: Some(request.fingerprint()),
            step,
            checkout_id: checkout_id.clone(),
            order_id: order_id.clone(),
            user_id: "u-1".to_owned(),
            cart_id: "cart-1".to_owned(),
            shipping_address: Some(request.shipping_address.clone()),
            lines,
            subtotal_cents: 2_000,
            shipping_cents: 900,
            ..CheckoutState::default()
        };
        if step >= Step::Authorized {
            let gateway = TestGateway::new(shop.runtime.clone());
            let approved = gateway
                .authorize(AuthorizeRequest {
                    idempotency_key: checkout_id.clone(),
                    amount_cents: state.total_cents(),
                    currency: Currency::default(),
                    token: "tok_visa".to_owned(),
                })
                .await
                .unwrap();
            let Authorization::Approved { reference } = approved else {
                panic!("approved");
            };
            state.payment_reference = Some(reference);
        }
        if step >= Step::OrderPlaced {
            shop.runtime
                .actor::<OrderActor>(order_id.clone())
                .ask(OrderCommand::Place(Box::new(NewOrder {
                    user_id: "u-1".to_owned(),
                    checkout_id: checkout_id.clone(),
                    items: state.lines.clone(),
                    subtotal_cents: state.subtotal_cents,
                    shipping_cents: state.shipping_cents,
                    currency: Currency::default(),
                    shipping_address: request.shipping_address.clone(),
                    payment_reference: state.payment_reference.clone().unwrap(),
                })))
                .await
                .unwrap()
                .unwrap();
        }
        if step >= Step::Committed {
            sku.ask(StockCommand::Commit {
                reservation: checkout_id.clone(),
            })
            .await
            .unwrap();
            state.follow_up = FollowUp {
                capture: true,
                mark_paid: true,
                clear_cart: true,
                ..FollowUp::default()
            };
        }
        let reminders: BTreeMap<&str, u64> = recover_at
            .map(|due| (RECOVER_REMINDER, due))
            .into_iter()
            .collect();
        let record = serde_json::json!({"state": state, "reminders": reminders});
        let id = ActorId::new(
            "checkout",
            checkout_key("u-1", &IdempotencyKey::parse(key).unwrap()),
        );
        store
            .save(
                &id,
                StateWrite {
                    expected_version: 0,
                    state: serde_json::to_vec(&record).unwrap().into(),
                    reminders: recover_at
                        .map(|due_at_ms| ReminderChange::Set {
                            name: RECOVER_REMINDER.to_owned(),
                            due_at_ms,
                        })
                        .into_iter()
                        .collect(),
                    ..StateWrite::default()
                },
            )
            .await
            .unwrap();
        state
    }

    #[tokio::test]
    async fn a_saga_interrupted_before_the_pivot_is_compensated_by_its_retry() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let shop = shop_on(store.clone(), Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 5).await;
        shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        dead_saga(&shop, &store, "dead", Step::Authorizing, None).await;
        assert_eq!(shop.stock("SKU-A").await.reserved, 2);

        let retried = failed(shop.checkout("u-1", "dead", "cart-1", "tok_visa").await);
        assert_eq!(retried, CheckoutFailure::Interrupted);
        assert_eq!(shop.stock("SKU-A").await.reserved, 0, "released");
        assert_eq!(
            shop.payment("pay_ck-dead").await.map(|p| p.status),
            Some(PaymentStatus::Voided),
            "voided by key: a late authorization would be refused"
        );
        // Unlocked with its lines.
        let order = placed(shop.checkout("u-1", "k-new", "cart-1", "tok_visa").await);
        assert_eq!(order.items[0].quantity, 2);
    }

    #[tokio::test]
    async fn a_saga_interrupted_after_the_pivot_rolls_forward() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let shop = shop_on(store.clone(), Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 5).await;
        shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        let state = dead_saga(&shop, &store, "pivoted", Step::Committed, None).await;

        let order = placed(shop.checkout("u-1", "pivoted", "cart-1", "tok_visa").await);
        assert_eq!(order.id, state.order_id);
        assert_eq!(order.status, OrderStatus::Paid);
        let payment = shop.payment(&order.payment_reference).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Captured);
        assert!(shop.cart_lines("cart-1").await.is_empty(), "cart emptied");
        let stock = shop.stock("SKU-A").await;
        assert_eq!((stock.on_hand, stock.reserved), (3, 0));
    }

    #[tokio::test]
    async fn the_recover_reminder_settles_a_dead_saga_after_a_restart() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(START_MS));
        let first = shop_with_clock(store.clone(), clock.clone(), Duration::from_secs(5)).await;
        first.set_stock("SKU-A", 5).await;
        first.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        dead_saga(
            &first,
            &store,
            "dead",
            Step::Reserved,
            Some(START_MS + 60_000),
        )
        .await;
        first.runtime.shutdown(Duration::from_secs(1)).await;
        drop(first);

        // The restarted node re-arms the reminder; it fires once due.
        let second = shop_with_clock(store.clone(), clock.clone(), Duration::from_secs(5)).await;
        assert_eq!(second.stock("SKU-A").await.reserved, 2);
        clock.advance_ms(61_000);
        let mut settled = false;
        for _ in 0..100 {
            if second.stock("SKU-A").await.reserved == 0 {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(settled, "the recover reminder released the reservation");
        // The stored outcome is the answer to a late retry, and the cart is unlocked.
        let retried = failed(second.checkout("u-1", "dead", "cart-1", "tok_visa").await);
        assert_eq!(retried, CheckoutFailure::Interrupted);
        second
            .runtime
            .actor::<CartActor>("cart-1")
            .ask(CartCommand::RemoveItem {
                sku: Sku::parse("SKU-A").unwrap(),
            })
            .await
            .unwrap()
            .unwrap();
    }

    fn started(checkout_id: &str, user: &str) -> DomainEvent {
        DomainEvent::CheckoutStarted {
            checkout_id: checkout_id.to_owned(),
            cart_id: "cart-1".to_owned(),
            user_id: user.to_owned(),
            variants: Experiments::parse(EXPERIMENTS).unwrap().variants_for(user),
        }
    }

    fn captured(order: &OrderView) -> DomainEvent {
        DomainEvent::PaymentCaptured {
            order_id: order.id.clone(),
            user_id: order.user_id.clone(),
            reference: order.payment_reference.clone(),
            amount_cents: order.total_cents,
            currency: order.currency.as_str().to_owned(),
        }
    }

    #[tokio::test]
    async fn a_checkout_raises_started_then_captured_once() {
        let shop = shop(Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 10).await;
        shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        let order = placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        // Retried, or the key reused with another request: nothing more.
        placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        let reused = shop
            .checkout("u-1", "k-1", "cart-1", "tok_chargeDeclined")
            .await;
        assert_eq!(reused, Err(CheckoutRejection::KeyReused));
        assert_eq!(
            shop.events("u-1", "k-1").await,
            [started(&order.checkout_id, "u-1"), captured(&order)]
        );
        assert_eq!(order.total_cents, 2_900, "2 x 1000 + DE shipping");

        // A declined checkout did start, and captured nothing.
        shop.cart("cart-1", &[("SKU-A", 1)]).await.unwrap();
        failed(
            shop.checkout("u-1", "k-2", "cart-1", "tok_chargeDeclined")
                .await,
        );
        let events = shop.events("u-1", "k-2").await;
        assert!(
            matches!(events.as_slice(), [DomainEvent::CheckoutStarted { user_id, .. }] if user_id == "u-1"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_recovered_saga_never_starts_again_and_captures_once() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let shop = shop_on(store.clone(), Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 5).await;
        shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        // Its start (and CheckoutStarted) was committed by the life that died.
        dead_saga(&shop, &store, "pivoted", Step::Committed, None).await;
        let order = placed(shop.checkout("u-1", "pivoted", "cart-1", "tok_visa").await);
        placed(shop.checkout("u-1", "pivoted", "cart-1", "tok_visa").await);
        assert_eq!(shop.events("u-1", "pivoted").await, [captured(&order)]);

        // Before the pivot: compensated, nothing raised.
        shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        dead_saga(&shop, &store, "early", Step::Authorized, None).await;
        failed(shop.checkout("u-1", "early", "cart-1", "tok_visa").await);
        assert!(shop.events("u-1", "early").await.is_empty());
    }

    /// How far a saga of this version got before its node died: its record says `Started`
    /// (with the lines it read), whatever it did after.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum DiedAfter {
        Start,
        Lock,
        Reserve,
        Authorize,
        CommitStock,
        /// The pivot.
        Capture,
        PlaceOrder,
        EmptyCart,
    }

    /// What a node of this version leaves behind when it dies after `died`: the effects
    /// up to it (two units of SKU-A) and the one checkpoint, `Started`, with the recover
    /// reminder due at `recover_at` if given.
    async fn dead_saga_now(
        shop: &Shop,
        store: &Arc<dyn StateStore>,
        key: &str,
        died: DiedAfter,
        recover_at: Option<u64>,
    ) -> CheckoutState {
        let request = request("u-1", "cart-1", "tok_visa");
        let lines = shop.cart_lines("cart-1").await;
        let checkout_id = format!("ck-{key}");
        let state = CheckoutState {
            fingerprint: Some(request.fingerprint()),
            step: Step::Started,
            checkout_id: checkout_id.clone(),
            order_id: format!("o-{key}"),
            user_id: "u-1".to_owned(),
            cart_id: "cart-1".to_owned(),
            shipping_address: Some(request.shipping_address.clone()),
            lines,
            subtotal_cents: 2_000,
            shipping_cents: 900,
            ..CheckoutState::default()
        };
        let sku = shop.runtime.actor::<InventoryActor>("SKU-A");
        let gateway = TestGateway::new(shop.runtime.clone());
        let reference = format!("pay_{checkout_id}");
        for step in [
            DiedAfter::Lock,
            DiedAfter::Reserve,
            DiedAfter::Authorize,
            DiedAfter::CommitStock,
            DiedAfter::Capture,
            DiedAfter::PlaceOrder,
            DiedAfter::EmptyCart,
        ] {
            if step > died {
                break;
            }
            match step {
                DiedAfter::Start => {}
                DiedAfter::Lock => {
                    shop.runtime
                        .actor::<CartActor>("cart-1")
                        .ask(CartCommand::BeginCheckout {
                            user: "u-1".to_owned(),
                            checkout_id: checkout_id.clone(),
                        })
                        .await
                        .unwrap()
                        .unwrap();
                }
                DiedAfter::Reserve => {
                    let reply = sku
                        .ask(StockCommand::Reserve {
                            reservation: checkout_id.clone(),
                            units: 2,
                        })
                        .await
                        .unwrap();
                    assert!(matches!(reply, StockReply::Reservation(Ok(_))));
                }
                DiedAfter::Authorize => {
                    let approved = gateway
                        .authorize(AuthorizeRequest {
                            idempotency_key: checkout_id.clone(),
                            amount_cents: state.total_cents(),
                            currency: Currency::default(),
                            token: "tok_visa".to_owned(),
                        })
                        .await
                        .unwrap();
                    assert_eq!(
                        approved,
                        Authorization::Approved {
                            reference: reference.clone()
                        }
                    );
                }
                DiedAfter::CommitStock => {
                    let reply = sku
                        .ask(StockCommand::Commit {
                            reservation: checkout_id.clone(),
                        })
                        .await
                        .unwrap();
                    assert!(matches!(reply, StockReply::Reservation(Ok(_))));
                }
                DiedAfter::Capture => {
                    let record = gateway
                        .capture(
                            &reference,
                            state.total_cents(),
                            &format!("capture:{checkout_id}"),
                        )
                        .await
                        .unwrap();
                    assert_eq!(record.status, PaymentStatus::Captured);
                }
                DiedAfter::PlaceOrder => {
                    let new = NewOrder {
                        payment_reference: reference.clone(),
                        ..CheckoutActor::new_order_of(&state).unwrap()
                    };
                    shop.runtime
                        .actor::<OrderActor>(state.order_id.clone())
                        .ask(OrderCommand::PlacePaid(Box::new(new)))
                        .await
                        .unwrap()
                        .unwrap();
                }
                DiedAfter::EmptyCart => {
                    shop.runtime
                        .actor::<CartActor>("cart-1")
                        .ask(CartCommand::CompleteCheckout {
                            checkout_id: checkout_id.clone(),
                        })
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
        }
        save_record(store, key, &state, recover_at).await;
        state
    }

    async fn save_record(
        store: &Arc<dyn StateStore>,
        key: &str,
        state: &CheckoutState,
        recover_at: Option<u64>,
    ) {
        let reminders: BTreeMap<&str, u64> = recover_at
            .map(|due| (RECOVER_REMINDER, due))
            .into_iter()
            .collect();
        let record = serde_json::json!({"state": state, "reminders": reminders});
        let id = ActorId::new(
            "checkout",
            checkout_key("u-1", &IdempotencyKey::parse(key).unwrap()),
        );
        store
            .save(
                &id,
                StateWrite {
                    expected_version: 0,
                    state: serde_json::to_vec(&record).unwrap().into(),
                    reminders: recover_at
                        .map(|due_at_ms| ReminderChange::Set {
                            name: RECOVER_REMINDER.to_owned(),
                            due_at_ms,
                        })
                        .into_iter()
                        .collect(),
                    ..StateWrite::default()
                },
            )
            .await
            .unwrap();
    }

    /// A node of this version dies at every point of a one-line saga; the retry settles
    /// it: compensated (nothing charged, stock back, cart unlocked with its lines) before
    /// the capture, rolled forward to one paid order after it.
    #[tokio::test]
    async fn a_saga_that_died_anywhere_is_settled_by_its_retry() {
        for died in [
            DiedAfter::Start,
            DiedAfter::Lock,
            DiedAfter::Reserve,
            DiedAfter::Authorize,
            DiedAfter::CommitStock,
            DiedAfter::Capture,
            DiedAfter::PlaceOrder,
            DiedAfter::EmptyCart,
        ] {
            let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
            let shop = shop_on(store.clone(), Duration::from_secs(5)).await;
            shop.set_stock("SKU-A", 5).await;
            shop.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
            let key = format!("died-{died:?}");
            let state = dead_saga_now(&shop, &store, &key, died, None).await;

            let answer = shop.checkout("u-1", &key, "cart-1", "tok_visa").await;
            let reference = format!("pay_{}", state.checkout_id);
            let stock = shop.stock("SKU-A").await;
            if died < DiedAfter::Capture {
                assert_eq!(failed(answer), CheckoutFailure::Interrupted, "{died:?}");
                assert_eq!((stock.on_hand, stock.reserved), (5, 0), "{died:?}");
                assert_eq!(
                    shop.payment(&reference).await.map(|p| p.status),
                    Some(PaymentStatus::Voided),
                    "{died:?}: voided by key, a late capture is refused"
                );
                assert!(shop.events("u-1", &key).await.is_empty(), "{died:?}");
                // Unlocked with its lines: it checks out again.
                let order = placed(shop.checkout("u-1", "again", "cart-1", "tok_visa").await);
                assert_eq!(order.items[0].quantity, 2, "{died:?}");
            } else {
                let order = placed(answer);
                assert_eq!(order.id, state.order_id, "{died:?}");
                assert_eq!(order.status, OrderStatus::Paid, "{died:?}");
                assert_eq!(order.total_cents, 2_900, "{died:?}");
                assert_eq!(order.payment_reference, reference, "{died:?}");
                assert_eq!((stock.on_hand, stock.reserved), (3, 0), "{died:?}");
                let payment = shop.payment(&reference).await.unwrap();
                assert_eq!(payment.status, PaymentStatus::Captured, "{died:?}");
                assert_eq!(
                    payment.operations.len(),
                    2,
                    "{died:?}: one authorize, one capture"
                );
                assert!(shop.cart_lines("cart-1").await.is_empty(), "{died:?}");
                let index = shop
                    .runtime
                    .actor::<UserOrdersActor>("u-1")
                    .ask(UserOrdersCommand::List)
                    .await
                    .unwrap();
                assert_eq!(index, std::slice::from_ref(&order.id), "{died:?}");
                assert_eq!(
                    shop.events("u-1", &key).await,
                    [captured(&order)],
                    "{died:?}: the capture raised once, by the commit that recorded it"
                );
                // The stored outcome answers later retries unchanged.
                let again = placed(shop.checkout("u-1", &key, "cart-1", "tok_visa").await);
                assert_eq!(again, order, "{died:?}");
            }
        }
    }

    /// The recover reminder of a node of this version settles its dead saga after a
    /// restart, past the pivot too: nobody needs to retry.
    #[tokio::test]
    async fn the_recover_reminder_rolls_a_dead_saga_forward_after_a_restart() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(START_MS));
        let first = shop_with_clock(store.clone(), clock.clone(), Duration::from_secs(5)).await;
        first.set_stock("SKU-A", 5).await;
        first.cart("cart-1", &[("SKU-A", 2)]).await.unwrap();
        let state = dead_saga_now(
            &first,
            &store,
            "dead",
            DiedAfter::Capture,
            Some(START_MS + 60_000),
        )
        .await;
        first.runtime.shutdown(Duration::from_secs(1)).await;
        drop(first);

        let second = shop_with_clock(store.clone(), clock.clone(), Duration::from_secs(5)).await;
        clock.advance_ms(61_000);
        let mut settled = false;
        for _ in 0..100 {
            if second.cart_lines("cart-1").await.is_empty() {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(settled, "the recover reminder rolled the saga forward");
        let order = placed(second.checkout("u-1", "dead", "cart-1", "tok_visa").await);
        assert_eq!(order.id, state.order_id);
        assert_eq!(order.status, OrderStatus::Paid);
        let stock = second.stock("SKU-A").await;
        assert_eq!((stock.on_hand, stock.reserved), (3, 0));
    }

    /// Issue 14's measure: the durable writes of a one-line checkout, per actor kind. Two
    /// are the saga's own (start, outcome); the rest are one per participant change.
    #[tokio::test]
    async fn a_one_line_checkout_makes_ten_durable_writes() {
        let (store, counts) = CountingStore::wrap(Arc::new(MemoryStore::new()));
        let shop = shop_on(store, Duration::from_secs(5)).await;
        shop.set_stock("SKU-A", 10).await;
        shop.cart("cart-1", &[("SKU-A", 1)]).await.unwrap();
        let before = counts.snapshot();
        placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        let after = counts.snapshot();
        let writes = after.since(&before).saves;
        let expected: BTreeMap<&str, u64> = [
            ("checkout", 2),  // start, outcome
            ("cart", 2),      // lock, empty
            ("inventory", 2), // reserve, commit
            ("payment", 2),   // authorize, capture
            ("order", 1),     // placed + paid
            ("user-orders", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(writes, expected);
        assert_eq!(writes.values().sum::<u64>(), 10, "17 before issue 14");
        // A retry reads the stored outcome: no write.
        placed(shop.checkout("u-1", "k-1", "cart-1", "tok_visa").await);
        assert_eq!(counts.snapshot().total_saves(), after.total_saves());
    }
}
