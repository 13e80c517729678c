//! Orders, event-sourced: one `order` actor per order id whose state *is* its event
//! history (`placed`, `paid`, `shipped`, `delivered`, `cancelled`, `refunded`, each with
//! its time). The current order is derived by folding the history; a command that is not a
//! valid transition from the current status is refused ([`OrderRejection::InvalidTransition`]).
//! Each event is also raised with [`Turn::emit`] (subject `emporium.order.<event>`), committed
//! with the history in one write: the outbox publishes it later. `placed` and `paid` carry
//! the user's experiment variants (see [`crate::experiments`]).
//!
//! Cancelling (owner or admin, before shipping) returns the stock (committed units go back
//! to `on_hand`) and gives the money back (a refund when paid, a void when only
//! authorized). Those calls go to inventory and payment actors, never back to a checkout.
//! The `cancelled` event is committed first; if returning stock or money fails, an `undo`
//! reminder retries until both are done, then `refunded` is appended when money moved.
//!
//! [`UserOrdersActor`] (kind `user-orders`, keyed by user id) indexes a user's order ids.

use std::time::Duration;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use crate::cart::CartLine;
use crate::events::{DomainEvent, EventLine};
use crate::experiments::Experiments;
use crate::inventory::{InventoryActor, StockCommand, StockReply};
use crate::payment::{PaymentError, PaymentProvider, within};
use crate::shipping::ShippingAddress;
use crate::values::Currency;

/// How soon an unfinished undo (stock or money not yet returned) is retried.
const UNDO_RETRY_MS: u64 = 10_000;
const UNDO_REMINDER: &str = "undo";

/// What an order is created with (the `placed` event's payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub user_id: String,
    /// The checkout that placed it: its stock reservations and payment authorization use
    /// this id.
    pub checkout_id: String,
    pub items: Vec<CartLine>,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub currency: Currency,
    pub shipping_address: ShippingAddress,
    /// The gateway's reference for the payment; never card data.
    pub payment_reference: String,
}

/// An order's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }
}

/// One event of an order's history (its stored form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OrderEventKind {
    Placed(Box<NewOrder>),
    Paid,
    Shipped,
    Delivered,
    Cancelled { reason: String },
    Refunded { amount_cents: i64 },
}

impl OrderEventKind {
    fn status(&self) -> OrderStatus {
        match self {
            Self::Placed(_) => OrderStatus::Placed,
            Self::Paid => OrderStatus::Paid,
            Self::Shipped => OrderStatus::Shipped,
            Self::Delivered => OrderStatus::Delivered,
            Self::Cancelled { .. } => OrderStatus::Cancelled,
            Self::Refunded { .. } => OrderStatus::Refunded,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: OrderEventKind,
}

/// The stored state: the history, plus whether a cancellation still owes stock or money.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub events: Vec<OrderEvent>,
    #[serde(default)]
    pub undo: Option<PendingUndo>,
}

/// What a cancellation has still to give back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingUndo {
    pub stock: bool,
    pub money: bool,
}

/// An order as callers see it, folded from its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub items: Vec<CartLine>,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
    pub currency: Currency,
    pub shipping_address: ShippingAddress,
    pub payment_reference: String,
    pub checkout_id: String,
    /// `(status, at_ms)` in order.
    pub history: Vec<(OrderStatus, u64)>,
}

impl OrderView {
    /// Whether the history holds an event of `status`.
    pub fn has_been(&self, status: OrderStatus) -> bool {
        self.history.iter().any(|(s, _)| *s == status)
    }
}

/// Fold a history into the order; `None` when it was never placed.
pub fn fold(id: &str, events: &[OrderEvent]) -> Option<OrderView> {
    let (first, rest) = events.split_first()?;
    let OrderEventKind::Placed(placed) = &first.kind else {
        return None;
    };
    let mut view = OrderView {
        id: id.to_owned(),
        user_id: placed.user_id.clone(),
        status: OrderStatus::Placed,
        items: placed.items.clone(),
        subtotal_cents: placed.subtotal_cents,
        shipping_cents: placed.shipping_cents,
        total_cents: placed.subtotal_cents + placed.shipping_cents,
        currency: placed.currency.clone(),
        shipping_address: placed.shipping_address.clone(),
        payment_reference: placed.payment_reference.clone(),
        checkout_id: placed.checkout_id.clone(),
        history: vec![(OrderStatus::Placed, first.at_ms)],
    };
    for event in rest {
        view.status = event.kind.status();
        view.history.push((view.status, event.at_ms));
    }
    Some(view)
}

/// Which statuses may follow which. `refunded` only follows `cancelled` (the undo).
fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (Placed, Paid)
            | (Paid, Shipped)
            | (Shipped, Delivered)
            | (Placed | Paid, Cancelled)
            | (Cancelled, Refunded)
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Create the order; placing it again with the same checkout answers it unchanged.
    Place(Box<NewOrder>),
    /// Create the order already paid (the checkout captured before placing it): `placed`
    /// and `paid` in one write. Placing it again with the same checkout answers it as it
    /// stands (paying a `placed` one, so a half-done placement of any version completes).
    PlacePaid(Box<NewOrder>),
    Get,
    /// The payment was captured. Idempotent.
    MarkPaid,
    Ship,
    Deliver,
    /// Cancel before shipping, return stock and money. `reason` goes into the event.
    Cancel {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderRejection {
    #[error("order not found")]
    NotFound,
    #[error("an order that is {from} cannot become {to}", from = from.as_str(), to = to.as_str())]
    InvalidTransition { from: OrderStatus, to: OrderStatus },
    #[error("order {0} already exists")]
    AlreadyExists(String),
}

pub type OrderReply = Result<OrderView, OrderRejection>;

/// The order actor kind, with the ports a cancellation needs and the experiments its
/// funnel events report.
pub struct OrderActor {
    payments: PaymentProvider,
    payment_timeout: Duration,
    experiments: Experiments,
}

impl OrderActor {
    pub fn new(
        payments: PaymentProvider,
        payment_timeout: Duration,
        experiments: Experiments,
    ) -> Self {
        Self {
            payments,
            payment_timeout,
            experiments,
        }
    }
}

impl VirtualActor for OrderActor {
    const KIND: &'static str = "order";
    type State = OrderState;
    type Command = OrderCommand;
    type Reply = OrderReply;

    fn is_read(command: &OrderCommand) -> bool {
        matches!(command, OrderCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: OrderCommand,
    ) -> Result<OrderReply, RuntimeError> {
        match command {
            OrderCommand::Place(new) => return place(turn, new, &self.experiments),
            OrderCommand::PlacePaid(new) => return place_paid(turn, new, &self.experiments),
            _ => {}
        }
        let Some(current) = fold(turn.key(), &turn.state().events) else {
            return Ok(Err(OrderRejection::NotFound));
        };
        match command {
            OrderCommand::Place(_) | OrderCommand::PlacePaid(_) | OrderCommand::Get => {
                Ok(Ok(current))
            }
            OrderCommand::MarkPaid => {
                if current.has_been(OrderStatus::Paid) {
                    return Ok(Ok(current));
                }
                transition(turn, &current, OrderEventKind::Paid, &self.experiments)
            }
            OrderCommand::Ship => {
                let shipped =
                    transition(turn, &current, OrderEventKind::Shipped, &self.experiments)?;
                if shipped.is_ok() {
                    // Shipped orders are never returned to stock: the SKUs may forget them.
                    for line in &current.items {
                        let _ = turn
                            .runtime()
                            .actor::<InventoryActor>(line.sku.as_str())
                            .tell(StockCommand::Settle {
                                reservation: current.checkout_id.clone(),
                            });
                    }
                }
                Ok(shipped)
            }
            OrderCommand::Deliver => {
                transition(turn, &current, OrderEventKind::Delivered, &self.experiments)
            }
            OrderCommand::Cancel { reason } => {
                let cancelled = transition(
                    turn,
                    &current,
                    OrderEventKind::Cancelled { reason },
                    &self.experiments,
                )?;
                if cancelled.is_err() {
                    return Ok(cancelled);
                }
                turn.state_mut().undo = Some(PendingUndo {
                    stock: true,
                    money: true,
                });
                let retry_at = turn.now_ms() + UNDO_RETRY_MS;
                turn.set_reminder(UNDO_REMINDER, retry_at);
                // The cancellation is durable before anything is given back.
                turn.commit().await?;
                self.undo(turn).await?;
                Ok(Ok(view(turn)?))
            }
        }
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        if name == UNDO_REMINDER && turn.state().undo.is_some() {
            let retry_at = turn.now_ms() + UNDO_RETRY_MS;
            turn.set_reminder(UNDO_REMINDER, retry_at);
            self.undo(turn).await?;
        }
        Ok(())
    }
}

impl OrderActor {
    /// Give back what a cancellation owes; what fails stays owed for the reminder.
    async fn undo(&self, turn: &mut Turn<Self>) -> Result<(), RuntimeError> {
        let Some(order) = fold(turn.key(), &turn.state().events) else {
            return Ok(());
        };
        let Some(mut pending) = turn.state().undo.clone() else {
            return Ok(());
        };
        if pending.stock {
            let mut all = true;
            for line in &order.items {
                let reply = turn
                    .runtime()
                    .actor::<InventoryActor>(line.sku.as_str())
                    .ask(StockCommand::Release {
                        reservation: order.checkout_id.clone(),
                    })
                    .await;
                if !matches!(reply, Ok(StockReply::Reservation(_))) {
                    all = false;
                }
            }
            pending.stock = !all;
        }
        let mut refunded = None;
        if pending.money {
            match self.return_money(turn, &order).await {
                Ok(amount) => {
                    pending.money = false;
                    refunded = amount;
                }
                Err(error) => {
                    tracing::warn!(order = %order.id, %error, "refund not done yet; will retry");
                }
            }
        }
        if let Some(amount_cents) = refunded
            && !order.has_been(OrderStatus::Refunded)
        {
            append(
                turn,
                OrderEventKind::Refunded { amount_cents },
                &self.experiments,
            )?;
        }
        if pending.stock || pending.money {
            turn.state_mut().undo = Some(pending);
        } else {
            turn.state_mut().undo = None;
            turn.cancel_reminder(UNDO_REMINDER);
        }
        Ok(())
    }

    /// Void what is only authorized; refund what was captured. `Some(amount)` when money
    /// went back to the card.
    async fn return_money(
        &self,
        turn: &Turn<Self>,
        order: &OrderView,
    ) -> Result<Option<i64>, PaymentError> {
        let gateway = self.payments.gateway(turn.runtime());
        let deadline = self.payment_timeout;
        if !order.has_been(OrderStatus::Paid) {
            match within(deadline, gateway.void(&order.checkout_id)).await {
                Ok(_) => return Ok(None),
                // Captured meanwhile (a checkout rolling forward): refund instead.
                Err(PaymentError::Refused(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let key = format!("refund:{}", order.id);
        let record = within(
            deadline,
            gateway.refund(&order.payment_reference, order.total_cents, &key),
        )
        .await?;
        Ok(Some(record.refunded_cents.min(order.total_cents)))
    }
}

fn place(
    turn: &mut Turn<OrderActor>,
    new: Box<NewOrder>,
    experiments: &Experiments,
) -> Result<OrderReply, RuntimeError> {
    if let Some(existing) = fold(turn.key(), &turn.state().events) {
        return Ok(if existing.checkout_id == new.checkout_id {
            Ok(existing)
        } else {
            Err(OrderRejection::AlreadyExists(turn.key().to_owned()))
        });
    }
    append(turn, OrderEventKind::Placed(new), experiments)?;
    Ok(Ok(view(turn)?))
}

/// [`OrderCommand::PlacePaid`]: the history starts `placed`, `paid`, in one commit.
fn place_paid(
    turn: &mut Turn<OrderActor>,
    new: Box<NewOrder>,
    experiments: &Experiments,
) -> Result<OrderReply, RuntimeError> {
    if let Some(existing) = fold(turn.key(), &turn.state().events) {
        if existing.checkout_id != new.checkout_id {
            return Ok(Err(OrderRejection::AlreadyExists(turn.key().to_owned())));
        }
        if existing.status == OrderStatus::Placed {
            return transition(turn, &existing, OrderEventKind::Paid, experiments);
        }
        return Ok(Ok(existing));
    }
    append(turn, OrderEventKind::Placed(new), experiments)?;
    append(turn, OrderEventKind::Paid, experiments)?;
    Ok(Ok(view(turn)?))
}

fn transition(
    turn: &mut Turn<OrderActor>,
    current: &OrderView,
    event: OrderEventKind,
    experiments: &Experiments,
) -> Result<OrderReply, RuntimeError> {
    let to = event.status();
    if !allowed(current.status, to) {
        return Ok(Err(OrderRejection::InvalidTransition {
            from: current.status,
            to,
        }));
    }
    append(turn, event, experiments)?;
    Ok(Ok(view(turn)?))
}

/// Append an event to the history and raise it.
fn append(
    turn: &mut Turn<OrderActor>,
    kind: OrderEventKind,
    experiments: &Experiments,
) -> Result<(), RuntimeError> {
    let at_ms = turn.now_ms();
    let event = domain_event(turn.key(), &turn.state().events, &kind, experiments);
    turn.state_mut().events.push(OrderEvent { at_ms, kind });
    match event {
        Some(event) => turn.emit(event),
        None => Err(RuntimeError::CorruptState {
            actor: turn.id().clone(),
            reason: "an order history must start with placed".to_owned(),
        }),
    }
}

/// The domain event `kind` raises on the order whose history so far is `history`; `None`
/// when the history does not start with `placed` (and `kind` is not it).
fn domain_event(
    order_id: &str,
    history: &[OrderEvent],
    kind: &OrderEventKind,
    experiments: &Experiments,
) -> Option<DomainEvent> {
    let placed = match (kind, history.first().map(|first| &first.kind)) {
        (OrderEventKind::Placed(placed), _) | (_, Some(OrderEventKind::Placed(placed))) => placed,
        _ => return None,
    };
    let order_id = order_id.to_owned();
    let user_id = placed.user_id.clone();
    let currency = placed.currency.as_str().to_owned();
    let total_cents = placed.subtotal_cents + placed.shipping_cents;
    Some(match kind {
        OrderEventKind::Placed(placed) => DomainEvent::OrderPlaced {
            order_id,
            user_id,
            lines: placed.items.iter().map(EventLine::from).collect(),
            subtotal_cents: placed.subtotal_cents,
            shipping_cents: placed.shipping_cents,
            total_cents,
            currency,
            variants: experiments.variants_for(&placed.user_id),
        },
        OrderEventKind::Paid => DomainEvent::OrderPaid {
            variants: experiments.variants_for(&user_id),
            order_id,
            user_id,
            total_cents,
            currency,
        },
        OrderEventKind::Shipped => DomainEvent::OrderShipped { order_id, user_id },
        OrderEventKind::Delivered => DomainEvent::OrderDelivered { order_id, user_id },
        OrderEventKind::Cancelled { reason } => DomainEvent::OrderCancelled {
            order_id,
            user_id,
            reason: reason.clone(),
        },
        OrderEventKind::Refunded { amount_cents } => DomainEvent::OrderRefunded {
            order_id,
            user_id,
            amount_cents: *amount_cents,
            currency,
        },
    })
}

fn view(turn: &Turn<OrderActor>) -> Result<OrderView, RuntimeError> {
    fold(turn.key(), &turn.state().events).ok_or_else(|| RuntimeError::CorruptState {
        actor: turn.id().clone(),
        reason: "an order history must start with placed".to_owned(),
    })
}

/// A user's orders, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOrdersState {
    pub orders: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserOrdersCommand {
    /// Idempotent.
    Add {
        order_id: String,
    },
    List,
}

/// The index of a user's orders (kind `user-orders`, keyed by user id).
pub struct UserOrdersActor;

impl VirtualActor for UserOrdersActor {
    const KIND: &'static str = "user-orders";
    type State = UserOrdersState;
    type Command = UserOrdersCommand;
    type Reply = Vec<String>;

    fn is_read(command: &UserOrdersCommand) -> bool {
        matches!(command, UserOrdersCommand::List)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: UserOrdersCommand,
    ) -> Result<Vec<String>, RuntimeError> {
        if let UserOrdersCommand::Add { order_id } = command
            && !turn.state().orders.contains(&order_id)
        {
            turn.state_mut().orders.push(order_id);
        }
        Ok(turn.state().orders.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use emporium_runtime::store::MemoryStore;
    use emporium_runtime::{ActorHandle, ManualClock, Runtime, StateStore};

    use super::*;
    use crate::inventory::{StockView, WarehouseId};
    use crate::payment::{AuthorizeRequest, PaymentGateway, TestGateway};
    use crate::shipping::Country;
    use crate::values::Sku;

    const START_MS: u64 = 1_700_000_000_000;

    async fn runtime() -> (Runtime, Arc<ManualClock>, Arc<dyn StateStore>) {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(START_MS));
        let runtime = crate::register(Runtime::builder(store.clone()).clock(clock.clone()))
            .build()
            .await
            .unwrap();
        (runtime, clock, store)
    }

    fn new_order(checkout_id: &str) -> NewOrder {
        NewOrder {
            user_id: "u-1".to_owned(),
            checkout_id: checkout_id.to_owned(),
            items: vec![CartLine {
                sku: Sku::parse("SKU-1").unwrap(),
                quantity: 2,
                unit_price_cents: 1_000,
            }],
            subtotal_cents: 2_000,
            shipping_cents: 500,
            currency: Currency::default(),
            shipping_address: ShippingAddress {
                name: "Ada".to_owned(),
                line1: "1 Main St".to_owned(),
                city: "Springfield".to_owned(),
                postal_code: "12345".to_owned(),
                country: Country::parse("US").unwrap(),
            },
            payment_reference: format!("pay_{checkout_id}"),
        }
    }

    async fn ask(order: &ActorHandle<OrderActor>, command: OrderCommand) -> OrderReply {
        order.ask(command).await.unwrap()
    }

    fn status(reply: &OrderReply) -> OrderStatus {
        reply.as_ref().expect("accepted").status
    }

    fn refused(reply: &OrderReply, from: OrderStatus, to: OrderStatus) {
        assert_eq!(
            reply,
            &Err(OrderRejection::InvalidTransition { from, to }),
            "{reply:?}"
        );
    }

    #[tokio::test]
    async fn the_happy_life_of_an_order_and_its_history() {
        let (runtime, clock, store) = runtime().await;
        let order = runtime.actor::<OrderActor>("o-1");
        assert_eq!(
            ask(&order, OrderCommand::Get).await,
            Err(OrderRejection::NotFound)
        );
        let placed = ask(&order, OrderCommand::Place(Box::new(new_order("c-1"))))
            .await
            .unwrap();
        assert_eq!(placed.status, OrderStatus::Placed);
        assert_eq!(placed.total_cents, 2_500, "totals include shipping");
        // Placing again with the same checkout is the same order; another checkout is not.
        assert_eq!(
            ask(&order, OrderCommand::Place(Box::new(new_order("c-1")))).await,
            Ok(placed.clone())
        );
        assert_eq!(
            ask(&order, OrderCommand::Place(Box::new(new_order("c-2")))).await,
            Err(OrderRejection::AlreadyExists("o-1".to_owned()))
        );
        refused(
            &ask(&order, OrderCommand::Ship).await,
            OrderStatus::Placed,
            OrderStatus::Shipped,
        );
        clock.advance_ms(10);
        assert_eq!(
            status(&ask(&order, OrderCommand::MarkPaid).await),
            OrderStatus::Paid
        );
        assert_eq!(
            status(&ask(&order, OrderCommand::MarkPaid).await),
            OrderStatus::Paid
        );
        refused(
            &ask(&order, OrderCommand::Deliver).await,
            OrderStatus::Paid,
            OrderStatus::Delivered,
        );
        clock.advance_ms(10);
        assert_eq!(
            status(&ask(&order, OrderCommand::Ship).await),
            OrderStatus::Shipped
        );
        refused(
            &ask(&order, OrderCommand::Ship).await,
            OrderStatus::Shipped,
            OrderStatus::Shipped,
        );
        refused(
            &ask(
                &order,
                OrderCommand::Cancel {
                    reason: "too late".to_owned(),
                },
            )
            .await,
            OrderStatus::Shipped,
            OrderStatus::Cancelled,
        );
        clock.advance_ms(10);
        let delivered = ask(&order, OrderCommand::Deliver).await.unwrap();
        assert_eq!(
            delivered.history,
            vec![
                (OrderStatus::Placed, START_MS),
                (OrderStatus::Paid, START_MS + 10),
                (OrderStatus::Shipped, START_MS + 20),
                (OrderStatus::Delivered, START_MS + 30),
            ]
        );
        // Every event went to the outbox with the history.
        let topics: Vec<String> = store
            .outbox_pending(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.actor.kind == "order")
            .map(|event| event.entry.topic)
            .collect();
        assert_eq!(
            topics,
            [
                "emporium.order.placed",
                "emporium.order.paid",
                "emporium.order.shipped",
                "emporium.order.delivered"
            ]
        );
        // The state is the history: a fresh activation folds to the same order.
        runtime.shutdown(Duration::from_secs(1)).await;
    }

    async fn stock(runtime: &Runtime) -> StockView {
        match runtime
            .actor::<InventoryActor>("SKU-1")
            .ask(StockCommand::Get)
            .await
            .unwrap()
        {
            StockReply::View(Some(view)) => view,
            _ => panic!("no stock"),
        }
    }

    /// Stock reserved and committed, payment authorized (and captured if `capture`), as a
    /// checkout leaves them.
    async fn sold(runtime: &Runtime, checkout_id: &str, capture: bool) {
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        sku.ask(StockCommand::SetStock {
            warehouse: WarehouseId::parse("main").unwrap(),
            on_hand: 10,
            low_stock_threshold: None,
        })
        .await
        .unwrap();
        for command in [
            StockCommand::Reserve {
                reservation: checkout_id.to_owned(),
                units: 2,
            },
            StockCommand::Commit {
                reservation: checkout_id.to_owned(),
            },
        ] {
            assert!(matches!(
                sku.ask(command).await.unwrap(),
                StockReply::Reservation(Ok(_))
            ));
        }
        let gateway = TestGateway::new(runtime.clone());
        gateway
            .authorize(AuthorizeRequest {
                idempotency_key: checkout_id.to_owned(),
                amount_cents: 2_500,
                currency: Currency::default(),
                token: "tok_visa".to_owned(),
            })
            .await
            .unwrap();
        if capture {
            gateway
                .capture(&format!("pay_{checkout_id}"), 2_500, "cap")
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn cancelling_a_paid_order_returns_stock_and_refunds() {
        let (runtime, _clock, _store) = runtime().await;
        sold(&runtime, "c-1", true).await;
        assert_eq!(stock(&runtime).await.on_hand, 8);
        let order = runtime.actor::<OrderActor>("o-1");
        ask(&order, OrderCommand::Place(Box::new(new_order("c-1"))))
            .await
            .unwrap();
        ask(&order, OrderCommand::MarkPaid).await.unwrap();
        let cancelled = ask(
            &order,
            OrderCommand::Cancel {
                reason: "changed my mind".to_owned(),
            },
        )
        .await
        .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Refunded);
        let statuses: Vec<_> = cancelled.history.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            statuses,
            [
                OrderStatus::Placed,
                OrderStatus::Paid,
                OrderStatus::Cancelled,
                OrderStatus::Refunded
            ]
        );
        assert_eq!(
            stock(&runtime).await.on_hand,
            10,
            "committed units are back"
        );
        let record = TestGateway::new(runtime.clone())
            .retrieve("pay_c-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.refunded_cents, 2_500);
        // Cancelling twice is an invalid transition, and gives nothing back twice.
        let again = ask(
            &order,
            OrderCommand::Cancel {
                reason: "again".to_owned(),
            },
        )
        .await;
        refused(&again, OrderStatus::Refunded, OrderStatus::Cancelled);
        assert_eq!(stock(&runtime).await.on_hand, 10);
        refused(
            &ask(&order, OrderCommand::Ship).await,
            OrderStatus::Refunded,
            OrderStatus::Shipped,
        );
    }

    #[tokio::test]
    async fn cancelling_an_unpaid_order_voids_the_authorization() {
        let (runtime, _clock, _store) = runtime().await;
        sold(&runtime, "c-2", false).await;
        let order = runtime.actor::<OrderActor>("o-2");
        ask(&order, OrderCommand::Place(Box::new(new_order("c-2"))))
            .await
            .unwrap();
        let cancelled = ask(
            &order,
            OrderCommand::Cancel {
                reason: "test".to_owned(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            cancelled.status,
            OrderStatus::Cancelled,
            "nothing to refund"
        );
        let record = TestGateway::new(runtime.clone())
            .retrieve("pay_c-2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, crate::payment::PaymentStatus::Voided);
        assert_eq!(stock(&runtime).await.on_hand, 10);
    }

    #[tokio::test]
    async fn placed_and_paid_carry_the_users_variants() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let experiments = crate::experiments::Experiments::parse("button=control,green").unwrap();
        let ports = crate::DomainPorts {
            experiments: experiments.clone(),
            ..crate::DomainPorts::default()
        };
        let runtime = crate::register_with(Runtime::builder(store.clone()), &ports)
            .build()
            .await
            .unwrap();
        let order = runtime.actor::<OrderActor>("o-1");
        ask(&order, OrderCommand::Place(Box::new(new_order("c-1"))))
            .await
            .unwrap();
        // Refused or repeated: nothing raised.
        refused(
            &ask(&order, OrderCommand::Deliver).await,
            OrderStatus::Placed,
            OrderStatus::Delivered,
        );
        ask(&order, OrderCommand::Place(Box::new(new_order("c-1"))))
            .await
            .unwrap();
        ask(&order, OrderCommand::MarkPaid).await.unwrap();
        ask(&order, OrderCommand::MarkPaid).await.unwrap();
        let variants = experiments.variants_for("u-1");
        assert_eq!(variants.len(), 1);
        let envelopes = crate::events::emitted::envelopes(store.as_ref(), "order", "o-1").await;
        let events: Vec<DomainEvent> = envelopes.iter().map(|e| e.event.clone()).collect();
        assert_eq!(
            events,
            [
                DomainEvent::OrderPlaced {
                    order_id: "o-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    lines: vec![EventLine {
                        sku: "SKU-1".to_owned(),
                        quantity: 2,
                        unit_price_cents: 1_000,
                    }],
                    subtotal_cents: 2_000,
                    shipping_cents: 500,
                    total_cents: 2_500,
                    currency: "USD".to_owned(),
                    variants: variants.clone(),
                },
                DomainEvent::OrderPaid {
                    order_id: "o-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    total_cents: 2_500,
                    currency: "USD".to_owned(),
                    variants,
                },
            ]
        );
        assert_eq!(envelopes[0].version, 1);
        assert_eq!(envelopes[1].version, 2);
        assert_eq!(envelopes[1].source.kind, "order");
    }

    #[tokio::test]
    async fn user_orders_index_is_idempotent() {
        let (runtime, _clock, _store) = runtime().await;
        let index = runtime.actor::<UserOrdersActor>("u-1");
        for id in ["a", "b", "a"] {
            index
                .ask(UserOrdersCommand::Add {
                    order_id: id.to_owned(),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            index.ask(UserOrdersCommand::List).await.unwrap(),
            ["a", "b"]
        );
    }

    /// What the checkout places after its capture: one write holding `placed` and `paid`,
    /// with both events; repeating it (or paying a `placed` one) changes nothing more.
    #[tokio::test]
    async fn placing_a_paid_order_is_one_write_with_both_events() {
        let (runtime, _clock, store) = runtime().await;
        let order = runtime.actor::<OrderActor>("o-1");
        let placed = ask(&order, OrderCommand::PlacePaid(Box::new(new_order("c-1")))).await;
        assert_eq!(status(&placed), OrderStatus::Paid);
        let id = emporium_runtime::ActorId::new("order", "o-1");
        let version = || {
            let (store, id) = (store.clone(), id.clone());
            async move { store.load(&id).await.unwrap().map(|record| record.version) }
        };
        assert_eq!(version().await, Some(1), "one write");
        let again = ask(&order, OrderCommand::PlacePaid(Box::new(new_order("c-1")))).await;
        assert_eq!(again, placed);
        assert_eq!(version().await, Some(1), "a repeat writes nothing");
        assert_eq!(
            ask(&order, OrderCommand::PlacePaid(Box::new(new_order("c-2")))).await,
            Err(OrderRejection::AlreadyExists("o-1".to_owned()))
        );
        let events = crate::events::emitted::events(store.as_ref(), "order", "o-1").await;
        assert!(
            matches!(
                events.as_slice(),
                [
                    DomainEvent::OrderPlaced { .. },
                    DomainEvent::OrderPaid { .. }
                ]
            ),
            "{events:?}"
        );

        // An order placed unpaid (by an earlier version) is paid by it.
        let older = runtime.actor::<OrderActor>("o-2");
        ask(&older, OrderCommand::Place(Box::new(new_order("c-9"))))
            .await
            .unwrap();
        let paid = ask(&older, OrderCommand::PlacePaid(Box::new(new_order("c-9")))).await;
        assert_eq!(status(&paid), OrderStatus::Paid);
    }
}
