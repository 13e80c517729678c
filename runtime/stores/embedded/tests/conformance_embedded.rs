//! The StateStore conformance suite against the embedded store, one fresh file per case.

use std::sync::Arc;

use emporium_runtime::StateStore;
use emporium_runtime::store::conformance::Guarded;
use emporium_store_embedded::EmbeddedStore;

/// A store guarding the temporary directory holding its file: the store (which joins its
/// writer and closes the file) drops before the directory is removed.
async fn fresh_embedded_store() -> Option<Arc<dyn StateStore>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(&dir.path().join("state.redb")).expect("open embedded store");
    Some(Arc::new(Guarded::new(Arc::new(store), dir)))
}

emporium_runtime::state_store_conformance!(fresh_embedded_store);
