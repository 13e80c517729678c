//! The built-in test gateway: a card processor's test mode, with durable records.
//!
//! Tokens decide the outcome, like a processor's test cards:
//! - [`TOKEN_APPROVED`] (`tok_visa`) authorizes;
//! - [`TOKEN_DECLINED`] (`tok_chargeDeclined`) is declined (`card_declined`);
//! - [`TOKEN_TIMEOUT`] (`tok_timeout`) authorizes at the "processor", but the answer never
//!   comes back: the call hangs until the caller's deadline. The caller must treat it as
//!   unknown and void by key;
//! - anything else is declined as `invalid_token`.
//!
//! Each payment is a `payment` actor keyed by the authorization's idempotency key, so
//! records and idempotency survive restarts. The reference of a payment is `pay_<key>`.

use std::time::Duration;

use async_trait::async_trait;
use emporium_runtime::{Runtime, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use super::{
    Authorization, AuthorizeRequest, PaymentError, PaymentGateway, PaymentOperation, PaymentRecord,
    PaymentStatus,
};
use crate::values::Currency;

pub const TOKEN_APPROVED: &str = "tok_visa";
pub const TOKEN_DECLINED: &str = "tok_chargeDeclined";
pub const TOKEN_TIMEOUT: &str = "tok_timeout";

/// How long a `tok_timeout` call hangs when its caller set no deadline of its own.
const HANG: Duration = Duration::from_secs(3600);

const REFERENCE_PREFIX: &str = "pay_";

/// What a test token does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestCard {
    Approve,
    Decline,
    /// Approved, answer lost.
    LostAnswer,
    Invalid,
}

impl TestCard {
    fn of(token: &str) -> Self {
        match token {
            TOKEN_APPROVED => Self::Approve,
            TOKEN_DECLINED => Self::Decline,
            TOKEN_TIMEOUT => Self::LostAnswer,
            _ => Self::Invalid,
        }
    }
}

/// One payment's stored record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub amount_cents: i64,
    pub currency: Currency,
    pub captured_cents: i64,
    pub refunded_cents: i64,
    /// `(code, message)` of a declined authorization.
    pub decline: Option<(String, String)>,
    pub operations: Vec<PaymentOperation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    Authorize {
        amount_cents: i64,
        currency: Currency,
        card: TestCard,
    },
    Capture {
        amount_cents: i64,
        idempotency_key: String,
    },
    Void,
    Refund {
        amount_cents: i64,
        idempotency_key: String,
    },
    Get,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentReply {
    Authorization(Authorization),
    Record(Result<PaymentRecord, PaymentError>),
    Found(Option<PaymentRecord>),
}

/// The `payment` actor kind: the test gateway's records.
pub struct PaymentActor;

impl VirtualActor for PaymentActor {
    const KIND: &'static str = "payment";
    type State = PaymentState;
    type Command = PaymentCommand;
    type Reply = PaymentReply;

    fn is_read(command: &PaymentCommand) -> bool {
        matches!(command, PaymentCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: PaymentCommand,
    ) -> Result<PaymentReply, RuntimeError> {
        let now_ms = turn.now_ms();
        let key = turn.key().to_owned();
        Ok(match command {
            PaymentCommand::Get => PaymentReply::Found(
                (turn.state().status != PaymentStatus::None || !turn.state().operations.is_empty())
                    .then(|| record(turn)),
            ),
            PaymentCommand::Authorize {
                amount_cents,
                currency,
                card,
            } => PaymentReply::Authorization(authorize(turn, amount_cents, currency, card, now_ms)),
            PaymentCommand::Capture {
                amount_cents,
                idempotency_key,
            } => PaymentReply::Record(apply(turn, "capture", &idempotency_key, now_ms, |state| {
                match state.status {
                    PaymentStatus::Authorized if amount_cents == state.amount_cents => {
                        state.status = PaymentStatus::Captured;
                        state.captured_cents = amount_cents;
                        Ok(amount_cents)
                    }
                    PaymentStatus::Authorized => Err(format!(
                        "capture of {amount_cents} does not match the authorized {}",
                        state.amount_cents
                    )),
                    other => Err(format!(
                        "cannot capture a payment that is {}",
                        other.as_str()
                    )),
                }
            })),
            PaymentCommand::Void => {
                PaymentReply::Record(apply(
                    turn,
                    "void",
                    &format!("void:{key}"),
                    now_ms,
                    |state| {
                        match state.status {
                            PaymentStatus::None | PaymentStatus::Authorized => {
                                state.status = PaymentStatus::Voided;
                                Ok(0)
                            }
                            // Nothing is held: nothing to void.
                            PaymentStatus::Declined | PaymentStatus::Voided => Ok(0),
                            other => Err(format!(
                                "cannot void a payment that is {}; refund it",
                                other.as_str()
                            )),
                        }
                    },
                ))
            }
            PaymentCommand::Refund {
                amount_cents,
                idempotency_key,
            } => PaymentReply::Record(apply(turn, "refund", &idempotency_key, now_ms, |state| {
                let refundable = state.captured_cents - state.refunded_cents;
                match state.status {
                    PaymentStatus::Captured | PaymentStatus::Refunded
                        if (1..=refundable).contains(&amount_cents) =>
                    {
                        state.status = PaymentStatus::Refunded;
                        state.refunded_cents += amount_cents;
                        Ok(amount_cents)
                    }
                    PaymentStatus::Captured | PaymentStatus::Refunded => Err(format!(
                        "refund of {amount_cents} exceeds the refundable {refundable}"
                    )),
                    other => Err(format!(
                        "cannot refund a payment that is {}",
                        other.as_str()
                    )),
                }
            })),
        })
    }
}

fn authorize(
    turn: &mut Turn<PaymentActor>,
    amount_cents: i64,
    currency: Currency,
    card: TestCard,
    now_ms: u64,
) -> Authorization {
    let reference = format!("{REFERENCE_PREFIX}{}", turn.key());
    match turn.state().status {
        PaymentStatus::None => {}
        PaymentStatus::Declined => {
            let (code, message) = turn.state().decline.clone().unwrap_or_default();
            return Authorization::Declined { code, message };
        }
        PaymentStatus::Voided => {
            return Authorization::Declined {
                code: "voided".to_owned(),
                message: "this payment was voided".to_owned(),
            };
        }
        PaymentStatus::Authorized | PaymentStatus::Captured | PaymentStatus::Refunded => {
            return Authorization::Approved { reference };
        }
    }
    let key = turn.key().to_owned();
    let state = turn.state_mut();
    state.amount_cents = amount_cents;
    state.currency = currency;
    let (code, message) = match card {
        TestCard::Approve | TestCard::LostAnswer => {
            state.status = PaymentStatus::Authorized;
            state.operations.push(PaymentOperation {
                kind: "authorize".to_owned(),
                idempotency_key: key,
                amount_cents,
                at_ms: now_ms,
            });
            return Authorization::Approved { reference };
        }
        TestCard::Decline => ("card_declined", "the card was declined"),
        TestCard::Invalid => ("invalid_token", "the card token is not valid"),
    };
    state.status = PaymentStatus::Declined;
    state.decline = Some((code.to_owned(), message.to_owned()));
    Authorization::Declined {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// Apply an operation once per idempotency key: a repeated key answers the record as is.
fn apply(
    turn: &mut Turn<PaymentActor>,
    kind: &str,
    idempotency_key: &str,
    now_ms: u64,
    change: impl FnOnce(&mut PaymentState) -> Result<i64, String>,
) -> Result<PaymentRecord, PaymentError> {
    let seen = turn
        .state()
        .operations
        .iter()
        .any(|op| op.kind == kind && op.idempotency_key == idempotency_key);
    if seen {
        return Ok(record(turn));
    }
    let mut next = turn.state().clone();
    let amount_cents = change(&mut next).map_err(PaymentError::Refused)?;
    if next != *turn.state() {
        next.operations.push(PaymentOperation {
            kind: kind.to_owned(),
            idempotency_key: idempotency_key.to_owned(),
            amount_cents,
            at_ms: now_ms,
        });
        *turn.state_mut() = next;
    }
    Ok(record(turn))
}

fn record(turn: &Turn<PaymentActor>) -> PaymentRecord {
    let state = turn.state();
    PaymentRecord {
        reference: format!("{REFERENCE_PREFIX}{}", turn.key()),
        status: state.status,
        amount_cents: state.amount_cents,
        currency: state.currency.clone(),
        captured_cents: state.captured_cents,
        refunded_cents: state.refunded_cents,
        operations: state.operations.clone(),
    }
}

/// The built-in gateway: talks to `payment` actors of its runtime.
pub struct TestGateway {
    runtime: Runtime,
}

impl TestGateway {
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }

    async fn ask(&self, key: &str, command: PaymentCommand) -> Result<PaymentReply, PaymentError> {
        self.runtime
            .actor::<PaymentActor>(key)
            .ask(command)
            .await
            .map_err(|error| PaymentError::Unavailable(error.to_string()))
    }

    fn key_of(reference: &str) -> Result<&str, PaymentError> {
        reference
            .strip_prefix(REFERENCE_PREFIX)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| PaymentError::Refused(format!("unknown payment {reference}")))
    }

    async fn record(
        &self,
        key: &str,
        command: PaymentCommand,
    ) -> Result<PaymentRecord, PaymentError> {
        match self.ask(key, command).await? {
            PaymentReply::Record(result) => result,
            _ => Err(PaymentError::Unavailable("unexpected reply".to_owned())),
        }
    }
}

#[async_trait]
impl PaymentGateway for TestGateway {
    async fn authorize(&self, request: AuthorizeRequest) -> Result<Authorization, PaymentError> {
        let card = TestCard::of(&request.token);
        let reply = self
            .ask(
                &request.idempotency_key,
                PaymentCommand::Authorize {
                    amount_cents: request.amount_cents,
                    currency: request.currency,
                    card,
                },
            )
            .await?;
        let PaymentReply::Authorization(authorization) = reply else {
            return Err(PaymentError::Unavailable("unexpected reply".to_owned()));
        };
        if card == TestCard::LostAnswer {
            // The processor approved, the answer never arrives.
            tokio::time::sleep(HANG).await;
            return Err(PaymentError::Unavailable("no answer".to_owned()));
        }
        Ok(authorization)
    }

    async fn capture(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<PaymentRecord, PaymentError> {
        let key = Self::key_of(reference)?;
        self.record(
            key,
            PaymentCommand::Capture {
                amount_cents,
                idempotency_key: idempotency_key.to_owned(),
            },
        )
        .await
    }

    async fn void(&self, authorize_key: &str) -> Result<PaymentRecord, PaymentError> {
        self.record(authorize_key, PaymentCommand::Void).await
    }

    async fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<PaymentRecord, PaymentError> {
        let key = Self::key_of(reference)?;
        self.record(
            key,
            PaymentCommand::Refund {
                amount_cents,
                idempotency_key: idempotency_key.to_owned(),
            },
        )
        .await
    }

    async fn retrieve(&self, reference: &str) -> Result<Option<PaymentRecord>, PaymentError> {
        let Ok(key) = Self::key_of(reference) else {
            return Ok(None);
        };
        self.authorization(key).await
    }

    async fn authorization(
        &self,
        authorize_key: &str,
    ) -> Result<Option<PaymentRecord>, PaymentError> {
        match self.ask(authorize_key, PaymentCommand::Get).await? {
            PaymentReply::Found(found) => Ok(found),
            _ => Err(PaymentError::Unavailable("unexpected reply".to_owned())),
        }
    }
}
