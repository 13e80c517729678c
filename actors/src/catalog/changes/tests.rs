//! The change log on the in-memory store, and followers keeping a second index in step.

use std::collections::BTreeMap;
use std::sync::Arc;

use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, StateStore};

use super::*;
use crate::catalog::{MemoryIndex, ProductActor, ProductDraft, SearchQuery};
use crate::values::Currency;

async fn runtime_with_window(store: Arc<dyn StateStore>, window: usize) -> Runtime {
    Runtime::builder(store)
        .register(ProductActor)
        .register(CatalogLogActor::new(window))
        .build()
        .await
        .expect("runtime starts")
}

fn sku(text: &str) -> Sku {
    Sku::parse(text).unwrap()
}

async fn ask(runtime: &Runtime, command: ChangeLogCommand) -> ChangeLogReply {
    runtime
        .actor::<CatalogLogActor>(LOG_KEY)
        .ask(command)
        .await
        .expect("the log answers")
}

async fn append(runtime: &Runtime, text: &str) -> u64 {
    match ask(runtime, ChangeLogCommand::Append(sku(text))).await {
        ChangeLogReply::Appended { seq } => seq,
        other => panic!("append answered {other:?}"),
    }
}

fn changes(skus: &[&str], next: u64, more: bool) -> ChangeLogReply {
    ChangeLogReply::Changes {
        skus: skus.iter().map(|text| sku(text)).collect(),
        next,
        more,
    }
}

#[tokio::test]
async fn appends_are_numbered_and_read_back_from_any_cursor() {
    let runtime = runtime_with_window(Arc::new(MemoryStore::new()), 100).await;
    assert_eq!(
        ask(&runtime, ChangeLogCommand::Head).await,
        ChangeLogReply::Head(0)
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(0)).await,
        changes(&[], 0, false),
        "an empty log has nothing new"
    );
    assert_eq!(append(&runtime, "SKU-A").await, 0);
    assert_eq!(append(&runtime, "SKU-B").await, 1);
    assert_eq!(append(&runtime, "SKU-A").await, 2);
    assert_eq!(
        ask(&runtime, ChangeLogCommand::Head).await,
        ChangeLogReply::Head(3)
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(0)).await,
        changes(&["SKU-A", "SKU-B", "SKU-A"], 3, false)
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(2)).await,
        changes(&["SKU-A"], 3, false)
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(3)).await,
        changes(&[], 3, false),
        "a reader at the head is up to date"
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(7)).await,
        ChangeLogReply::TooOld { head: 3 },
        "a cursor beyond the head (a reset log) means: rebuild"
    );
}

#[tokio::test]
async fn changes_out_of_the_window_are_too_old_and_the_log_survives_a_restart() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let runtime = runtime_with_window(store.clone(), 3).await;
    for (seq, text) in ["SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(append(&runtime, text).await, seq as u64);
    }
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(0)).await,
        ChangeLogReply::TooOld { head: 5 }
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(1)).await,
        ChangeLogReply::TooOld { head: 5 },
        "change 1 was dropped when change 4 came"
    );
    assert_eq!(
        ask(&runtime, ChangeLogCommand::ChangesSince(2)).await,
        changes(&["SKU-C", "SKU-D", "SKU-E"], 5, false),
        "the oldest kept change is still readable"
    );
    runtime.shutdown(Duration::from_secs(5)).await;

    let restarted = runtime_with_window(store, 3).await;
    assert_eq!(append(&restarted, "SKU-F").await, 5, "numbering goes on");
    assert_eq!(
        ask(&restarted, ChangeLogCommand::ChangesSince(3)).await,
        changes(&["SKU-D", "SKU-E", "SKU-F"], 6, false)
    );
}

#[test]
fn long_backlogs_come_in_bounded_replies() {
    let log = ChangeLog {
        first: 10,
        skus: (0..MAX_CHANGES_PER_REPLY + 5)
            .map(|i| sku(&format!("SKU-{i}")))
            .collect(),
    };
    let head = log.head();
    let ChangeLogReply::Changes { skus, next, more } = changes_since(&log, 10) else {
        panic!("a cursor in the window reads changes");
    };
    assert_eq!(skus.len(), MAX_CHANGES_PER_REPLY);
    assert_eq!(next, 10 + MAX_CHANGES_PER_REPLY as u64);
    assert!(more);
    let ChangeLogReply::Changes { skus, next, more } = changes_since(&log, next) else {
        panic!("the rest is readable");
    };
    assert_eq!(skus.len(), 5);
    assert_eq!(skus[4], sku(&format!("SKU-{}", MAX_CHANGES_PER_REPLY + 4)));
    assert_eq!((next, more), (head, false));
}

fn draft(name: &str) -> ProductDraft {
    ProductDraft {
        name: name.to_owned(),
        description: "Enamel, for camping".to_owned(),
        price_cents: 1200,
        currency: Currency::parse("EUR").unwrap(),
        category: "outdoor".to_owned(),
        attributes: BTreeMap::new(),
    }
}

async fn found(catalog: &Catalog, text: &str) -> Vec<String> {
    let page = catalog
        .search(&SearchQuery {
            text: Some(text.to_owned()),
            limit: 10,
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    page.items.into_iter().map(|product| product.name).collect()
}

/// Two nodes' catalogs: one store and runtime, an index each.
async fn two_catalogs(window: usize) -> (Catalog, Catalog) {
    let runtime = runtime_with_window(Arc::new(MemoryStore::new()), window).await;
    (
        Catalog::new(runtime.clone(), Arc::new(MemoryIndex::default())),
        Catalog::new(runtime, Arc::new(MemoryIndex::default())),
    )
}

#[tokio::test]
async fn an_upsert_through_one_catalog_is_searchable_in_the_other_after_one_step() {
    let (writer, reader) = two_catalogs(DEFAULT_WINDOW).await;
    let mut follower = CatalogFollower::at_head(reader.clone()).await;
    assert_eq!(reader.rebuild_index().await.unwrap(), 0);
    assert_eq!(follower.cursor(), Some(0));
    assert_eq!(
        follower.step().await.unwrap(),
        Followed::default(),
        "nothing changed yet"
    );

    writer
        .upsert(&sku("SKU-MUG"), draft("Camp Mug"))
        .await
        .unwrap();
    assert_eq!(found(&writer, "mug").await, ["Camp Mug"]);
    assert!(found(&reader, "mug").await.is_empty(), "not followed yet");
    let followed = follower.step().await.unwrap();
    assert_eq!(
        followed,
        Followed {
            applied: 1,
            rebuilt: false
        }
    );
    assert!(followed.changed());
    assert_eq!(found(&reader, "mug").await, ["Camp Mug"]);
    assert_eq!(follower.cursor(), Some(1));

    // A replacement and a second product, twice over: each indexed once, latest version.
    writer
        .upsert(&sku("SKU-MUG"), draft("Tin Mug"))
        .await
        .unwrap();
    writer
        .upsert(&sku("SKU-CUP"), draft("Camp Cup"))
        .await
        .unwrap();
    writer
        .upsert(&sku("SKU-MUG"), draft("Steel Mug"))
        .await
        .unwrap();
    assert_eq!(follower.step().await.unwrap().applied, 2);
    assert_eq!(found(&reader, "steel").await, ["Steel Mug"]);
    assert!(found(&reader, "tin").await.is_empty(), "replaced");
    assert_eq!(found(&reader, "cup").await, ["Camp Cup"]);
    assert_eq!(follower.step().await.unwrap(), Followed::default());
}

#[tokio::test]
async fn a_follower_out_of_the_window_rebuilds_its_index() {
    let (writer, reader) = two_catalogs(2).await;
    let mut follower = CatalogFollower::at_head(reader.clone()).await;
    for (text, name) in [
        ("SKU-A", "Alpha Mug"),
        ("SKU-B", "Beta Mug"),
        ("SKU-C", "Gamma Mug"),
    ] {
        writer.upsert(&sku(text), draft(name)).await.unwrap();
    }
    assert!(found(&reader, "mug").await.is_empty());
    assert_eq!(
        follower.step().await.unwrap(),
        Followed {
            applied: 0,
            rebuilt: true
        }
    );
    assert_eq!(
        found(&reader, "mug").await,
        ["Alpha Mug", "Beta Mug", "Gamma Mug"]
    );
    assert_eq!(follower.cursor(), Some(3), "following from the head again");
    writer
        .upsert(&sku("SKU-D"), draft("Delta Mug"))
        .await
        .unwrap();
    assert_eq!(follower.step().await.unwrap().applied, 1);
    assert_eq!(found(&reader, "delta").await, ["Delta Mug"]);
}

#[tokio::test]
async fn a_spawned_follower_reports_changes_until_stopped() {
    let (writer, reader) = two_catalogs(DEFAULT_WINDOW).await;
    let follower = CatalogFollower::at_head(reader.clone()).await;
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let following = follower.spawn(Duration::from_millis(10), move || {
        let changed_tx = changed_tx.clone();
        async move {
            let _ = changed_tx.send(());
        }
    });
    writer
        .upsert(&sku("SKU-MUG"), draft("Camp Mug"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changed.recv())
        .await
        .expect("the follower indexes the change")
        .expect("the follower is running");
    assert_eq!(found(&reader, "mug").await, ["Camp Mug"]);
    following.stop().await;
    assert!(
        changed.recv().await.is_none(),
        "a stopped follower drops its callback"
    );
}

#[tokio::test]
async fn an_upsert_succeeds_when_the_log_fails_and_its_change_is_appended_later() {
    // No log kind on this runtime: every append fails.
    let without_log = Runtime::builder(Arc::new(MemoryStore::new()))
        .register(ProductActor)
        .build()
        .await
        .unwrap();
    let catalog = Catalog::new(without_log, Arc::new(MemoryIndex::default()));
    let upserted = catalog
        .upsert(&sku("SKU-MUG"), draft("Camp Mug"))
        .await
        .expect("the write does not depend on the log");
    assert!(upserted.created);
    assert_eq!(found(&catalog, "mug").await, ["Camp Mug"]);
    assert_eq!(
        lock(&catalog.unlogged).iter().collect::<Vec<_>>(),
        [&sku("SKU-MUG")]
    );
    let mut follower = CatalogFollower::at_head(catalog.clone()).await;
    assert!(follower.step().await.is_err(), "the log is still missing");
    assert_eq!(lock(&catalog.unlogged).len(), 1, "kept for the next step");

    // With a log: a change whose append failed reaches the other node at the writer's
    // next follow step.
    let (writer, reader) = two_catalogs(DEFAULT_WINDOW).await;
    let mut writes = CatalogFollower::at_head(writer.clone()).await;
    let mut reads = CatalogFollower::at_head(reader.clone()).await;
    writer
        .runtime
        .actor::<ProductActor>("SKU-CUP")
        .ask(crate::catalog::ProductCommand::Upsert(draft("Camp Cup")))
        .await
        .unwrap()
        .unwrap();
    lock(&writer.unlogged).insert(sku("SKU-CUP"));
    assert_eq!(reads.step().await.unwrap(), Followed::default());
    assert_eq!(writes.step().await.unwrap().applied, 1);
    assert!(lock(&writer.unlogged).is_empty());
    assert_eq!(reads.step().await.unwrap().applied, 1);
    assert_eq!(found(&reader, "cup").await, ["Camp Cup"]);
}

#[test]
fn log_commands_and_replies_cross_the_wire() {
    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        value: T,
    ) {
        let encoded = serde_json::to_string(&value).unwrap();
        assert_eq!(
            serde_json::from_str::<T>(&encoded).unwrap(),
            value,
            "{encoded}"
        );
    }
    round_trip(ChangeLogCommand::Append(sku("SKU-A")));
    round_trip(ChangeLogCommand::ChangesSince(u64::MAX));
    round_trip(ChangeLogCommand::Head);
    round_trip(ChangeLogReply::Appended { seq: 7 });
    round_trip(changes(&["SKU-A", "SKU-B"], 9, true));
    round_trip(ChangeLogReply::TooOld { head: 3 });
    round_trip(ChangeLogReply::Head(0));
    let bad = r#"{"Changes":{"skus":["not a sku!"],"next":1,"more":false}}"#;
    assert!(
        serde_json::from_str::<ChangeLogReply>(bad).is_err(),
        "SKUs are checked again when decoded"
    );
}
