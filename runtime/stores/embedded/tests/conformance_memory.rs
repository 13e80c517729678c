//! The StateStore conformance suite against the in-memory twin.
//!
//! It lives here because the suite sits behind the runtime's `conformance` feature, which the
//! runtime crate cannot enable for its own tests. All cases share ONE store, the way adapter
//! suites share one database: this also checks that the suite tolerates a shared store.

use std::sync::{Arc, OnceLock};

use emporium_runtime::StateStore;
use emporium_runtime::store::MemoryStore;

async fn shared_memory_store() -> Option<Arc<dyn StateStore>> {
    static STORE: OnceLock<Arc<MemoryStore>> = OnceLock::new();
    let store: Arc<dyn StateStore> = STORE.get_or_init(|| Arc::new(MemoryStore::new())).clone();
    Some(store)
}

emporium_runtime::state_store_conformance!(shared_memory_store);
