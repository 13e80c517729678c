//! The event ids a bucket has applied: a bounded FIFO of 64-bit hashes.
//!
//! Why hashes: an id (`kind:key:version:index`) is 20–80 bytes, a hash 8, and the bucket's
//! state is rewritten on every commit. Two distinct ids colliding among 8192 remembered ones
//! has a probability around 2⁻³⁸ per event: negligible next to the bound itself.
//!
//! Why a FIFO: the state must stay bounded however busy the hour. Only the last `capacity`
//! ids are remembered; a redelivery of an older event would be applied again. Stored as one
//! base64 string of big-endian hashes, oldest first (about 11 bytes per id in JSON, against
//! about 20 for a number array).

use std::collections::{HashSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many event ids a bucket remembers unless configured otherwise.
pub const DEFAULT_DEDUP_CAPACITY: usize = 8192;

/// The remembered ids, oldest first, with a set for constant-time lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenIds {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl SeenIds {
    /// Whether `id` is among the remembered ids.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&hash(id))
    }

    /// Remember `id`, forgetting the oldest ids beyond `capacity` (at least 1). `false` when
    /// it was already remembered (nothing changes then).
    pub fn insert(&mut self, id: &str, capacity: usize) -> bool {
        let hash = hash(id);
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        while self.order.len() > capacity.max(1) {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Serialize for SeenIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self
            .order
            .iter()
            .flat_map(|hash| hash.to_be_bytes())
            .collect();
        serializer.serialize_str(&STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for SeenIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = STANDARD.decode(text).map_err(D::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(D::Error::custom(
                "seen ids: not a whole number of 8-byte hashes",
            ));
        }
        let mut seen = Self::default();
        for chunk in bytes.chunks_exact(8) {
            let mut hash = [0; 8];
            hash.copy_from_slice(chunk);
            let hash = u64::from_be_bytes(hash);
            if seen.set.insert(hash) {
                seen.order.push_back(hash);
            }
        }
        Ok(seen)
    }
}

/// 64-bit FNV-1a: stable across Rust versions and platforms (unlike `std`'s hasher), which
/// stored hashes must be.
fn hash(id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    id.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_ids_up_to_the_capacity() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a", 2));
        assert!(!seen.insert("a", 2), "already seen");
        assert!(seen.insert("b", 2));
        assert!(seen.insert("c", 2));
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains("a"), "the oldest is forgotten");
        assert!(seen.contains("b") && seen.contains("c"));
    }

    #[test]
    fn round_trips_as_a_compact_string() {
        let mut seen = SeenIds::default();
        for i in 0..100 {
            seen.insert(&format!("order:o-{i}:1:0"), 8192);
        }
        let json = serde_json::to_string(&seen).unwrap();
        assert!(json.len() < 100 * 12, "{} bytes", json.len());
        let back: SeenIds = serde_json::from_str(&json).unwrap();
        assert_eq!(back, seen);
        assert!(back.contains("order:o-42:1:0"));
        assert!(serde_json::from_str::<SeenIds>("\"AAAA\"").is_err());
    }
}
