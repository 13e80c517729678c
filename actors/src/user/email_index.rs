//! The e-mail index: one actor per normalized e-mail address, holding the id of the user
//! who claimed it. It makes sign-up race-free: an actor runs one turn at a time, so of
//! concurrent sign-ups with one address exactly one claim wins.
//!
//! Registering is one turn: claim (checkpointed), then create the user actor. If the turn
//! fails after the claim (a crash, a timeout), the claim points to a user that does not
//! exist; the next registration sees that and takes the claim over, so an address is never
//! locked out by a half-done sign-up. The index asks user actors; they never ask it back.

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use super::account::{NewAccount, User, UserActor, UserCommand, UserReply};

/// Who holds the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub user_id: String,
    pub claimed_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailIndexCommand {
    /// Claim the address for `account.user_id` and create that user.
    Register(NewAccount),
    /// The id of the user holding the address, if any.
    Lookup,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailIndexReply {
    /// The user now holds the address (also when the same registration is retried).
    Registered(User),
    /// Another, existing user holds it.
    Taken {
        user_id: String,
    },
    Owner(Option<String>),
}

/// The e-mail index kind.
pub struct EmailIndexActor;

impl VirtualActor for EmailIndexActor {
    const KIND: &'static str = "user-email";
    type State = Option<EmailClaim>;
    type Command = EmailIndexCommand;
    type Reply = EmailIndexReply;

    fn is_read(command: &EmailIndexCommand) -> bool {
        matches!(command, EmailIndexCommand::Lookup)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: EmailIndexCommand,
    ) -> Result<EmailIndexReply, RuntimeError> {
        match command {
            EmailIndexCommand::Lookup => Ok(EmailIndexReply::Owner(
                turn.state().as_ref().map(|claim| claim.user_id.clone()),
            )),
            EmailIndexCommand::Register(account) => register(turn, account).await,
        }
    }
}

async fn register(
    turn: &mut Turn<EmailIndexActor>,
    account: NewAccount,
) -> Result<EmailIndexReply, RuntimeError> {
    if account.email.as_str() != turn.key() {
        return Err(RuntimeError::Unreachable {
            actor: turn.id().clone(),
            reason: "registration sent to another address's index".to_owned(),
        });
    }
    let holder = turn.state().as_ref().map(|claim| claim.user_id.clone());
    if let Some(holder) = holder.filter(|holder| *holder != account.user_id) {
        let reply = turn
            .runtime()
            .actor::<UserActor>(holder.as_str())
            .ask(UserCommand::Get)
            .await?;
        if let UserReply::Found(Some(_)) = reply {
            return Ok(EmailIndexReply::Taken { user_id: holder });
        }
        tracing::warn!(
            stale = %holder,
            "an e-mail claim whose user was never created is taken over"
        );
    }
    if turn
        .state()
        .as_ref()
        .is_none_or(|claim| claim.user_id != account.user_id)
    {
        let claimed_at_ms = turn.now_ms();
        *turn.state_mut() = Some(EmailClaim {
            user_id: account.user_id.clone(),
            claimed_at_ms,
        });
        turn.commit().await?;
    }
    let user_id = account.user_id.clone();
    let reply = turn
        .runtime()
        .actor::<UserActor>(user_id.as_str())
        .ask(UserCommand::Create(account))
        .await?;
    match reply {
        UserReply::Created { user, .. } if user.email.as_str() == turn.key() => {
            Ok(EmailIndexReply::Registered(user))
        }
        other => Err(RuntimeError::Unreachable {
            actor: turn.id().clone(),
            reason: format!("user {user_id} answered the creation with {other:?}"),
        }),
    }
}
