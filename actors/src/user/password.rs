//! Password hashing: argon2id, PHC strings with a random salt.
//!
//! Hashing and verifying take tens of milliseconds of CPU and ~19 MiB of memory each (the
//! `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1). They never run inside an actor turn
//! nor on the async executor: [`hash`] and [`verify`] run them on the blocking pool, at most
//! one per core at a time, so a burst of logins queues instead of starving the node. The
//! permit travels with the blocking job, so a request that gives up while its job runs
//! does not let another job start early.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use super::UserError;
use super::values::Password;

/// An argon2id PHC string (`$argon2id$v=19$m=…$salt$hash`). `Debug` hides it; it has no
/// `Display`: it is only stored and verified, never shown.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The hash of a password nobody knows, made with the default parameters: verifying an
/// unknown account's login against it costs what a real verification costs, so the answer
/// time does not tell whether the e-mail has an account.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$6O5JwMiSKd43Qj+Ew8t+dA$DOx6lIz5Tz1KCiJ7oA/iHAZR4v6+o6o+ZBO1r2AhAUI";

fn permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            Arc::new(Semaphore::new(cores))
        })
        .clone()
}

async fn on_blocking_pool<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    let permit = permits()
        .acquire_owned()
        .await
        .map_err(|_| UserError::Internal("the password hasher is closed".to_owned()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .map_err(|error| UserError::Internal(format!("password hashing task failed: {error}")))
}

fn hash_now(password: &Password) -> Result<PasswordHash, UserError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|phc| PasswordHash(phc.to_string()))
        .map_err(|error| UserError::Internal(format!("cannot hash a password: {error}")))
}

fn verify_now(password: &Password, hash: &str) -> bool {
    match Phc::new(hash) {
        Ok(phc) => Argon2::default()
            .verify_password(password.expose().as_bytes(), &phc)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash cannot be parsed");
            false
        }
    }
}

/// Hash `password` with a fresh random salt, on the blocking pool.
pub async fn hash(password: &Password) -> Result<PasswordHash, UserError> {
    let password = password.clone();
    on_blocking_pool(move || hash_now(&password)).await?
}

/// Whether `password` matches `hash`, on the blocking pool. With no hash (no such account)
/// a dummy verification runs anyway and the answer is `false`.
pub async fn verify(password: &Password, hash: Option<&PasswordHash>) -> Result<bool, UserError> {
    let password = password.clone();
    let (hash, real) = match hash {
        Some(hash) => (hash.0.clone(), true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    let matches = on_blocking_pool(move || verify_now(&password, &hash)).await?;
    Ok(matches && real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify() {
        let password = Password::new("correct horse battery").unwrap();
        let first = hash(&password).await.unwrap();
        let second = hash(&password).await.unwrap();
        assert!(first.0.starts_with("$argon2id$v=19$"), "PHC argon2id");
        assert_ne!(first, second, "random salt");
        assert!(verify(&password, Some(&first)).await.unwrap());
        let wrong = Password::presented("correct horse battery!");
        assert!(!verify(&wrong, Some(&first)).await.unwrap());
        assert_eq!(format!("{first:?}"), "PasswordHash(***)");
    }

    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = Phc::new(DUMMY_HASH).unwrap();
        let real = hash(&Password::new("whatever-it-is").unwrap())
            .await
            .unwrap();
        let real = Phc::new(&real.0).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params, "same cost parameters");
        let password = Password::presented("anything at all");
        assert!(!verify(&password, None).await.unwrap());
    }

    #[tokio::test]
    async fn an_unparsable_stored_hash_never_matches() {
        let password = Password::presented("anything at all");
        let broken = PasswordHash("not a phc string".to_owned());
        assert!(!verify(&password, Some(&broken)).await.unwrap());
    }
}
