//! The conformance suite of the [`StateStore`] port: one executable copy of the contract
//! written on the trait, run by every adapter's own tests (feature `conformance`).
//!
//! An adapter runs the whole suite with one line in a test target:
//!
//! ```ignore
//! async fn open_store() -> Option<std::sync::Arc<dyn emporium_runtime::StateStore>> { … }
//! emporium_runtime::state_store_conformance!(open_store);
//! ```
//!
//! The macro expands to a module with one `#[tokio::test]` per case (the test crate needs
//! `tokio` with `macros` and `rt-multi-thread`). A factory that cannot reach its service
//! returns [`service_unavailable`], which skips loudly, or fails when the environment
//! demands the service (`EMPORIUM_REQUIRE_SERVICES=1`): a skipped case never passes
//! silently. A store that owns a resource to release after it (a temporary directory, a
//! schema) is returned wrapped in [`Guarded`].
//!
//! # Invariants of the suite itself
//! - **It tolerates a shared store.** Cases may run in parallel against one database that
//!   also holds other tests' data. Every case works on actor kinds and node ids of its own
//!   (unique per process, per call and per run), filters every listing down to them, and reads
//!   the current lease epoch of a shard instead of assuming it is `0`.
//! - **It checks outcomes, never timing**: no sleeps, no assumptions about batching.
//! - **It cleans up what it can** (acknowledges its outbox entries) so that a long-lived
//!   shared database does not grow an outbox that pushes later cases past their limits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Lease, MemberRecord, MemberStatus, OutboxEntry, PendingEvent, Reminder, ReminderChange,
    StateStore, StateWrite, StoreError, Versioned,
};
use crate::identity::{ActorId, intern_kind};
use crate::placement::{SHARD_COUNT, Shard, shard_of, shard_of_id};

/// Large enough to see every pending entry of a case even when the shared outbox also holds
/// other tests' entries.
const PENDING_LIMIT: usize = 100_000;

/// What an adapter's factory returns when its service cannot be reached.
///
/// With `EMPORIUM_REQUIRE_SERVICES=1` (CI with its services up) this panics with
/// `required service unavailable: {reason}`; otherwise it prints `skipped: {reason}` to stderr
/// and returns `None`, which makes the case return early.
pub fn service_unavailable<T>(reason: &str) -> Option<T> {
    if std::env::var("EMPORIUM_REQUIRE_SERVICES").is_ok_and(|value| value == "1") {
        panic!("required service unavailable: {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A store that owns what must outlive it, for adapters' factories: a temporary directory
/// holding its file, a schema to drop, … Every [`StateStore`] method delegates to `store`.
///
/// **Drop order**: the store is dropped before the guard (fields drop in declaration order),
/// so an embedded store closes its file before its directory goes, and a pool's connections
/// close before its schema is dropped.
pub struct Guarded<G: Send + Sync + 'static> {
    store: Arc<dyn StateStore>,
    _guard: G,
}

impl<G: Send + Sync + 'static> Guarded<G> {
    /// `store`, keeping `guard` until after the store is dropped.
    pub fn new(store: Arc<dyn StateStore>, guard: G) -> Self {
        Self {
            store,
            _guard: guard,
        }
    }
}

#[async_trait]
impl<G: Send + Sync + 'static> StateStore for Guarded<G> {
    fn adapter(&self) -> &'static str {
        self.store.adapter()
    }
    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        self.store.load(id).await
    }
    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        self.store.save(id, write).await
    }
    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        self.store.delete(id, expected_version).await
    }
    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.store.list_keys(kind, after, limit).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.store.outbox_pending(limit).await
    }
    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.store.outbox_pending_in(shard, limit).await
    }
    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        self.store.outbox_ack(events).await
    }
    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        self.store.list_reminders(shard).await
    }
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        self.store.upsert_member(member).await
    }
    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.store.list_members().await
    }
    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        self.store.remove_member(node_id, incarnation).await
    }
    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.store.claim_lease(shard, owner, expected_epoch).await
    }
    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.store.list_leases().await
    }
}

/// A suffix unique to this process, this call and (through the clock) this run.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{}_{nanos}_{count}", std::process::id())
}

/// A fresh actor kind owned by one case.
fn unique_kind(case: &str) -> &'static str {
    intern_kind(&format!("conf_{case}_{}", unique_suffix()))
}

fn must<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error {error:?}"),
    }
}

fn must_conflict<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(error) if error.is_conflict() => {
            assert!(
                !error.is_unavailable(),
                "{what}: a conflict is not unavailability"
            );
        }
        other => panic!("{what}: expected a version conflict, got {other:?}"),
    }
}

fn state_write(expected_version: u64, state: &[u8]) -> StateWrite {
    StateWrite {
        expected_version,
        state: Bytes::copy_from_slice(state),
        outbox: Vec::new(),
        reminders: Vec::new(),
    }
}

fn entry(event_id: &str, topic: &str, payload: &[u8]) -> OutboxEntry {
    OutboxEntry {
        event_id: event_id.to_owned(),
        topic: topic.to_owned(),
        payload: Bytes::copy_from_slice(payload),
    }
}

fn set(name: &str, due_at_ms: u64) -> ReminderChange {
    ReminderChange::Set {
        name: name.to_owned(),
        due_at_ms,
    }
}

fn cancel(name: &str) -> ReminderChange {
    ReminderChange::Cancel {
        name: name.to_owned(),
    }
}

async fn save_ok(store: &dyn StateStore, id: &ActorId, write: StateWrite) -> u64 {
    let expected = write.expected_version;
    let version = must(store.save(id, write).await, &format!("save of {id}"));
    assert_eq!(
        version,
        expected + 1,
        "save of {id} must return expected_version + 1"
    );
    version
}

async fn load_ok(store: &dyn StateStore, id: &ActorId) -> Option<(u64, Bytes)> {
    must(store.load(id).await, &format!("load of {id}")).map(|record| {
        assert!(record.version >= 1, "a stored record has a version >= 1");
        (record.version, record.state)
    })
}

/// The pending entries raised by actors of `kind`, in the order the store returned them.
async fn pending_of(store: &dyn StateStore, kind: &str) -> Vec<PendingEvent> {
    let pending = must(store.outbox_pending(PENDING_LIMIT).await, "outbox_pending");
    assert!(
        pending.len() <= PENDING_LIMIT,
        "outbox_pending exceeded its limit"
    );
    pending
        .into_iter()
        .filter(|event| event.actor.kind == kind)
        .collect()
}

/// The event ids pending for one actor, in the order the store returned them.
async fn pending_ids_of(store: &dyn StateStore, id: &ActorId) -> Vec<String> {
    pending_of(store, id.kind)
        .await
        .into_iter()
        .filter(|event| event.actor == *id)
        .map(|event| event.entry.event_id)
        .collect()
}

/// Acknowledge every pending entry of `kind`, so a shared outbox does not keep growing.
async fn clean_outbox(store: &dyn StateStore, kind: &str) {
    let pending = pending_of(store, kind).await;
    must(store.outbox_ack(&pending).await, "outbox_ack (cleanup)");
}

/// The reminders of actors of `kind` listed for `shard`, as `(key, name) -> due_at_ms`.
async fn reminders_of(
    store: &dyn StateStore,
    shard: Shard,
    kind: &str,
) -> BTreeMap<(String, String), u64> {
    let listed = must(store.list_reminders(shard).await, "list_reminders");
    for reminder in &listed {
        assert_eq!(
            shard_of_id(&reminder.actor),
            shard,
            "list_reminders({shard}) returned {reminder:?} of another shard"
        );
    }
    let mut mine = BTreeMap::new();
    for Reminder {
        actor,
        name,
        due_at_ms,
    } in listed
    {
        if actor.kind == kind {
            let previous = mine.insert((actor.key, name), due_at_ms);
            assert!(
                previous.is_none(),
                "a reminder name is listed twice for one actor"
            );
        }
    }
    mine
}

fn reminder_map(entries: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    entries
        .iter()
        .map(|(key, name, due)| (((*key).to_owned(), (*name).to_owned()), *due))
        .collect()
}

/// Deterministic bytes (xorshift64), so a large value is not trivially compressible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// A record that was never saved loads as `None`, and its kind lists no keys.
pub async fn load_absent_is_none(store: &dyn StateStore) {
    let kind = unique_kind("absent");
    let id = ActorId::new(kind, "never-saved");
    assert_eq!(load_ok(store, &id).await, None);
    let keys = must(store.list_keys(kind, None, 100).await, "list_keys");
    assert!(
        keys.is_empty(),
        "a kind that was never written lists {keys:?}"
    );
    assert!(pending_of(store, kind).await.is_empty());
    assert!(!store.adapter().is_empty(), "an adapter names itself");
}

/// `expected_version == 0` creates version 1; a save under the current version bumps it.
pub async fn save_creates_then_bumps_version(store: &dyn StateStore) {
    let kind = unique_kind("save");
    let id = ActorId::new(kind, "cart-1");
    let neighbour = ActorId::new(kind, "cart-2");

    assert_eq!(save_ok(store, &id, state_write(0, b"one")).await, 1);
    assert_eq!(
        load_ok(store, &id).await,
        Some((1, Bytes::from_static(b"one")))
    );

    assert_eq!(save_ok(store, &id, state_write(1, b"two")).await, 2);
    assert_eq!(save_ok(store, &id, state_write(2, b"")).await, 3);
    assert_eq!(
        load_ok(store, &id).await,
        Some((3, Bytes::new())),
        "an empty state is a state, not an absence"
    );
    assert_eq!(save_ok(store, &id, state_write(3, b"four")).await, 4);
    assert_eq!(
        load_ok(store, &id).await,
        Some((4, Bytes::from_static(b"four")))
    );

    assert_eq!(
        load_ok(store, &neighbour).await,
        None,
        "a save touches only its own key"
    );
    assert_eq!(save_ok(store, &neighbour, state_write(0, b"x")).await, 1);
    assert_eq!(
        load_ok(store, &id).await,
        Some((4, Bytes::from_static(b"four")))
    );
}

/// A save under a stale (or future) version conflicts and applies nothing: not the state, not
/// the outbox entries, not the reminder changes.
pub async fn stale_version_conflicts_and_applies_nothing(store: &dyn StateStore) {
    let kind = unique_kind("stale");
    let id = ActorId::new(kind, "order-1");
    let shard = shard_of_id(&id);

    let mut create = state_write(0, b"v1");
    create
        .outbox
        .push(entry(&format!("{kind}-e1"), "conf.created", b"1"));
    create.reminders.push(set("expire", 1_000));
    save_ok(store, &id, create).await;
    let mut update = state_write(1, b"v2");
    update
        .outbox
        .push(entry(&format!("{kind}-e2"), "conf.updated", b"2"));
    save_ok(store, &id, update).await;

    for expected in [1, 3, 99] {
        let mut stale = state_write(expected, b"lost");
        stale
            .outbox
            .push(entry(&format!("{kind}-lost-{expected}"), "conf.lost", b"x"));
        stale.reminders.push(set("lost", 5));
        stale.reminders.push(cancel("expire"));
        must_conflict(
            store.save(&id, stale).await,
            &format!("save with expected version {expected} over version 2"),
        );
    }

    assert_eq!(
        load_ok(store, &id).await,
        Some((2, Bytes::from_static(b"v2")))
    );
    assert_eq!(
        pending_ids_of(store, &id).await,
        vec![format!("{kind}-e1"), format!("{kind}-e2")],
        "a conflicting save added or removed outbox entries"
    );
    assert_eq!(
        reminders_of(store, shard, kind).await,
        reminder_map(&[("order-1", "expire", 1_000)]),
        "a conflicting save changed reminders"
    );
    assert_eq!(save_ok(store, &id, state_write(2, b"v3")).await, 3);
    clean_outbox(store, kind).await;
}

/// A create (`expected_version == 0`) over an existing record conflicts and applies nothing.
pub async fn create_over_existing_conflicts(store: &dyn StateStore) {
    let kind = unique_kind("create");
    let id = ActorId::new(kind, "sku-1");
    save_ok(store, &id, state_write(0, b"first")).await;

    let mut second = state_write(0, b"second");
    second
        .outbox
        .push(entry(&format!("{kind}-dup"), "conf.created", b""));
    second.reminders.push(set("dup", 7));
    must_conflict(store.save(&id, second).await, "a second create of one key");

    assert_eq!(
        load_ok(store, &id).await,
        Some((1, Bytes::from_static(b"first")))
    );
    assert!(pending_of(store, kind).await.is_empty());
    assert!(reminders_of(store, shard_of_id(&id), kind).await.is_empty());
}

/// Delete is a compare-and-set too; deleting an absent record under `0` succeeds.
pub async fn delete_is_compare_and_set(store: &dyn StateStore) {
    let kind = unique_kind("delete");
    let id = ActorId::new(kind, "cart-9");

    must(
        store.delete(&id, 0).await,
        "delete of an absent record under 0",
    );
    must_conflict(
        store.delete(&id, 1).await,
        "delete of an absent record under 1",
    );

    save_ok(store, &id, state_write(0, b"a")).await;
    save_ok(store, &id, state_write(1, b"b")).await;
    must_conflict(store.delete(&id, 0).await, "delete under 0 of version 2");
    must_conflict(store.delete(&id, 1).await, "delete under 1 of version 2");
    must_conflict(store.delete(&id, 3).await, "delete under 3 of version 2");
    assert_eq!(
        load_ok(store, &id).await,
        Some((2, Bytes::from_static(b"b")))
    );

    must(
        store.delete(&id, 2).await,
        "delete under the current version",
    );
    assert_eq!(load_ok(store, &id).await, None);
    let keys = must(store.list_keys(kind, None, 10).await, "list_keys");
    assert!(keys.is_empty(), "a deleted key is still listed: {keys:?}");
    must(
        store.delete(&id, 0).await,
        "delete of a deleted record under 0",
    );

    must_conflict(
        store.save(&id, state_write(2, b"ghost")).await,
        "save under the version of a deleted record",
    );
    assert_eq!(
        save_ok(store, &id, state_write(0, b"again")).await,
        1,
        "a deleted record is created again from 0"
    );
}

/// Delete removes the actor's reminders and outbox entries, and only that actor's; a
/// conflicting delete removes nothing.
pub async fn delete_removes_reminders_and_outbox(store: &dyn StateStore) {
    let kind = unique_kind("delete_all");
    let doomed = ActorId::new(kind, "doomed");
    let survivor = ActorId::new(kind, "survivor");

    let mut write = state_write(0, b"d");
    write
        .outbox
        .push(entry(&format!("{kind}-d1"), "conf.d", b"1"));
    write
        .outbox
        .push(entry(&format!("{kind}-d2"), "conf.d", b"2"));
    write.reminders.push(set("r1", 10));
    write.reminders.push(set("r2", 20));
    save_ok(store, &doomed, write).await;
    let mut write = state_write(0, b"s");
    write
        .outbox
        .push(entry(&format!("{kind}-s1"), "conf.s", b"1"));
    write.reminders.push(set("r1", 30));
    save_ok(store, &survivor, write).await;

    must_conflict(
        store.delete(&doomed, 2).await,
        "delete under a stale version",
    );
    assert_eq!(pending_ids_of(store, &doomed).await.len(), 2);
    assert_eq!(
        reminders_of(store, shard_of_id(&doomed), kind)
            .await
            .keys()
            .filter(|(key, _)| key == "doomed")
            .count(),
        2
    );

    must(
        store.delete(&doomed, 1).await,
        "delete under the current version",
    );
    assert!(
        pending_ids_of(store, &doomed).await.is_empty(),
        "delete left outbox entries behind"
    );
    assert_eq!(
        pending_ids_of(store, &survivor).await,
        vec![format!("{kind}-s1")],
        "delete removed another actor's outbox entries"
    );
    let doomed_left: Vec<_> = reminders_of(store, shard_of_id(&doomed), kind)
        .await
        .into_keys()
        .filter(|(key, _)| key == "doomed")
        .collect();
    assert!(
        doomed_left.is_empty(),
        "delete left reminders behind: {doomed_left:?}"
    );
    assert_eq!(
        reminders_of(store, shard_of_id(&survivor), kind)
            .await
            .get(&("survivor".to_owned(), "r1".to_owned())),
        Some(&30),
        "delete removed another actor's reminder"
    );

    let recreated = save_ok(store, &doomed, state_write(0, b"new")).await;
    assert_eq!(recreated, 1);
    assert!(pending_ids_of(store, &doomed).await.is_empty());
    clean_outbox(store, kind).await;
}

/// `list_keys`: ascending byte order, strictly after `after`, at most `limit`, one kind only.
pub async fn list_keys_orders_pages_and_isolates_kinds(store: &dyn StateStore) {
    let kind = unique_kind("list");
    // Kinds whose names extend this one: a naive prefix scan without a separator would leak
    // their keys, and ("kind", "xb") would collide with ("kindx", "b").
    let longer = intern_kind(&format!("{kind}x"));
    let longer_still = intern_kind(&format!("{kind}_"));

    // Byte order, not collation: "B" < "a", "10" < "9", "z" < "é" (0xC3 0xA9) < "ü".
    let keys = [
        "a", "b", "B", "aa", "a-b", "a_b", "10", "9", "z", "é", "ü", "xb", "a b", "k~",
    ];
    for key in keys {
        save_ok(
            store,
            &ActorId::new(kind, key),
            state_write(0, key.as_bytes()),
        )
        .await;
    }
    for key in ["b", "0", "zz"] {
        save_ok(store, &ActorId::new(longer, key), state_write(0, b"other")).await;
        save_ok(
            store,
            &ActorId::new(longer_still, key),
            state_write(0, b"other"),
        )
        .await;
    }
    let gone = ActorId::new(kind, "gone");
    save_ok(store, &gone, state_write(0, b"x")).await;
    must(store.delete(&gone, 1).await, "delete");

    let mut expected: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    expected.sort_by(|left, right| left.as_bytes().cmp(right.as_bytes()));

    let all = must(store.list_keys(kind, None, 1_000).await, "list_keys");
    assert_eq!(
        all, expected,
        "list_keys must return exactly this kind's keys in byte order"
    );

    let first = must(store.list_keys(kind, None, 3).await, "list_keys limit 3");
    assert_eq!(first, expected[..3]);
    let none = must(store.list_keys(kind, None, 0).await, "list_keys limit 0");
    assert!(none.is_empty(), "limit 0 returned {none:?}");

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = must(
            store.list_keys(kind, after.as_deref(), 4).await,
            "list_keys page",
        );
        assert!(page.len() <= 4, "a page exceeded its limit");
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        after = Some(last);
        assert!(paged.len() <= expected.len(), "paging does not terminate");
    }
    assert_eq!(
        paged, expected,
        "paging with `after` must visit every key once, in order"
    );

    // `after` need not be a stored key, and is exclusive.
    let after_a = must(
        store.list_keys(kind, Some("a"), 1_000).await,
        "list_keys after a",
    );
    let want: Vec<String> = expected
        .iter()
        .filter(|key| key.as_bytes() > b"a".as_slice())
        .cloned()
        .collect();
    assert_eq!(after_a, want);
    let after_missing = must(
        store.list_keys(kind, Some("c"), 2).await,
        "list_keys after c",
    );
    assert_eq!(after_missing, vec!["k~".to_owned(), "xb".to_owned()]);
    let after_last = must(
        store.list_keys(kind, Some("ü"), 10).await,
        "list_keys after the last",
    );
    assert!(after_last.is_empty());

    let longer_keys = must(store.list_keys(longer, None, 100).await, "list_keys longer");
    assert_eq!(longer_keys, vec!["0", "b", "zz"]);
}

/// Outbox entries commit with their state, carry it exactly, and a conflicting save adds none.
pub async fn outbox_commits_with_state(store: &dyn StateStore) {
    let kind = unique_kind("outbox");
    let id = ActorId::new(kind, "order-7");
    let payload = [0u8, 1, 2, 0xff, 0xfe, b'{', 0];

    let mut write = state_write(0, b"placed");
    write.outbox.push(entry(
        &format!("{kind}-1"),
        "emporium.orders.placed",
        &payload,
    ));
    write
        .outbox
        .push(entry(&format!("{kind}-2"), "emporium.orders.audit", b""));
    save_ok(store, &id, write).await;

    let pending = pending_of(store, kind).await;
    assert_eq!(
        pending,
        vec![
            PendingEvent {
                actor: id.clone(),
                entry: entry(&format!("{kind}-1"), "emporium.orders.placed", &payload),
            },
            PendingEvent {
                actor: id.clone(),
                entry: entry(&format!("{kind}-2"), "emporium.orders.audit", b""),
            },
        ],
        "outbox entries must read back exactly, in commit order"
    );

    let mut lost = state_write(0, b"lost");
    lost.outbox
        .push(entry(&format!("{kind}-lost"), "emporium.orders.lost", b""));
    must_conflict(
        store.save(&id, lost).await,
        "a conflicting save with outbox",
    );
    assert_eq!(
        pending_of(store, kind).await.len(),
        2,
        "a conflicting save added an entry"
    );

    let mut write = state_write(1, b"paid");
    write
        .outbox
        .push(entry(&format!("{kind}-3"), "emporium.orders.paid", b"3"));
    save_ok(store, &id, write).await;
    assert_eq!(
        pending_ids_of(store, &id).await,
        vec![
            format!("{kind}-1"),
            format!("{kind}-2"),
            format!("{kind}-3")
        ]
    );
    // A save without entries leaves the pending ones alone.
    save_ok(store, &id, state_write(2, b"shipped")).await;
    assert_eq!(pending_ids_of(store, &id).await.len(), 3);

    let one = must(store.outbox_pending(1).await, "outbox_pending(1)");
    assert!(
        one.len() <= 1,
        "outbox_pending(1) returned {} entries",
        one.len()
    );
    clean_outbox(store, kind).await;
}

/// Every mix of effects a save can carry (no, one or several outbox entries; reminders set;
/// reminders cancelled), on a create and on an update: each commits whole with its record,
/// and a save of the same mix that loses its compare-and-set writes none of them. (An
/// adapter may write each mix its own way; this is the contract that holds them together.)
pub async fn every_mix_of_effects_commits_with_state(store: &dyn StateStore) {
    let kind = unique_kind("mix");
    for entries in [0usize, 1, 3] {
        for sets in [false, true] {
            for cancels in [false, true] {
                let key_text = format!("e{entries}-s{sets}-c{cancels}");
                let key = key_text.as_str();
                let id = ActorId::new(kind, key);
                let mix = |expected: u64, round: &str| {
                    let mut write = state_write(expected, round.as_bytes());
                    write.outbox = (0..entries)
                        .map(|n| {
                            entry(
                                &format!("{kind}-{key}-{round}-{n}"),
                                "emporium.mix",
                                round.as_bytes(),
                            )
                        })
                        .collect();
                    if sets {
                        write.reminders.push(set(&format!("set-{round}"), 7));
                    }
                    if cancels {
                        write.reminders.push(cancel("set-create"));
                    }
                    write
                };
                let expected_ids = |rounds: &[&str]| -> Vec<String> {
                    rounds
                        .iter()
                        .flat_map(|round| {
                            (0..entries).map(move |n| format!("{kind}-{key}-{round}-{n}"))
                        })
                        .collect()
                };
                let expected_reminders = |rounds: &[&str]| -> Vec<String> {
                    let mut names: Vec<String> = rounds
                        .iter()
                        .filter(|_| sets)
                        .map(|round| format!("set-{round}"))
                        .filter(|name| !(cancels && name == "set-create"))
                        .collect();
                    names.sort();
                    names
                };
                let id = &id;
                let reminder_names = || async move {
                    reminders_of(store, shard_of_id(id), kind)
                        .await
                        .into_keys()
                        .filter(|(owner, _)| owner == key)
                        .map(|(_, name)| name)
                        .collect::<Vec<_>>()
                };

                // A create, then an update; each followed by a save of the same mix that
                // lost its compare-and-set.
                let mut committed = Vec::new();
                for (expected, round, lost) in [(0, "create", "lost"), (1, "update", "stale")] {
                    save_ok(store, id, mix(expected, round)).await;
                    must_conflict(
                        store.save(id, mix(expected, lost)).await,
                        &format!("a lost save with effects ({round})"),
                    );
                    committed.push(round);
                    assert_eq!(
                        pending_ids_of(store, id).await,
                        expected_ids(&committed),
                        "{key}: entries in commit order, none of the lost saves"
                    );
                    assert_eq!(
                        reminder_names().await,
                        expected_reminders(&committed),
                        "{key}"
                    );
                }
                assert_eq!(
                    load_ok(store, id).await.map(|(version, _)| version),
                    Some(2)
                );
                must(store.delete(id, 2).await, "delete of a mix");
            }
        }
    }
    clean_outbox(store, kind).await;
}

/// `outbox_ack` removes exactly the acknowledged entries and is idempotent.
pub async fn outbox_ack_is_exact_and_idempotent(store: &dyn StateStore) {
    let kind = unique_kind("ack");
    let first = ActorId::new(kind, "a");
    let second = ActorId::new(kind, "b");
    let mut write = state_write(0, b"a");
    for n in 1..=4 {
        write
            .outbox
            .push(entry(&format!("{kind}-a{n}"), "conf.a", &[n]));
    }
    save_ok(store, &first, write).await;
    let mut write = state_write(0, b"b");
    write
        .outbox
        .push(entry(&format!("{kind}-b1"), "conf.b", b"b"));
    save_ok(store, &second, write).await;

    let pending = pending_of(store, kind).await;
    assert_eq!(pending.len(), 5);
    let ack: Vec<PendingEvent> = pending
        .iter()
        .filter(|event| {
            ["a1", "a3"]
                .iter()
                .any(|n| event.entry.event_id == format!("{kind}-{n}"))
        })
        .cloned()
        .collect();
    assert_eq!(ack.len(), 2);
    must(store.outbox_ack(&ack).await, "outbox_ack");
    assert_eq!(
        pending_ids_of(store, &first).await,
        vec![format!("{kind}-a2"), format!("{kind}-a4")],
        "outbox_ack must remove exactly the acknowledged entries"
    );
    assert_eq!(
        pending_ids_of(store, &second).await,
        vec![format!("{kind}-b1")]
    );

    must(
        store.outbox_ack(&ack).await,
        "outbox_ack again (idempotent)",
    );
    must(store.outbox_ack(&[]).await, "outbox_ack of nothing");
    let unknown = PendingEvent {
        actor: first.clone(),
        entry: entry(&format!("{kind}-never-raised"), "conf.a", b""),
    };
    must(
        store.outbox_ack(&[unknown]).await,
        "outbox_ack of an unknown id",
    );
    assert_eq!(pending_of(store, kind).await.len(), 3);

    let rest = pending_of(store, kind).await;
    must(store.outbox_ack(&rest).await, "outbox_ack of the rest");
    assert!(pending_of(store, kind).await.is_empty());
    assert_eq!(
        load_ok(store, &first).await,
        Some((1, Bytes::from_static(b"a"))),
        "outbox_ack must not touch the state"
    );
}

/// Within one actor, entries come back in commit order, even interleaved with other actors.
pub async fn outbox_order_is_commit_order(store: &dyn StateStore) {
    let kind = unique_kind("order");
    let actors = [
        ActorId::new(kind, "x"),
        ActorId::new(kind, "y"),
        ActorId::new(kind, "z"),
    ];
    let mut expected: HashMap<ActorId, Vec<String>> = HashMap::new();
    for round in 0..8u64 {
        for (index, actor) in actors.iter().enumerate() {
            // Each actor commits in turn; the last one sometimes twice, sometimes not at all.
            if index == 2 && round % 3 == 0 {
                continue;
            }
            let version = expected.get(actor).map_or(0, |ids| ids.len() as u64 / 2);
            let mut write = state_write(version, &round.to_be_bytes());
            for part in 0..2 {
                let event_id = format!("{kind}-{}-{round}-{part}", actor.key);
                write
                    .outbox
                    .push(entry(&event_id, "conf.order", &round.to_be_bytes()));
                expected.entry(actor.clone()).or_default().push(event_id);
            }
            save_ok(store, actor, write).await;
        }
    }
    for actor in &actors {
        assert_eq!(
            pending_ids_of(store, actor).await,
            expected[actor],
            "entries of {actor} out of commit order"
        );
    }
    clean_outbox(store, kind).await;
}

/// `count` keys of `kind` that all hash to one shard, and that shard.
fn keys_in_one_shard(kind: &str, count: usize) -> (Shard, Vec<String>) {
    let mut by_shard: HashMap<Shard, Vec<String>> = HashMap::new();
    for n in 0u64.. {
        let key = format!("k{n}");
        let shard = shard_of(kind, &key);
        let keys = by_shard.entry(shard).or_default();
        keys.push(key);
        if keys.len() == count {
            return (shard, keys.clone());
        }
    }
    unreachable!("some shard gets {count} keys")
}

/// Two keys of `kind` in different shards.
fn keys_in_two_shards(kind: &str) -> (String, String) {
    let first = "k0".to_owned();
    let second = (1u64..)
        .map(|n| format!("k{n}"))
        .find(|key| shard_of(kind, key) != shard_of(kind, &first))
        .unwrap_or_default();
    (first, second)
}

/// `outbox_pending_in(shard, limit)`, checked against what the port promises of any answer
/// (at most `limit` entries, all of `shard`), filtered down to the actors of `kind`.
async fn pending_in_of(
    store: &dyn StateStore,
    shard: Shard,
    kind: &str,
    limit: usize,
) -> Vec<PendingEvent> {
    let pending = must(
        store.outbox_pending_in(shard, limit).await,
        &format!("outbox_pending_in({shard}, {limit})"),
    );
    assert!(
        pending.len() <= limit,
        "outbox_pending_in({shard}, {limit}) returned {} entries",
        pending.len()
    );
    for event in &pending {
        assert_eq!(
            shard_of_id(&event.actor),
            shard,
            "outbox_pending_in({shard}) returned an entry of {} (another shard)",
            event.actor
        );
    }
    pending
        .into_iter()
        .filter(|event| event.actor.kind == kind)
        .collect()
}

/// The event ids per actor of an answer, in the order returned.
fn ids_by_actor(pending: &[PendingEvent]) -> BTreeMap<String, Vec<String>> {
    let mut by_actor: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in pending {
        by_actor
            .entry(event.actor.key.clone())
            .or_default()
            .push(event.entry.event_id.clone());
    }
    by_actor
}

/// Save `rounds` turns of each actor in turn, two entries per turn; the ids raised per key.
async fn interleaved_saves(
    store: &dyn StateStore,
    kind: &'static str,
    keys: &[String],
    rounds: u64,
) -> BTreeMap<String, Vec<String>> {
    let mut raised: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..rounds {
        for key in keys {
            let mut write = state_write(round, &round.to_be_bytes());
            for part in 0..2 {
                let event_id = format!("{kind}-{key}-{round}-{part}");
                write
                    .outbox
                    .push(entry(&event_id, "conf.shard", &round.to_be_bytes()));
                raised.entry(key.clone()).or_default().push(event_id);
            }
            save_ok(store, &ActorId::new(kind, key.as_str()), write).await;
        }
    }
    raised
}

/// Per shard: each shard lists only its own actors' entries, exactly and in commit order,
/// and `outbox_pending` still lists them all.
pub async fn outbox_pending_in_isolates_shards(store: &dyn StateStore) {
    let kind = unique_kind("shard_iso");
    let (key_a, key_b) = keys_in_two_shards(kind);
    let (a, b) = (
        ActorId::new(kind, key_a.as_str()),
        ActorId::new(kind, key_b.as_str()),
    );
    let raised = interleaved_saves(store, kind, &[key_a.clone(), key_b.clone()], 2).await;

    for (actor, other) in [(&a, &b), (&b, &a)] {
        let listed = pending_in_of(store, shard_of_id(actor), kind, PENDING_LIMIT).await;
        let by_actor = ids_by_actor(&listed);
        assert_eq!(
            by_actor.get(&actor.key),
            raised.get(&actor.key),
            "the shard of {actor} must list exactly its entries, in commit order"
        );
        assert!(
            !by_actor.contains_key(&other.key),
            "the shard of {actor} listed entries of {other}"
        );
    }
    let empty_shard = (0..SHARD_COUNT)
        .find(|shard| *shard != shard_of_id(&a) && *shard != shard_of_id(&b))
        .unwrap_or_default();
    assert!(
        pending_in_of(store, empty_shard, kind, PENDING_LIMIT)
            .await
            .is_empty(),
        "a shard without this case's actors listed some"
    );
    assert_eq!(
        pending_of(store, kind).await.len(),
        8,
        "outbox_pending must still list every shard's entries"
    );
    clean_outbox(store, kind).await;
}

/// Per shard, with several actors of one shard and interleaved saves: every limit is kept,
/// each actor's entries come in commit order, and an actor's entry is never returned
/// without every older entry of that actor before it.
pub async fn outbox_pending_in_limits_never_skip(store: &dyn StateStore) {
    let kind = unique_kind("shard_limit");
    let (shard, keys) = keys_in_one_shard(kind, 3);
    let raised = interleaved_saves(store, kind, &keys, 3).await;
    let total: usize = raised.values().map(Vec::len).sum();

    let all = ids_by_actor(&pending_in_of(store, shard, kind, PENDING_LIMIT).await);
    assert_eq!(all, raised, "every entry of the shard, in commit order");
    for limit in 0..=total + 1 {
        let listed = ids_by_actor(&pending_in_of(store, shard, kind, limit).await);
        for (key, ids) in &listed {
            let older = &raised[key][..ids.len().min(raised[key].len())];
            assert_eq!(
                ids, older,
                "limit {limit}: the entries of {key} must be its oldest, in commit order"
            );
        }
    }
    clean_outbox(store, kind).await;
}

/// Per shard: acknowledged entries and the entries of a deleted actor are gone, the others
/// stay; an acknowledged prefix leaves the actor's next entry first.
pub async fn outbox_pending_in_forgets_acked_and_deleted(store: &dyn StateStore) {
    let kind = unique_kind("shard_gone");
    let (shard, keys) = keys_in_one_shard(kind, 2);
    let raised = interleaved_saves(store, kind, &keys, 2).await;
    let (kept, doomed) = (&keys[0], &keys[1]);

    let listed = pending_in_of(store, shard, kind, PENDING_LIMIT).await;
    let first_of_kept: Vec<PendingEvent> = listed
        .iter()
        .filter(|event| event.actor.key == *kept)
        .take(3)
        .cloned()
        .collect();
    must(store.outbox_ack(&first_of_kept).await, "outbox_ack");
    must(
        store.delete(&ActorId::new(kind, doomed.as_str()), 2).await,
        "delete",
    );

    let after = ids_by_actor(&pending_in_of(store, shard, kind, PENDING_LIMIT).await);
    assert_eq!(
        after.get(kept),
        Some(&raised[kept][3..].to_vec()),
        "acknowledged entries must be gone, the rest kept in order"
    );
    assert!(
        !after.contains_key(doomed),
        "a deleted actor's entries are still listed: {:?}",
        after.get(doomed)
    );
    let one = pending_in_of(store, shard, kind, 1).await;
    assert!(
        one.iter()
            .all(|event| event.entry.event_id == raised[kept][3]),
        "after an acknowledged prefix, the actor's next entry comes first: {one:?}"
    );
    clean_outbox(store, kind).await;
}

/// Reminders: set, replace by name, cancel, cancel of an absent one, all with the state.
pub async fn reminders_set_replace_cancel(store: &dyn StateStore) {
    let kind = unique_kind("remind");
    let id = ActorId::new(kind, "cart-3");
    let shard = shard_of_id(&id);

    let mut write = state_write(0, b"1");
    write.reminders.push(set("expire", 100));
    write.reminders.push(set("nudge", 200));
    save_ok(store, &id, write).await;
    assert_eq!(
        reminders_of(store, shard, kind).await,
        reminder_map(&[("cart-3", "expire", 100), ("cart-3", "nudge", 200)])
    );

    let mut write = state_write(1, b"2");
    write.reminders.push(set("expire", 150));
    save_ok(store, &id, write).await;
    assert_eq!(
        reminders_of(store, shard, kind).await,
        reminder_map(&[("cart-3", "expire", 150), ("cart-3", "nudge", 200)]),
        "setting a reminder replaces the one of the same name"
    );

    let mut write = state_write(2, b"3");
    write.reminders.push(cancel("nudge"));
    write.reminders.push(cancel("never-set"));
    save_ok(store, &id, write).await;
    assert_eq!(
        reminders_of(store, shard, kind).await,
        reminder_map(&[("cart-3", "expire", 150)]),
        "cancel removes one reminder; cancelling an absent one is not an error"
    );

    // Changes apply in order within one write: set then cancel leaves nothing, cancel then
    // set leaves the new one.
    let mut write = state_write(3, b"4");
    write.reminders.push(set("flash", 5));
    write.reminders.push(cancel("flash"));
    write.reminders.push(cancel("expire"));
    write.reminders.push(set("expire", u64::MAX));
    save_ok(store, &id, write).await;
    assert_eq!(
        reminders_of(store, shard, kind).await,
        reminder_map(&[("cart-3", "expire", u64::MAX)])
    );

    // A save that does not mention reminders leaves them alone.
    save_ok(store, &id, state_write(4, b"5")).await;
    assert_eq!(reminders_of(store, shard, kind).await.len(), 1);
}

/// `list_reminders(shard)` returns exactly the reminders of the actors in that shard.
pub async fn reminders_listed_by_shard(store: &dyn StateStore) {
    let kind = unique_kind("shards");
    // Two keys of one shard, so a shard lists several actors.
    let mut seen: HashMap<Shard, String> = HashMap::new();
    let mut pair = None;
    for n in 0..100_000u32 {
        let key = format!("k{n}");
        let shard = shard_of(kind, &key);
        if let Some(previous) = seen.insert(shard, key.clone()) {
            pair = Some((shard, previous, key));
            break;
        }
    }
    let Some((shared_shard, key_one, key_two)) = pair else {
        panic!("no two keys share a shard among 100000");
    };
    let mut keys = vec![key_one, key_two];
    keys.extend((0..12).map(|n| format!("lone{n}")));

    let mut expected: BTreeMap<Shard, BTreeMap<(String, String), u64>> = BTreeMap::new();
    for (n, key) in keys.iter().enumerate() {
        let id = ActorId::new(kind, key.clone());
        let due = 1_000 + n as u64;
        let mut write = state_write(0, b"r");
        write.reminders.push(set("tick", due));
        if n % 2 == 0 {
            write.reminders.push(set("tock", due + 1));
            expected
                .entry(shard_of_id(&id))
                .or_default()
                .insert((key.clone(), "tock".to_owned()), due + 1);
        }
        expected
            .entry(shard_of_id(&id))
            .or_default()
            .insert((key.clone(), "tick".to_owned()), due);
        save_ok(store, &id, write).await;
    }
    assert!(expected[&shared_shard].len() >= 3);

    for (shard, want) in &expected {
        assert_eq!(
            &reminders_of(store, *shard, kind).await,
            want,
            "list_reminders({shard}) must return exactly that shard's reminders"
        );
    }
    let empty_shard = (0..SHARD_COUNT)
        .find(|shard| !expected.contains_key(shard))
        .unwrap_or(0);
    assert!(
        reminders_of(store, empty_shard, kind).await.is_empty(),
        "a shard without this kind's actors lists its reminders"
    );
}

/// A 1 MiB state round-trips byte for byte, and can be replaced by another and by a small one.
pub async fn large_value_round_trips(store: &dyn StateStore) {
    let kind = unique_kind("large");
    let id = ActorId::new(kind, "catalog");
    let big = noise(1 << 20, 0x9e37_79b9_7f4a_7c15);
    save_ok(store, &id, state_write(0, &big)).await;
    let (version, state) = load_ok(store, &id).await.unwrap_or_default();
    assert_eq!(version, 1);
    assert!(
        state.as_ref() == big.as_slice(),
        "1 MiB state did not round-trip byte-exact"
    );

    let other = noise(1 << 20, 42);
    save_ok(store, &id, state_write(1, &other)).await;
    let (_, state) = load_ok(store, &id).await.unwrap_or_default();
    assert!(
        state.as_ref() == other.as_slice(),
        "a replaced 1 MiB state is not the new one"
    );

    save_ok(store, &id, state_write(2, b"small")).await;
    assert_eq!(
        load_ok(store, &id).await,
        Some((3, Bytes::from_static(b"small")))
    );
}

/// Sixteen tasks race compare-and-set on one key until each has won twenty times: every
/// version `1..=320` is won exactly once, and each win's outbox entry commits with it.
pub async fn concurrent_writers_on_one_key(store: Arc<dyn StateStore>) {
    const TASKS: u64 = 16;
    const WINS: u64 = 20;
    let kind = unique_kind("race");
    let id = ActorId::new(kind, "hot");

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            let mut attempt = 0u64;
            while (won.len() as u64) < WINS {
                attempt += 1;
                let expected = must(store.load(&id).await, "load").map_or(0, |r| r.version);
                let mut write = state_write(expected, format!("{task}:{attempt}").as_bytes());
                write.outbox.push(entry(
                    &format!("{}-{task}-{attempt}", id.kind),
                    "conf.race",
                    &(expected + 1).to_be_bytes(),
                ));
                match store.save(&id, write).await {
                    Ok(version) => {
                        assert_eq!(version, expected + 1);
                        won.push(version);
                    }
                    Err(error) if error.is_conflict() => {}
                    Err(error) => panic!("task {task}: save failed: {error:?}"),
                }
            }
            won
        }));
    }

    let mut versions = Vec::new();
    for task in tasks {
        let won = must(task.await, "racing task");
        assert!(
            won.windows(2).all(|pair| pair[0] < pair[1]),
            "a task won an older version"
        );
        versions.extend(won);
    }
    versions.sort_unstable();
    let all: Vec<u64> = (1..=TASKS * WINS).collect();
    assert_eq!(versions, all, "every version must be won exactly once");

    let (version, _) = load_ok(&*store, &id).await.unwrap_or_default();
    assert_eq!(version, TASKS * WINS);

    let pending = pending_of(&*store, kind).await;
    let committed: Vec<u64> = pending
        .iter()
        .map(|event| {
            let bytes: [u8; 8] = event.entry.payload.as_ref().try_into().unwrap_or_default();
            u64::from_be_bytes(bytes)
        })
        .collect();
    assert_eq!(
        committed, all,
        "exactly the winning saves' entries must be pending, in commit order"
    );
    must(store.outbox_ack(&pending).await, "outbox_ack (cleanup)");
}

/// Members: an upsert inserts or replaces by node id, unconditionally.
pub async fn members_upsert_and_list(store: &dyn StateStore) {
    let prefix = format!("conf-node-{}", unique_suffix());
    let member = |n: u32, incarnation: u64, status: MemberStatus, heartbeat_ms: u64| MemberRecord {
        node_id: format!("{prefix}-{n}"),
        incarnation,
        cluster_addr: format!("10.0.0.{n}:7000"),
        http_addr: format!("10.0.0.{n}:8080"),
        status,
        heartbeat_ms,
    };
    let mine = |members: Vec<MemberRecord>| -> BTreeMap<String, MemberRecord> {
        let mut mine = BTreeMap::new();
        for record in members {
            if record.node_id.starts_with(&prefix) {
                let previous = mine.insert(record.node_id.clone(), record);
                assert!(previous.is_none(), "a node id is listed twice");
            }
        }
        mine
    };

    let one = member(1, 1, MemberStatus::Joining, 1_000);
    let two = member(2, 7, MemberStatus::Up, 1_001);
    must(store.upsert_member(&one).await, "upsert_member");
    must(store.upsert_member(&two).await, "upsert_member");
    let listed = mine(must(store.list_members().await, "list_members"));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[&one.node_id], one);
    assert_eq!(listed[&two.node_id], two);

    let one_up = member(1, 1, MemberStatus::Up, 2_000);
    must(
        store.upsert_member(&one_up).await,
        "upsert_member (heartbeat)",
    );
    let listed = mine(must(store.list_members().await, "list_members"));
    assert_eq!(
        listed.len(),
        2,
        "an upsert of a known node must replace its row"
    );
    assert_eq!(listed[&one.node_id], one_up);

    // Unconditional: even an older-looking row replaces the current one.
    let one_older = member(1, 0, MemberStatus::Leaving, 10);
    must(
        store.upsert_member(&one_older).await,
        "upsert_member (older)",
    );
    let leaving = member(2, 7, MemberStatus::Down, 3_000);
    must(store.upsert_member(&leaving).await, "upsert_member (down)");
    let listed = mine(must(store.list_members().await, "list_members"));
    assert_eq!(listed[&one.node_id], one_older);
    assert_eq!(listed[&two.node_id], leaving);
}

/// Members: a removal applies only to the row that still holds the given incarnation.
pub async fn members_removed_only_under_their_incarnation(store: &dyn StateStore) {
    let prefix = format!("conf-gone-{}", unique_suffix());
    let member = |n: u32, incarnation: u64| MemberRecord {
        node_id: format!("{prefix}-{n}"),
        incarnation,
        cluster_addr: format!("10.0.1.{n}:7000"),
        http_addr: format!("10.0.1.{n}:8080"),
        status: MemberStatus::Down,
        heartbeat_ms: 5_000 + u64::from(n),
    };
    let mine = |members: Vec<MemberRecord>| -> BTreeMap<String, MemberRecord> {
        members
            .into_iter()
            .filter(|record| record.node_id.starts_with(&prefix))
            .map(|record| (record.node_id.clone(), record))
            .collect()
    };
    let gone = member(1, 7);
    let newer_life = member(2, 1_700_000_000_123);
    let other = member(3, 3);
    for record in [&gone, &newer_life, &other] {
        must(store.upsert_member(record).await, "upsert_member");
    }

    let removed = must(
        store.remove_member(&gone.node_id, gone.incarnation).await,
        "remove_member (matching incarnation)",
    );
    assert!(removed, "the row holding the incarnation must be removed");
    let kept = must(
        store
            .remove_member(&newer_life.node_id, newer_life.incarnation - 1)
            .await,
        "remove_member (a former incarnation)",
    );
    assert!(!kept, "a row of another incarnation must be left alone");
    let kept = must(
        store
            .remove_member(&newer_life.node_id, newer_life.incarnation + 1)
            .await,
        "remove_member (a later incarnation)",
    );
    assert!(!kept, "a row of another incarnation must be left alone");
    let again = must(
        store.remove_member(&gone.node_id, gone.incarnation).await,
        "remove_member (already removed)",
    );
    assert!(!again, "removing a removed row must be Ok(false)");
    let missing = must(
        store.remove_member(&format!("{prefix}-never"), 1).await,
        "remove_member (no such row)",
    );
    assert!(!missing, "removing a missing row must be Ok(false)");

    let listed = mine(must(store.list_members().await, "list_members"));
    assert!(
        !listed.contains_key(&gone.node_id),
        "a removed row is still listed"
    );
    assert_eq!(listed.get(&newer_life.node_id), Some(&newer_life));
    assert_eq!(listed.get(&other.node_id), Some(&other));
    assert_eq!(listed.len(), 2);

    // The node id is free again: its next life's heartbeat lands as usual.
    let next_life = member(1, 8);
    must(
        store.upsert_member(&next_life).await,
        "upsert_member (after removal)",
    );
    let listed = mine(must(store.list_members().await, "list_members"));
    assert_eq!(listed.get(&gone.node_id), Some(&next_life));
    for record in [&next_life, &newer_life, &other] {
        let removed = must(
            store
                .remove_member(&record.node_id, record.incarnation)
                .await,
            "remove_member (cleanup)",
        );
        assert!(removed, "cleanup of {}", record.node_id);
    }
}

/// Leases: compare-and-set on the epoch; each claim adds one and names the new owner.
pub async fn leases_are_compare_and_set(store: &dyn StateStore) {
    let suffix = unique_suffix();
    let owner_a = format!("conf-lease-a-{suffix}");
    let owner_b = format!("conf-lease-b-{suffix}");
    let start = (suffix.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    }) % u32::from(SHARD_COUNT)) as Shard;

    let current = |leases: &[Lease], shard: Shard| -> Option<Lease> {
        let rows: Vec<&Lease> = leases.iter().filter(|lease| lease.shard == shard).collect();
        assert!(
            rows.len() <= 1,
            "shard {shard} has {} lease rows",
            rows.len()
        );
        rows.first().map(|lease| (*lease).clone())
    };
    let leases = must(store.list_leases().await, "list_leases");
    for lease in &leases {
        assert!(
            lease.shard < SHARD_COUNT,
            "lease of shard {} out of range",
            lease.shard
        );
        assert!(lease.epoch >= 1, "a lease row has epoch {}", lease.epoch);
    }
    let used: BTreeSet<Shard> = leases.iter().map(|lease| lease.shard).collect();

    // A never-leased shard, when the (possibly shared) store still has one.
    let fresh = (0..SHARD_COUNT)
        .map(|offset| (start + offset) % SHARD_COUNT)
        .find(|shard| !used.contains(shard));
    let (shard, epoch) = match fresh {
        Some(shard) => {
            must_conflict(
                store.claim_lease(shard, &owner_a, 1).await,
                "claim of a never-leased shard under epoch 1",
            );
            let lease = must(store.claim_lease(shard, &owner_a, 0).await, "first claim");
            assert_eq!(
                lease,
                Lease {
                    shard,
                    owner: owner_a.clone(),
                    epoch: 1
                }
            );
            (shard, 1)
        }
        None => {
            let epoch = current(&leases, start).map_or(0, |lease| lease.epoch);
            let lease = must(store.claim_lease(start, &owner_a, epoch).await, "claim");
            assert_eq!(lease.epoch, epoch + 1);
            (start, epoch + 1)
        }
    };
    let listed = must(store.list_leases().await, "list_leases");
    assert_eq!(
        current(&listed, shard),
        Some(Lease {
            shard,
            owner: owner_a.clone(),
            epoch
        })
    );

    must_conflict(
        store.claim_lease(shard, &owner_b, epoch - 1).await,
        "claim under a stale epoch",
    );
    must_conflict(
        store.claim_lease(shard, &owner_b, epoch + 1).await,
        "claim under a future epoch",
    );
    let listed = must(store.list_leases().await, "list_leases");
    assert_eq!(
        current(&listed, shard).map(|lease| (lease.owner, lease.epoch)),
        Some((owner_a.clone(), epoch)),
        "a conflicting claim changed the lease"
    );

    let moved = must(
        store.claim_lease(shard, &owner_b, epoch).await,
        "claim by B",
    );
    assert_eq!(
        moved,
        Lease {
            shard,
            owner: owner_b.clone(),
            epoch: epoch + 1
        }
    );
    must_conflict(
        store.claim_lease(shard, &owner_a, epoch).await,
        "the old owner's claim under its old epoch",
    );
    let renewed = must(
        store.claim_lease(shard, &owner_b, epoch + 1).await,
        "renewal by B",
    );
    assert_eq!(renewed.epoch, epoch + 2);
    assert_eq!(renewed.owner, owner_b);
    let listed = must(store.list_leases().await, "list_leases");
    assert_eq!(current(&listed, shard), Some(renewed));
}

/// Runs the whole conformance suite as tests: `state_store_conformance!(factory)`, where
/// `factory` names an `async fn() -> Option<Arc<dyn StateStore>>` visible from the invoking
/// module. Expands to `mod state_store_conformance` with one multi-threaded `#[tokio::test]`
/// per case; a case whose factory returns `None` returns early (the factory has already said
/// why, see [`service_unavailable`]).
#[macro_export]
macro_rules! state_store_conformance {
    ($factory:path) => {
        mod state_store_conformance {
            #[allow(unused_imports)]
            use super::*;

            $crate::__state_store_conformance_cases! {
                $factory;
                by_ref:
                    load_absent_is_none,
                    save_creates_then_bumps_version,
                    stale_version_conflicts_and_applies_nothing,
                    create_over_existing_conflicts,
                    delete_is_compare_and_set,
                    delete_removes_reminders_and_outbox,
                    list_keys_orders_pages_and_isolates_kinds,
                    outbox_commits_with_state,
                    every_mix_of_effects_commits_with_state,
                    outbox_ack_is_exact_and_idempotent,
                    outbox_order_is_commit_order,
                    outbox_pending_in_isolates_shards,
                    outbox_pending_in_limits_never_skip,
                    outbox_pending_in_forgets_acked_and_deleted,
                    reminders_set_replace_cancel,
                    reminders_listed_by_shard,
                    large_value_round_trips,
                    members_upsert_and_list,
                    members_removed_only_under_their_incarnation,
                    leases_are_compare_and_set;
                by_arc:
                    concurrent_writers_on_one_key;
            }
        }
    };
}

/// The body of [`state_store_conformance!`]: one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __state_store_conformance_cases {
    ($factory:path; by_ref: $($case:ident),+; by_arc: $($arc_case:ident),+;) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store): ::std::option::Option<
                    ::std::sync::Arc<dyn $crate::StateStore>,
                > = $factory().await
                else {
                    return;
                };
                $crate::store::conformance::$case(&*store).await;
            }
        )+
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $arc_case() {
                let Some(store): ::std::option::Option<
                    ::std::sync::Arc<dyn $crate::StateStore>,
                > = $factory().await
                else {
                    return;
                };
                $crate::store::conformance::$arc_case(store).await;
            }
        )+
    };
}
