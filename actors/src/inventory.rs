//! Inventory: one actor per SKU (kind `inventory`, keyed by the SKU) holding its stock in
//! every warehouse, the reservations made against it, and its low-stock alerts.
//!
//! # Stock
//! Per warehouse, `on_hand` units are physically there and `reserved` of them are held by
//! live reservations; `available = on_hand - reserved`, summed over warehouses, is what a
//! checkout may still reserve. An admin sets `on_hand` per warehouse; setting it below what
//! is reserved there is refused ([`StockRejection::BelowReserved`]).
//!
//! # Reservations
//! A checkout reserves units under a reservation id (the checkout's id), then either
//! *commits* them (they leave `on_hand` and `reserved`: sold) or *releases* them. Every
//! command is idempotent by reservation id: a retried reserve, commit or release answers
//! like the first. A held reservation expires after the kind's TTL: one durable reminder
//! (`expire`, due at the earliest expiry) releases every reservation past its time, also
//! after a restart and while the actor is passivated.
//!
//! **Never oversell**: the check of `available` and the reservation happen in one turn, and
//! turns of one SKU run one at a time.
//!
//! Units are allocated across warehouses greedily, the warehouse with the most available
//! units first (ties by warehouse id), so a reservation may span warehouses.
//!
//! # Memory of finished reservations
//! Released, expired and restocked reservations are remembered for
//! [`FINISHED_RETENTION_MS`] (at most [`MAX_FINISHED`] of them) so that late retries stay
//! idempotent; committed ones are kept until they are returned ([`StockCommand::Release`]
//! on a cancelled order) or settled ([`StockCommand::Settle`], sent when the order ships),
//! at most [`COMMITTED_RETENTION_MS`].
//!
//! # Events
//! Raised in the commit of the change they report.
//! - `StockChanged { sku, on_hand, available }` when a turn changes `on_hand` (summed over
//!   warehouses): a `SetStock` to another value, the commit of a reservation (units sold),
//!   the release of a committed reservation (units back on the shelf). `available` is the
//!   value after that turn. Holds and their releases or expiries change only `available`
//!   and raise nothing: they are many per sale and undone within the reservation TTL, so a
//!   consumer wanting live availability would be flooded with noise; what a shopper can
//!   still buy is asked of the actor. A `SetStock` to the same value raises nothing.
//! - `StockLow { sku, available, threshold }` when `available` falls below the threshold
//!   (once, until it rises back to it), after the `StockChanged` of the same turn.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use crate::events::DomainEvent;
use crate::values::InvalidValue;

/// Low-stock threshold of a SKU whose admin never set one.
pub const DEFAULT_LOW_STOCK_THRESHOLD: u64 = 5;
/// Most low-stock alerts one SKU remembers (the oldest go first).
pub const MAX_ALERTS: usize = 20;
/// Largest `on_hand` (and threshold) accepted for one warehouse.
pub const MAX_UNITS: u64 = 1_000_000_000;
/// How long a released, expired or restocked reservation is remembered.
pub const FINISHED_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// Most finished reservations remembered per SKU.
pub const MAX_FINISHED: usize = 2_000;
/// How long a committed reservation is kept when no one settles or returns it.
pub const COMMITTED_RETENTION_MS: u64 = 90 * 24 * 3600 * 1000;
/// The reminder that expires held reservations.
const EXPIRE_REMINDER: &str = "expire";

/// A warehouse id: 1 to 64 characters of letters, digits, `-`, `_` or `.`.
///
/// On the wire a string, checked again when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WarehouseId(String);

crate::values::string_value_serde!(WarehouseId);

impl WarehouseId {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue {
                field: "warehouse",
                expected: "1 to 64 characters of letters, digits, '-', '_' or '.'".to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WarehouseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One warehouse's stock of the SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseStock {
    pub on_hand: u64,
    pub reserved: u64,
}

impl WarehouseStock {
    fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// Units of one reservation taken from one warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub warehouse: WarehouseId,
    pub units: u64,
}

/// Where a reservation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ReservationStatus {
    /// Units held until `expires_at_ms`.
    Held { expires_at_ms: u64 },
    /// Units sold: they left `on_hand`.
    Committed,
    /// Given back before commit (or never taken: a release that came first).
    Released,
    /// Given back by the expiry reminder.
    Expired,
    /// Committed, then returned to `on_hand` (the order was cancelled).
    Restocked,
}

impl ReservationStatus {
    fn is_finished(self) -> bool {
        matches!(self, Self::Released | Self::Expired | Self::Restocked)
    }
}

/// One reservation as the SKU remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub units: u64,
    pub allocations: Vec<Allocation>,
    #[serde(flatten)]
    pub status: ReservationStatus,
    /// When the status last changed (Unix ms).
    pub updated_at_ms: u64,
}

/// A low-stock alert: available fell below the threshold at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStockAlert {
    pub at_ms: u64,
    pub available: u64,
}

/// The stored state of one SKU's inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockState {
    /// Whether an admin ever set stock for this SKU.
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub warehouses: BTreeMap<WarehouseId, WarehouseStock>,
    /// `None`: [`DEFAULT_LOW_STOCK_THRESHOLD`].
    #[serde(default)]
    pub low_stock_threshold: Option<u64>,
    /// Available is below the threshold now.
    #[serde(default)]
    pub low_stock: bool,
    #[serde(default)]
    pub alerts: VecDeque<LowStockAlert>,
    #[serde(default)]
    pub reservations: BTreeMap<String, Reservation>,
}

impl StockState {
    fn on_hand(&self) -> u64 {
        self.warehouses.values().map(|stock| stock.on_hand).sum()
    }

    fn reserved(&self) -> u64 {
        self.warehouses.values().map(|stock| stock.reserved).sum()
    }

    fn available(&self) -> u64 {
        self.warehouses
            .values()
            .map(WarehouseStock::available)
            .sum()
    }

    fn threshold(&self) -> u64 {
        self.low_stock_threshold
            .unwrap_or(DEFAULT_LOW_STOCK_THRESHOLD)
    }

    /// Take `units` from the warehouses with the most available first; `None` when there
    /// are not enough (nothing changes then).
    fn allocate(&mut self, units: u64) -> Option<Vec<Allocation>> {
        if self.available() < units {
            return None;
        }
        let mut order: Vec<(&WarehouseId, u64)> = self
            .warehouses
            .iter()
            .map(|(id, stock)| (id, stock.available()))
            .filter(|(_, available)| *available > 0)
            .collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut left = units;
        let mut allocations = Vec::new();
        for (warehouse, available) in order {
            if left == 0 {
                break;
            }
            let take = available.min(left);
            allocations.push(Allocation {
                warehouse: warehouse.clone(),
                units: take,
            });
            left -= take;
        }
        for allocation in &allocations {
            if let Some(stock) = self.warehouses.get_mut(&allocation.warehouse) {
                stock.reserved += allocation.units;
            }
        }
        Some(allocations)
    }

    /// Give held units back to `available`.
    fn unreserve(&mut self, allocations: &[Allocation]) {
        for allocation in allocations {
            if let Some(stock) = self.warehouses.get_mut(&allocation.warehouse) {
                stock.reserved = stock.reserved.saturating_sub(allocation.units);
            }
        }
    }

    /// Held units leave the warehouse: sold.
    fn ship_out(&mut self, allocations: &[Allocation]) {
        for allocation in allocations {
            if let Some(stock) = self.warehouses.get_mut(&allocation.warehouse) {
                stock.reserved = stock.reserved.saturating_sub(allocation.units);
                stock.on_hand = stock.on_hand.saturating_sub(allocation.units);
            }
        }
    }

    /// Sold units come back to `on_hand`.
    fn restock(&mut self, allocations: &[Allocation]) {
        for allocation in allocations {
            let stock = self
                .warehouses
                .entry(allocation.warehouse.clone())
                .or_default();
            stock.on_hand = stock.on_hand.saturating_add(allocation.units);
        }
    }

    fn next_expiry(&self) -> Option<u64> {
        self.reservations
            .values()
            .filter_map(|reservation| match reservation.status {
                ReservationStatus::Held { expires_at_ms } => Some(expires_at_ms),
                _ => None,
            })
            .min()
    }
}

/// What callers see of a SKU's stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub sku: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub warehouses: Vec<(WarehouseId, WarehouseStock)>,
    pub low_stock_threshold: u64,
    pub low_stock: bool,
    pub alerts: Vec<LowStockAlert>,
}

/// A reservation as its holder sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReceipt {
    pub reservation: String,
    pub units: u64,
    pub allocations: Vec<Allocation>,
    pub status: ReservationStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockCommand {
    /// `None` when no stock was ever set for the SKU.
    Get,
    /// Set `on_hand` in one warehouse (and, if given, the SKU's low-stock threshold).
    SetStock {
        warehouse: WarehouseId,
        on_hand: u64,
        low_stock_threshold: Option<u64>,
    },
    /// Hold `units` under `reservation` until the TTL passes.
    Reserve { reservation: String, units: u64 },
    /// Sell the held units. A reservation that expired meanwhile is committed anyway if
    /// the units are still available (else [`StockRejection::Insufficient`]).
    Commit { reservation: String },
    /// Undo a reservation: held units go back to available, committed units back to
    /// `on_hand`. Releasing an unknown id leaves a tombstone, so a late reserve with that
    /// id is refused instead of holding stock nobody will commit.
    Release { reservation: String },
    /// Forget a committed reservation (its order shipped: it will never be returned).
    Settle { reservation: String },
}

/// Why a SKU refused a command. These are answers, not failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StockRejection {
    #[error("only {available} of {requested} units of {sku} are available")]
    Insufficient {
        sku: String,
        requested: u64,
        available: u64,
    },
    #[error(
        "warehouse {warehouse} has {reserved} units of {sku} reserved: on_hand cannot go below that"
    )]
    BelowReserved {
        sku: String,
        warehouse: WarehouseId,
        reserved: u64,
    },
    #[error("at most {max} units")]
    TooMany { max: u64 },
    #[error("reservation {reservation} of {sku} is already {status:?}")]
    Closed {
        sku: String,
        reservation: String,
        status: ReservationStatus,
    },
    #[error("no reservation {reservation} for {sku}")]
    UnknownReservation { sku: String, reservation: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockReply {
    View(Option<StockView>),
    Reservation(Result<ReservationReceipt, StockRejection>),
    Set(Result<StockView, StockRejection>),
}

/// The inventory actor kind; the TTL applies to every reservation.
pub struct InventoryActor {
    reservation_ttl: Duration,
}

impl InventoryActor {
    pub fn new(reservation_ttl: Duration) -> Self {
        Self { reservation_ttl }
    }
}

impl VirtualActor for InventoryActor {
    const KIND: &'static str = "inventory";
    type State = StockState;
    type Command = StockCommand;
    type Reply = StockReply;

    fn is_read(command: &StockCommand) -> bool {
        matches!(command, StockCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: StockCommand,
    ) -> Result<StockReply, RuntimeError> {
        let reply = match command {
            StockCommand::Get => StockReply::View(turn.state().created.then(|| view(turn))),
            StockCommand::SetStock {
                warehouse,
                on_hand,
                low_stock_threshold,
            } => StockReply::Set(set_stock(turn, warehouse, on_hand, low_stock_threshold)?),
            StockCommand::Reserve { reservation, units } => {
                let ttl_ms = u64::try_from(self.reservation_ttl.as_millis()).unwrap_or(u64::MAX);
                StockReply::Reservation(reserve(turn, reservation, units, ttl_ms)?)
            }
            StockCommand::Commit { reservation } => {
                StockReply::Reservation(commit(turn, reservation)?)
            }
            StockCommand::Release { reservation } => {
                StockReply::Reservation(release(turn, reservation)?)
            }
            StockCommand::Settle { reservation } => {
                StockReply::Reservation(settle(turn, reservation))
            }
        };
        Ok(reply)
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        if name != EXPIRE_REMINDER {
            return Ok(());
        }
        let now_ms = turn.now_ms();
        let due: Vec<String> = turn
            .state()
            .reservations
            .iter()
            .filter(|(_, reservation)| {
                matches!(reservation.status, ReservationStatus::Held { expires_at_ms } if expires_at_ms <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !due.is_empty() {
            let on_hand_before = turn.state().on_hand();
            let state = turn.state_mut();
            for id in &due {
                if let Some(mut reservation) = state.reservations.remove(id) {
                    state.unreserve(&reservation.allocations);
                    reservation.status = ReservationStatus::Expired;
                    reservation.updated_at_ms = now_ms;
                    state.reservations.insert(id.clone(), reservation);
                }
            }
            tracing::info!(
                sku = turn.key(),
                expired = due.len(),
                "reservations expired"
            );
            after_change(turn, on_hand_before)?;
        } else {
            rearm_expiry(turn);
        }
        Ok(())
    }
}

fn sku(turn: &Turn<InventoryActor>) -> String {
    turn.key().to_owned()
}

fn set_stock(
    turn: &mut Turn<InventoryActor>,
    warehouse: WarehouseId,
    on_hand: u64,
    low_stock_threshold: Option<u64>,
) -> Result<Result<StockView, StockRejection>, RuntimeError> {
    if on_hand > MAX_UNITS || low_stock_threshold.is_some_and(|t| t > MAX_UNITS) {
        return Ok(Err(StockRejection::TooMany { max: MAX_UNITS }));
    }
    let reserved = turn
        .state()
        .warehouses
        .get(&warehouse)
        .map_or(0, |stock| stock.reserved);
    if on_hand < reserved {
        return Ok(Err(StockRejection::BelowReserved {
            sku: sku(turn),
            warehouse,
            reserved,
        }));
    }
    let on_hand_before = turn.state().on_hand();
    let state = turn.state_mut();
    state.created = true;
    state.warehouses.entry(warehouse).or_default().on_hand = on_hand;
    if low_stock_threshold.is_some() {
        state.low_stock_threshold = low_stock_threshold;
    }
    after_change(turn, on_hand_before)?;
    Ok(Ok(view(turn)))
}

fn receipt(id: &str, reservation: &Reservation) -> ReservationReceipt {
    ReservationReceipt {
        reservation: id.to_owned(),
        units: reservation.units,
        allocations: reservation.allocations.clone(),
        status: reservation.status,
    }
}

fn reserve(
    turn: &mut Turn<InventoryActor>,
    id: String,
    units: u64,
    ttl_ms: u64,
) -> Result<Result<ReservationReceipt, StockRejection>, RuntimeError> {
    if let Some(existing) = turn.state().reservations.get(&id) {
        return Ok(match existing.status {
            ReservationStatus::Held { .. } | ReservationStatus::Committed => {
                Ok(receipt(&id, existing))
            }
            status => Err(StockRejection::Closed {
                sku: sku(turn),
                reservation: id,
                status,
            }),
        });
    }
    let available = turn.state().available();
    if available < units || units > MAX_UNITS {
        return Ok(Err(StockRejection::Insufficient {
            sku: sku(turn),
            requested: units,
            available,
        }));
    }
    let now_ms = turn.now_ms();
    let expires_at_ms = now_ms.saturating_add(ttl_ms);
    let on_hand_before = turn.state().on_hand();
    let state = turn.state_mut();
    let Some(allocations) = state.allocate(units) else {
        return Ok(Err(StockRejection::Insufficient {
            sku: sku(turn),
            requested: units,
            available,
        }));
    };
    let reservation = Reservation {
        units,
        allocations,
        status: ReservationStatus::Held { expires_at_ms },
        updated_at_ms: now_ms,
    };
    let answer = receipt(&id, &reservation);
    state.reservations.insert(id, reservation);
    after_change(turn, on_hand_before)?;
    Ok(Ok(answer))
}

fn commit(
    turn: &mut Turn<InventoryActor>,
    id: String,
) -> Result<Result<ReservationReceipt, StockRejection>, RuntimeError> {
    let Some(existing) = turn.state().reservations.get(&id).cloned() else {
        return Ok(Err(StockRejection::UnknownReservation {
            sku: sku(turn),
            reservation: id,
        }));
    };
    let now_ms = turn.now_ms();
    let on_hand_before = turn.state().on_hand();
    match existing.status {
        ReservationStatus::Committed => Ok(Ok(receipt(&id, &existing))),
        ReservationStatus::Held { .. } => {
            let state = turn.state_mut();
            state.ship_out(&existing.allocations);
            let reservation = Reservation {
                status: ReservationStatus::Committed,
                updated_at_ms: now_ms,
                ..existing
            };
            let answer = receipt(&id, &reservation);
            state.reservations.insert(id, reservation);
            after_change(turn, on_hand_before)?;
            Ok(Ok(answer))
        }
        ReservationStatus::Expired => {
            // Expired while its checkout was slow: sell it anyway if the units are there.
            let available = turn.state().available();
            let state = turn.state_mut();
            let Some(allocations) = state.allocate(existing.units) else {
                return Ok(Err(StockRejection::Insufficient {
                    sku: sku(turn),
                    requested: existing.units,
                    available,
                }));
            };
            state.ship_out(&allocations);
            let reservation = Reservation {
                units: existing.units,
                allocations,
                status: ReservationStatus::Committed,
                updated_at_ms: now_ms,
            };
            let answer = receipt(&id, &reservation);
            state.reservations.insert(id, reservation);
            after_change(turn, on_hand_before)?;
            Ok(Ok(answer))
        }
        status => Ok(Err(StockRejection::Closed {
            sku: sku(turn),
            reservation: id,
            status,
        })),
    }
}

fn release(
    turn: &mut Turn<InventoryActor>,
    id: String,
) -> Result<Result<ReservationReceipt, StockRejection>, RuntimeError> {
    let now_ms = turn.now_ms();
    let on_hand_before = turn.state().on_hand();
    let existing = turn.state().reservations.get(&id).cloned();
    let Some(existing) = existing else {
        let tombstone = Reservation {
            units: 0,
            allocations: Vec::new(),
            status: ReservationStatus::Released,
            updated_at_ms: now_ms,
        };
        let answer = receipt(&id, &tombstone);
        turn.state_mut().reservations.insert(id, tombstone);
        after_change(turn, on_hand_before)?;
        return Ok(Ok(answer));
    };
    let status = match existing.status {
        ReservationStatus::Held { .. } => {
            turn.state_mut().unreserve(&existing.allocations);
            ReservationStatus::Released
        }
        ReservationStatus::Committed => {
            turn.state_mut().restock(&existing.allocations);
            ReservationStatus::Restocked
        }
        _ => return Ok(Ok(receipt(&id, &existing))),
    };
    let reservation = Reservation {
        status,
        updated_at_ms: now_ms,
        ..existing
    };
    let answer = receipt(&id, &reservation);
    turn.state_mut().reservations.insert(id, reservation);
    after_change(turn, on_hand_before)?;
    Ok(Ok(answer))
}

fn settle(
    turn: &mut Turn<InventoryActor>,
    id: String,
) -> Result<ReservationReceipt, StockRejection> {
    match turn.state().reservations.get(&id) {
        Some(reservation) if reservation.status == ReservationStatus::Committed => {
            let answer = receipt(&id, reservation);
            turn.state_mut().reservations.remove(&id);
            Ok(answer)
        }
        Some(reservation) => Ok(receipt(&id, reservation)),
        None => Err(StockRejection::UnknownReservation {
            sku: sku(turn),
            reservation: id,
        }),
    }
}

/// After any change of stock (`on_hand` was `on_hand_before` when the turn began): its
/// events, low-stock alerts, pruning, the expiry reminder.
fn after_change(turn: &mut Turn<InventoryActor>, on_hand_before: u64) -> Result<(), RuntimeError> {
    let now_ms = turn.now_ms();
    let available = turn.state().available();
    let on_hand = turn.state().on_hand();
    if on_hand != on_hand_before {
        let sku = turn.key().to_owned();
        turn.emit(DomainEvent::StockChanged {
            sku,
            on_hand,
            available,
        })?;
    }
    let below = available < turn.state().threshold();
    if below && !turn.state().low_stock {
        let state = turn.state_mut();
        state.low_stock = true;
        state.alerts.push_back(LowStockAlert {
            at_ms: now_ms,
            available,
        });
        while state.alerts.len() > MAX_ALERTS {
            state.alerts.pop_front();
        }
        let threshold = state.threshold();
        let sku = turn.key().to_owned();
        turn.emit(DomainEvent::StockLow {
            sku,
            available,
            threshold,
        })?;
    } else if !below && turn.state().low_stock {
        turn.state_mut().low_stock = false;
    }
    prune(turn.state_mut(), now_ms);
    rearm_expiry(turn);
    Ok(())
}

fn prune(state: &mut StockState, now_ms: u64) {
    state.reservations.retain(|_, reservation| {
        let age = now_ms.saturating_sub(reservation.updated_at_ms);
        match reservation.status {
            ReservationStatus::Held { .. } => true,
            ReservationStatus::Committed => age < COMMITTED_RETENTION_MS,
            _ => age < FINISHED_RETENTION_MS,
        }
    });
    let finished = state
        .reservations
        .values()
        .filter(|reservation| reservation.status.is_finished())
        .count();
    if finished > MAX_FINISHED {
        let mut by_age: Vec<(u64, String)> = state
            .reservations
            .iter()
            .filter(|(_, reservation)| reservation.status.is_finished())
            .map(|(id, reservation)| (reservation.updated_at_ms, id.clone()))
            .collect();
        by_age.sort();
        for (_, id) in by_age.into_iter().take(finished - MAX_FINISHED) {
            state.reservations.remove(&id);
        }
    }
}

/// Keep the `expire` reminder at the earliest held expiry (or none).
fn rearm_expiry(turn: &mut Turn<InventoryActor>) {
    match turn.state().next_expiry() {
        Some(due_at_ms) => {
            if turn.reminder(EXPIRE_REMINDER) != Some(due_at_ms) {
                turn.set_reminder(EXPIRE_REMINDER, due_at_ms);
            }
        }
        None => turn.cancel_reminder(EXPIRE_REMINDER),
    }
}

fn view(turn: &Turn<InventoryActor>) -> StockView {
    let state = turn.state();
    StockView {
        sku: turn.key().to_owned(),
        on_hand: state.on_hand(),
        reserved: state.reserved(),
        available: state.available(),
        warehouses: state
            .warehouses
            .iter()
            .map(|(id, stock)| (id.clone(), stock.clone()))
            .collect(),
        low_stock_threshold: state.threshold(),
        low_stock: state.low_stock,
        alerts: state.alerts.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use emporium_runtime::store::MemoryStore;
    use emporium_runtime::{ActorHandle, ManualClock, Runtime, StateStore};

    use super::*;

    const START_MS: u64 = 1_700_000_000_000;
    const TTL: Duration = Duration::from_secs(60);

    async fn runtime(store: Arc<dyn StateStore>, clock: Arc<ManualClock>) -> Runtime {
        Runtime::builder(store)
            .clock(clock)
            .register(InventoryActor::new(TTL))
            .build()
            .await
            .expect("runtime starts")
    }

    fn wh(id: &str) -> WarehouseId {
        WarehouseId::parse(id).unwrap()
    }

    async fn set(sku: &ActorHandle<InventoryActor>, warehouse: &str, on_hand: u64) -> StockView {
        match sku
            .ask(StockCommand::SetStock {
                warehouse: wh(warehouse),
                on_hand,
                low_stock_threshold: None,
            })
            .await
            .unwrap()
        {
            StockReply::Set(Ok(view)) => view,
            _ => panic!("set stock refused"),
        }
    }

    async fn get(sku: &ActorHandle<InventoryActor>) -> StockView {
        match sku.ask(StockCommand::Get).await.unwrap() {
            StockReply::View(Some(view)) => view,
            _ => panic!("no stock"),
        }
    }

    async fn run(
        sku: &ActorHandle<InventoryActor>,
        command: StockCommand,
    ) -> Result<ReservationReceipt, StockRejection> {
        match sku.ask(command).await.unwrap() {
            StockReply::Reservation(result) => result,
            _ => panic!("unexpected reply"),
        }
    }

    fn reserve(id: &str, units: u64) -> StockCommand {
        StockCommand::Reserve {
            reservation: id.to_owned(),
            units,
        }
    }

    fn commit(id: &str) -> StockCommand {
        StockCommand::Commit {
            reservation: id.to_owned(),
        }
    }

    fn release(id: &str) -> StockCommand {
        StockCommand::Release {
            reservation: id.to_owned(),
        }
    }

    fn setup() -> (Arc<dyn StateStore>, Arc<ManualClock>) {
        (
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(START_MS)),
        )
    }

    #[tokio::test]
    async fn unknown_skus_have_no_stock_record() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("NOPE");
        assert!(matches!(
            sku.ask(StockCommand::Get).await.unwrap(),
            StockReply::View(None)
        ));
    }

    #[tokio::test]
    async fn reserve_commit_release_move_the_right_counters() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        set(&sku, "east", 10).await;
        let held = run(&sku, reserve("r1", 3)).await.unwrap();
        assert!(matches!(held.status, ReservationStatus::Held { .. }));
        let view = get(&sku).await;
        assert_eq!((view.on_hand, view.reserved, view.available), (10, 3, 7));

        run(&sku, commit("r1")).await.unwrap();
        let view = get(&sku).await;
        assert_eq!((view.on_hand, view.reserved, view.available), (7, 0, 7));

        run(&sku, reserve("r2", 2)).await.unwrap();
        run(&sku, release("r2")).await.unwrap();
        let view = get(&sku).await;
        assert_eq!((view.on_hand, view.reserved, view.available), (7, 0, 7));

        // Releasing a committed reservation returns its units to on_hand (cancelled order).
        let back = run(&sku, release("r1")).await.unwrap();
        assert_eq!(back.status, ReservationStatus::Restocked);
        assert_eq!(get(&sku).await.on_hand, 10);
    }

    #[tokio::test]
    async fn every_command_is_idempotent_by_reservation_id() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        set(&sku, "east", 10).await;
        let first = run(&sku, reserve("r1", 4)).await.unwrap();
        let again = run(&sku, reserve("r1", 4)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(get(&sku).await.reserved, 4, "reserved once");
        run(&sku, commit("r1")).await.unwrap();
        run(&sku, commit("r1")).await.unwrap();
        assert_eq!(get(&sku).await.on_hand, 6, "committed once");
        run(&sku, release("r1")).await.unwrap();
        run(&sku, release("r1")).await.unwrap();
        assert_eq!(get(&sku).await.on_hand, 10, "restocked once");
        // A reserve that arrives after its release is refused, not resurrected.
        run(&sku, release("late")).await.unwrap();
        let late = run(&sku, reserve("late", 1)).await.unwrap_err();
        assert!(matches!(late, StockRejection::Closed { .. }), "{late:?}");
        assert_eq!(get(&sku).await.reserved, 0);
        assert!(matches!(
            run(&sku, commit("never")).await,
            Err(StockRejection::UnknownReservation { .. })
        ));
    }

    #[tokio::test]
    async fn never_oversells_under_concurrent_reservations() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("HOT");
        set(&sku, "east", 6).await;
        set(&sku, "west", 4).await;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let sku = runtime.actor::<InventoryActor>("HOT");
                tokio::spawn(async move { run(&sku, reserve(&format!("r{i}"), 1)).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(StockRejection::Insufficient { available, .. }) => assert_eq!(available, 0),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(won, 10);
        let view = get(&sku).await;
        assert_eq!((view.reserved, view.available), (10, 0));
        assert!(
            view.warehouses
                .iter()
                .all(|(_, stock)| stock.reserved == stock.on_hand)
        );
    }

    #[tokio::test]
    async fn reservations_span_warehouses_most_available_first() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        set(&sku, "a", 2).await;
        set(&sku, "b", 5).await;
        let held = run(&sku, reserve("r1", 6)).await.unwrap();
        assert_eq!(
            held.allocations,
            vec![
                Allocation {
                    warehouse: wh("b"),
                    units: 5
                },
                Allocation {
                    warehouse: wh("a"),
                    units: 1
                }
            ]
        );
        assert!(matches!(
            run(&sku, reserve("r2", 2)).await,
            Err(StockRejection::Insufficient {
                requested: 2,
                available: 1,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn on_hand_cannot_go_below_reserved() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        set(&sku, "east", 10).await;
        run(&sku, reserve("r1", 4)).await.unwrap();
        let refused = sku
            .ask(StockCommand::SetStock {
                warehouse: wh("east"),
                on_hand: 3,
                low_stock_threshold: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            refused,
            StockReply::Set(Err(StockRejection::BelowReserved { reserved: 4, .. }))
        ));
        assert_eq!(set(&sku, "east", 4).await.available, 0);
    }

    #[tokio::test]
    async fn low_stock_alerts_fire_when_available_falls_below_the_threshold() {
        let (store, clock) = setup();
        let runtime = runtime(store, clock.clone()).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        let view = match sku
            .ask(StockCommand::SetStock {
                warehouse: wh("east"),
                on_hand: 5,
                low_stock_threshold: Some(3),
            })
            .await
            .unwrap()
        {
            StockReply::Set(Ok(view)) => view,
            _ => panic!(),
        };
        assert!(!view.low_stock && view.alerts.is_empty());
        run(&sku, reserve("r1", 2)).await.unwrap(); // available 3: not below
        assert!(!get(&sku).await.low_stock);
        clock.advance_ms(1_000);
        run(&sku, reserve("r2", 1)).await.unwrap(); // available 2: below
        let view = get(&sku).await;
        assert!(view.low_stock);
        assert_eq!(
            view.alerts,
            vec![LowStockAlert {
                at_ms: START_MS + 1_000,
                available: 2
            }]
        );
        run(&sku, reserve("r3", 1)).await.unwrap(); // still below: no second alert
        assert_eq!(get(&sku).await.alerts.len(), 1);
        set(&sku, "east", 50).await; // restocked: the flag clears
        assert!(!get(&sku).await.low_stock);
        for i in 0..(MAX_ALERTS + 5) {
            set(&sku, "east", 4).await;
            set(&sku, "east", 50).await;
            let _ = i;
        }
        assert_eq!(get(&sku).await.alerts.len(), MAX_ALERTS, "bounded history");
    }

    #[tokio::test]
    async fn held_reservations_expire_after_the_ttl_even_across_a_restart() {
        let (store, clock) = setup();
        let first = runtime(store.clone(), clock.clone()).await;
        let sku = first.actor::<InventoryActor>("SKU-1");
        set(&sku, "east", 10).await;
        run(&sku, reserve("abandoned", 3)).await.unwrap();
        run(&sku, reserve("kept", 2)).await.unwrap();
        run(&sku, commit("kept")).await.unwrap();
        first.shutdown(Duration::from_secs(1)).await;
        drop(first);

        let second = runtime(store, clock.clone()).await;
        let sku = second.actor::<InventoryActor>("SKU-1");
        assert_eq!(get(&sku).await.reserved, 3, "not yet due");
        clock.advance_ms(TTL.as_millis() as u64 + 1);
        let mut released = false;
        for _ in 0..100 {
            if get(&sku).await.reserved == 0 {
                released = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            released,
            "the expiry reminder released the abandoned reservation"
        );
        let view = get(&sku).await;
        assert_eq!((view.on_hand, view.available), (8, 8));
        // A late commit of an expired reservation still sells if the units are there.
        run(&sku, commit("abandoned")).await.unwrap();
        assert_eq!(get(&sku).await.on_hand, 5);
    }

    fn changed(on_hand: u64, available: u64) -> DomainEvent {
        DomainEvent::StockChanged {
            sku: "SKU-1".to_owned(),
            on_hand,
            available,
        }
    }

    #[tokio::test]
    async fn stock_changed_is_raised_when_on_hand_changes_and_only_then() {
        let (store, clock) = setup();
        let runtime = runtime(store.clone(), clock.clone()).await;
        let sku = runtime.actor::<InventoryActor>("SKU-1");
        let events = || crate::events::emitted::events(store.as_ref(), "inventory", "SKU-1");
        set(&sku, "east", 10).await;
        set(&sku, "east", 10).await; // the same value: nothing
        set(&sku, "west", 0).await; // a new warehouse, no units: nothing
        assert_eq!(events().await, [changed(10, 10)]);

        // Holds, their releases and refusals change no on-hand stock.
        run(&sku, reserve("r1", 3)).await.unwrap();
        run(&sku, reserve("r2", 2)).await.unwrap();
        run(&sku, release("r2")).await.unwrap();
        run(&sku, reserve("big", 99)).await.unwrap_err();
        run(&sku, commit("unknown")).await.unwrap_err();
        let refused = sku
            .ask(StockCommand::SetStock {
                warehouse: wh("east"),
                on_hand: 1,
                low_stock_threshold: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            refused,
            StockReply::Set(Err(StockRejection::BelowReserved { .. }))
        ));
        assert_eq!(events().await.len(), 1);

        // Sold: on hand drops (and stays 7 on a repeated commit); returned: it rises.
        run(&sku, commit("r1")).await.unwrap();
        run(&sku, commit("r1")).await.unwrap();
        run(&sku, reserve("r3", 2)).await.unwrap(); // available 5: not below 5
        run(&sku, release("r1")).await.unwrap();
        run(&sku, release("r1")).await.unwrap();
        assert_eq!(
            events().await,
            [changed(10, 10), changed(7, 7), changed(10, 8)],
            "available is the value after the change"
        );

        // Below the threshold (5) in the same turn: StockChanged first, then StockLow.
        set(&sku, "east", 6).await;
        let envelopes =
            crate::events::emitted::envelopes(store.as_ref(), "inventory", "SKU-1").await;
        let last: Vec<_> = envelopes[3..].iter().map(|e| e.event.clone()).collect();
        assert_eq!(
            last,
            [
                changed(6, 4),
                DomainEvent::StockLow {
                    sku: "SKU-1".to_owned(),
                    available: 4,
                    threshold: DEFAULT_LOW_STOCK_THRESHOLD,
                }
            ]
        );
        assert_eq!(envelopes[3].version, envelopes[4].version, "one commit");
        assert_eq!(
            envelopes[4].id,
            format!("inventory:SKU-1:{}:1", envelopes[4].version)
        );

        // An expiry gives back held units only: nothing.
        clock.advance_ms(TTL.as_millis() as u64 + 1);
        let mut expired = false;
        for _ in 0..100 {
            if get(&sku).await.reserved == 0 {
                expired = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(expired);
        assert_eq!(events().await.len(), 5);
    }
}
