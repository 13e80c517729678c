//! Actor identity: an actor is `(kind, key)`, e.g. `("cart", "c-7f3a…")`.
//!
//! Kinds are registered statically by the domain (`VirtualActor::KIND`), so a kind is a
//! `&'static str`; keys are arbitrary caller-chosen strings. Identity is all a caller ever
//! holds: where the actor lives and whether it is active is the runtime's business.

use std::fmt;
use std::sync::{Mutex, PoisonError};

/// The identity of one virtual actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    pub kind: &'static str,
    pub key: String,
}

impl ActorId {
    pub fn new(kind: &'static str, key: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.into(),
        }
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.key)
    }
}

/// Map a kind read back as text (from a store row or a wire envelope) to its `&'static str`.
///
/// Each distinct kind is leaked once; kinds are a small fixed set chosen by the domain, so
/// the leak is bounded. Adapters call this instead of keeping kind tables of their own.
pub fn intern_kind(kind: &str) -> &'static str {
    static KINDS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut kinds = KINDS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = kinds.iter().find(|known| **known == kind) {
        return known;
    }
    let leaked: &'static str = Box::leak(kind.to_owned().into_boxed_str());
    kinds.push(leaked);
    leaked
}
