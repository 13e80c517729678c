//! Everything the embedded store acknowledged is there after it is dropped and reopened, and
//! the outbox sequence carries on where it stopped (it is persisted, not rebuilt).

use bytes::Bytes;
use emporium_runtime::store::{
    MemberRecord, MemberStatus, OutboxEntry, ReminderChange, StateWrite,
};
use emporium_runtime::{ActorId, StateStore, shard_of_id};
use emporium_store_embedded::EmbeddedStore;

fn entry(event_id: &str) -> OutboxEntry {
    OutboxEntry {
        event_id: event_id.to_owned(),
        topic: "emporium.test".to_owned(),
        payload: Bytes::from(event_id.as_bytes().to_vec()),
    }
}

/// The ids of `actor`'s entries in `pending`, in the order listed (the port promises commit
/// order within one actor, none across actors).
fn pending_ids<'a>(
    pending: &'a [emporium_runtime::store::PendingEvent],
    actor: &ActorId,
) -> Vec<&'a str> {
    pending
        .iter()
        .filter(|event| event.actor == *actor)
        .map(|event| event.entry.event_id.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_and_outbox_sequence_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/node-1/state.redb");
    let order = ActorId::new("order", "o-1");
    let cart = ActorId::new("cart", "c-1");
    let member = MemberRecord {
        node_id: "node-1".to_owned(),
        incarnation: 3,
        cluster_addr: "127.0.0.1:7000".to_owned(),
        http_addr: "127.0.0.1:8080".to_owned(),
        status: MemberStatus::Up,
        heartbeat_ms: 42,
    };

    {
        let store = EmbeddedStore::open(&path).unwrap();
        let write = StateWrite {
            expected_version: 0,
            state: Bytes::from_static(b"placed"),
            outbox: vec![entry("e1"), entry("e2")],
            reminders: vec![ReminderChange::Set {
                name: "expire".to_owned(),
                due_at_ms: 99,
            }],
        };
        assert_eq!(store.save(&order, write).await.unwrap(), 1);
        let write = StateWrite {
            expected_version: 0,
            state: Bytes::from_static(b"cart"),
            outbox: vec![entry("c1")],
            reminders: Vec::new(),
        };
        store.save(&cart, write).await.unwrap();
        // Acknowledge the newest entry: a sequence rebuilt from the highest remaining row
        // would hand out c1's sequence again.
        let pending = store.outbox_pending(10).await.unwrap();
        assert_eq!(pending.len(), 3);
        assert_eq!(pending_ids(&pending, &order), ["e1", "e2"]);
        let (newest, _): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|event| event.actor == cart);
        assert_eq!(pending_ids(&newest, &cart), ["c1"]);
        store.outbox_ack(&newest).await.unwrap();
        store.upsert_member(&member).await.unwrap();
        store.claim_lease(7, "node-1", 0).await.unwrap();
    }

    let store = EmbeddedStore::open(&path).unwrap();
    let record = store.load(&order).await.unwrap().unwrap();
    assert_eq!(
        (record.version, record.state),
        (1, Bytes::from_static(b"placed"))
    );
    assert_eq!(store.list_keys("order", None, 10).await.unwrap(), ["o-1"]);
    let reminders = store.list_reminders(shard_of_id(&order)).await.unwrap();
    assert_eq!(reminders.len(), 1);
    assert_eq!(
        (reminders[0].name.as_str(), reminders[0].due_at_ms),
        ("expire", 99)
    );
    assert_eq!(store.list_members().await.unwrap(), [member]);
    let leases = store.list_leases().await.unwrap();
    assert_eq!((leases[0].shard, leases[0].epoch), (7, 1));

    let write = StateWrite {
        expected_version: 1,
        state: Bytes::from_static(b"paid"),
        outbox: vec![entry("e3")],
        reminders: Vec::new(),
    };
    assert_eq!(store.save(&order, write).await.unwrap(), 2);
    let write = StateWrite {
        expected_version: 1,
        state: Bytes::from_static(b"cart 2"),
        outbox: vec![entry("c2")],
        reminders: Vec::new(),
    };
    store.save(&cart, write).await.unwrap();
    let pending = store.outbox_pending(10).await.unwrap();
    assert_eq!(pending.len(), 4);
    assert_eq!(
        pending_ids(&pending, &order),
        ["e1", "e2", "e3"],
        "entries written after the reopen must come after the ones before it"
    );
    assert_eq!(pending_ids(&pending, &cart), ["c2"]);
    store.outbox_ack(&pending).await.unwrap();
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_second_open_of_a_file_in_use_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let _first = EmbeddedStore::open(&path).unwrap();
    let error = EmbeddedStore::open(&path)
        .err()
        .expect("a second open must fail");
    assert!(!error.is_conflict(), "{error}");
}
