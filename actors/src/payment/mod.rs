//! The payment gateway port: what the checkout saga and the orders need from a card
//! processor, and [`TestGateway`], the built-in one behaving like a processor's test mode.
//!
//! Every operation is idempotent by a key chosen by the caller, so a call whose answer was
//! lost (a timeout) can be repeated safely. Callers keep only the payment *reference* the
//! gateway returns, never card data or tokens.
//!
//! # Unknown outcomes
//! An authorization that times out may or may not have happened at the processor. The
//! caller treats it as unknown and voids *by the authorization's idempotency key*
//! ([`PaymentGateway::void`]): that voids the authorization if it exists and otherwise
//! leaves a tombstone, so an authorization arriving late under that key is refused.
//!
//! A void and a capture of one payment cannot both win, so voiding by key also settles a
//! capture whose answer was lost: refused means it was captured
//! ([`PaymentGateway::authorization`] then gives its record). The checkout saga's pivot is
//! the capture for that reason.

mod test_gateway;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use emporium_runtime::Runtime;
use serde::{Deserialize, Serialize};

use crate::values::Currency;

pub use test_gateway::{
    PaymentActor, PaymentCommand, PaymentReply, TOKEN_APPROVED, TOKEN_DECLINED, TOKEN_TIMEOUT,
    TestCard, TestGateway,
};

/// What to authorize.
#[derive(Clone)]
pub struct AuthorizeRequest {
    /// Same key, same authorization: retries never authorize twice.
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub currency: Currency,
    /// The card token from the client. Passed through, never stored.
    pub token: String,
}

impl fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("idempotency_key", &self.idempotency_key)
            .field("amount_cents", &self.amount_cents)
            .field("currency", &self.currency)
            .field("token", &"***")
            .finish()
    }
}

/// The answer to an authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authorization {
    /// The amount is held on the card; `reference` names the payment from now on.
    Approved { reference: String },
    /// The processor said no. `code` is machine-readable (`card_declined`, `invalid_token`).
    Declined { code: String, message: String },
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Nothing happened under this key yet.
    #[default]
    None,
    Declined,
    Authorized,
    Captured,
    /// Authorization released without charging (or voided before it ever arrived).
    Voided,
    /// Captured, then (partly or fully) refunded.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Declined => "declined",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
        }
    }
}

/// One operation applied to a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOperation {
    /// `authorize`, `capture`, `void`, `refund`.
    pub kind: String,
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub at_ms: u64,
}

/// What the gateway knows of one payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub reference: String,
    pub status: PaymentStatus,
    pub amount_cents: i64,
    pub currency: Currency,
    pub captured_cents: i64,
    pub refunded_cents: i64,
    /// Operations actually applied, in order (retries of one key appear once).
    pub operations: Vec<PaymentOperation>,
}

/// Why a gateway call gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PaymentError {
    /// No answer: the outcome is unknown. Retry with the same key, or void by key.
    #[error("the payment provider did not answer: {0}")]
    Unavailable(String),
    /// The operation does not apply to the payment as it stands (capture of a voided
    /// authorization, refund beyond the captured amount, unknown reference).
    #[error("payment operation refused: {0}")]
    Refused(String),
}

/// A card processor.
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Hold `amount_cents` on the card.
    async fn authorize(&self, request: AuthorizeRequest) -> Result<Authorization, PaymentError>;

    /// Charge the authorized amount.
    async fn capture(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<PaymentRecord, PaymentError>;

    /// Release the authorization made with `authorize_key`, whether or not it arrived.
    /// Refused once captured (refund instead).
    async fn void(&self, authorize_key: &str) -> Result<PaymentRecord, PaymentError>;

    /// Give back up to the captured amount.
    async fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<PaymentRecord, PaymentError>;

    /// The payment named by `reference`, if the gateway knows it.
    async fn retrieve(&self, reference: &str) -> Result<Option<PaymentRecord>, PaymentError>;

    /// The payment authorized under `authorize_key`, if the gateway knows it: how a caller
    /// whose void by that key was refused (the money was captured) learns the payment's
    /// reference without the card token, which it never keeps.
    async fn authorization(
        &self,
        authorize_key: &str,
    ) -> Result<Option<PaymentRecord>, PaymentError>;
}

/// Which gateway a node uses.
#[derive(Clone, Default)]
pub enum PaymentProvider {
    /// The built-in [`TestGateway`], whose records are `payment` actors of this runtime.
    #[default]
    Test,
    /// Any other implementation of the port.
    Gateway(Arc<dyn PaymentGateway>),
}

impl PaymentProvider {
    /// The gateway, bound to `runtime` (which the test gateway keeps its records in).
    pub fn gateway(&self, runtime: &Runtime) -> Arc<dyn PaymentGateway> {
        match self {
            Self::Test => Arc::new(TestGateway::new(runtime.clone())),
            Self::Gateway(gateway) => Arc::clone(gateway),
        }
    }
}

/// Run a gateway call under `deadline`; running out is an unknown outcome.
pub async fn within<T>(
    deadline: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, PaymentError>>,
) -> Result<T, PaymentError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(PaymentError::Unavailable(format!(
                "no answer within {deadline:?}"
            )))
        })
}
