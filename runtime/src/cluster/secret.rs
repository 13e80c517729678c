//! The cluster secret's fingerprint in the shared store: every node of a cluster must prove
//! the same secret, so a misconfigured node refuses to start rather than claim shards it
//! could not be reached for.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::ClusterError;
use crate::identity::ActorId;
use crate::store::{StateStore, StateWrite, StoreError};

/// Where the fingerprint of the cluster secret is kept (a record no actor kind can name).
const SECRET_RECORD: (&str, &str) = ("$cluster", "secret");

/// Record this cluster's secret fingerprint on first start; refuse a different one later.
pub(super) async fn check_secret(store: &dyn StateStore, secret: &str) -> Result<(), ClusterError> {
    let record = ActorId::new(SECRET_RECORD.0, SECRET_RECORD.1);
    let fingerprint = secret_fingerprint(secret);
    for _attempt in 0..3 {
        match store.load(&record).await? {
            Some(stored) if stored.state.as_ref() == fingerprint.as_bytes() => return Ok(()),
            Some(_) => return Err(ClusterError::SecretMismatch),
            None => {
                let write = StateWrite {
                    expected_version: 0,
                    state: Bytes::from(fingerprint.clone().into_bytes()),
                    outbox: Vec::new(),
                    reminders: Vec::new(),
                };
                match store.save(&record, write).await {
                    Ok(_) => return Ok(()),
                    // Another node recorded one first: compare with it.
                    Err(error) if error.is_conflict() => continue,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Err(ClusterError::Store(StoreError::Other(
        "the cluster secret record keeps changing".to_owned(),
    )))
}

/// A salted hash: the store never holds the secret itself.
fn secret_fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(format!("emporium-cluster-secret/v1:{secret}").as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{{\"sha256\":\"{hex}\"}}")
}
