//! The user actor: one per user id, holding the account (e-mail, name, password hash,
//! roles) and the id of the user's own cart.
//!
//! It asks cart actors (to create the user's cart and to merge a guest cart into it) and
//! is asked by the e-mail index; it never asks the index back.
//!
//! # Events
//! - `UserRegistered` in the commit that creates the account (never for a repeated
//!   `Create`).
//! - `UserLoggedIn` on [`UserCommand::RecordLogin`], which the login path sends once the
//!   password was verified (verification runs outside the actor, on the blocking pool).
//!   It writes nothing but the event: one commit per login, no growing state.

use emporium_runtime::{ActorId, Runtime, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use super::merge::MergeReport;
use super::password::PasswordHash;
use super::values::{Email, Role, UserName};
use crate::cart::{CartActor, CartCommand, CartView};
use crate::events::DomainEvent;
use crate::values::CartId;

/// What callers see of a user: never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: Email,
    pub name: UserName,
    pub roles: Vec<Role>,
    /// The user's own cart, once one was needed.
    pub cart_id: Option<CartId>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// The stored account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: Email,
    pub name: UserName,
    pub password_hash: PasswordHash,
    pub roles: Vec<Role>,
    pub created_at_ms: u64,
    #[serde(default)]
    pub cart_id: Option<CartId>,
}

/// A user's stored state; `None` until the account is created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub account: Option<Account>,
}

/// An account to create. Built by [`super::Users`] only, after validation and hashing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub(crate) user_id: String,
    pub(crate) email: Email,
    pub(crate) name: UserName,
    pub(crate) password_hash: PasswordHash,
    pub(crate) roles: Vec<Role>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserCommand {
    /// Create the account (idempotent: an existing account is answered unchanged).
    Create(NewAccount),
    Get,
    /// The account with its password hash, for login.
    Credentials,
    /// Set the password and make the account an admin (operator bootstrap).
    MakeAdmin {
        password_hash: PasswordHash,
    },
    /// The user's own cart, created on first need, with the lines of `guest` merged in.
    OpenCart {
        guest: Option<CartId>,
    },
    /// A login succeeded (its password was verified): raise `UserLoggedIn`. Answered with
    /// [`UserReply::Found`]; an unknown user raises nothing.
    RecordLogin,
}

/// What happened to the guest cart given at login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestMerge {
    /// Its lines went into the user's cart; see the report for what was left in it.
    Merged(MergeReport),
    /// No such cart: nothing to merge.
    NotFound,
    /// It is not a guest cart (it has an owner, possibly through a checkout): left alone.
    Owned,
    /// It is the user's own cart.
    Same,
}

/// The user's cart as [`UserCommand::OpenCart`] left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedCart {
    pub cart: CartView,
    /// The cart was created by this call.
    pub created: bool,
    pub guest: Option<GuestMerge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserReply {
    /// `Create`: `true` when this call created the account.
    Created {
        user: User,
        created: bool,
    },
    /// `Get`, `MakeAdmin`: `None` when there is no such account.
    Found(Option<User>),
    Credentials(Option<(User, PasswordHash)>),
    Cart(Option<OpenedCart>),
}

/// The user actor kind.
pub struct UserActor;

impl VirtualActor for UserActor {
    const KIND: &'static str = "user";
    type State = UserState;
    type Command = UserCommand;
    type Reply = UserReply;

    fn is_read(command: &UserCommand) -> bool {
        matches!(command, UserCommand::Get | UserCommand::Credentials)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: UserCommand,
    ) -> Result<UserReply, RuntimeError> {
        match command {
            UserCommand::Create(account) => {
                if let Some(user) = user(turn) {
                    return Ok(UserReply::Created {
                        user,
                        created: false,
                    });
                }
                let created_at_ms = turn.now_ms();
                turn.emit(DomainEvent::UserRegistered {
                    user_id: turn.key().to_owned(),
                    email: account.email.as_str().to_owned(),
                    name: account.name.as_str().to_owned(),
                })?;
                turn.state_mut().account = Some(Account {
                    email: account.email,
                    name: account.name,
                    password_hash: account.password_hash,
                    roles: normalized_roles(account.roles),
                    created_at_ms,
                    cart_id: None,
                });
                let user = user(turn).ok_or_else(|| unreachable(turn.id(), "account vanished"))?;
                Ok(UserReply::Created {
                    user,
                    created: true,
                })
            }
            UserCommand::Get => Ok(UserReply::Found(user(turn))),
            UserCommand::Credentials => {
                Ok(UserReply::Credentials(turn.state().account.as_ref().map(
                    |account| (to_user(turn.key(), account), account.password_hash.clone()),
                )))
            }
            UserCommand::MakeAdmin { password_hash } => {
                if turn.state().account.is_none() {
                    return Ok(UserReply::Found(None));
                }
                if let Some(account) = turn.state_mut().account.as_mut() {
                    account.password_hash = password_hash;
                    let mut roles = std::mem::take(&mut account.roles);
                    roles.push(Role::Admin);
                    account.roles = normalized_roles(roles);
                }
                Ok(UserReply::Found(user(turn)))
            }
            UserCommand::OpenCart { guest } => open_cart(turn, guest).await,
            UserCommand::RecordLogin => {
                let user = user(turn);
                if user.is_some() {
                    let user_id = turn.key().to_owned();
                    turn.emit(DomainEvent::UserLoggedIn { user_id })?;
                }
                Ok(UserReply::Found(user))
            }
        }
    }
}

/// Every account is a customer; roles are kept sorted and without repeats.
fn normalized_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.push(Role::Customer);
    roles.sort_unstable();
    roles.dedup();
    roles
}

fn to_user(id: &str, account: &Account) -> User {
    User {
        id: id.to_owned(),
        email: account.email.clone(),
        name: account.name.clone(),
        roles: account.roles.clone(),
        cart_id: account.cart_id.clone(),
    }
}

fn user(turn: &Turn<UserActor>) -> Option<User> {
    turn.state()
        .account
        .as_ref()
        .map(|account| to_user(turn.key(), account))
}

fn unreachable(actor: &ActorId, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unreachable {
        actor: actor.clone(),
        reason: reason.into(),
    }
}

async fn ask_cart(
    runtime: &Runtime,
    cart_id: &CartId,
    command: CartCommand,
) -> Result<Result<CartView, crate::cart::CartRejection>, RuntimeError> {
    runtime
        .actor::<CartActor>(cart_id.as_str())
        .ask(command)
        .await
}

async fn open_cart(
    turn: &mut Turn<UserActor>,
    guest: Option<CartId>,
) -> Result<UserReply, RuntimeError> {
    let Some(account) = turn.state().account.clone() else {
        return Ok(UserReply::Cart(None));
    };
    let user_id = turn.key().to_owned();
    let runtime = turn.runtime().clone();
    let (cart_id, created) = match account.cart_id {
        Some(cart_id) => (cart_id, false),
        None => {
            let cart_id = CartId::generate();
            let command = CartCommand::Create {
                owner: Some(user_id.clone()),
            };
            if let Err(rejection) = ask_cart(&runtime, &cart_id, command).await? {
                return Err(unreachable(
                    turn.id(),
                    format!("creating the user's cart answered {rejection}"),
                ));
            }
            if let Some(account) = turn.state_mut().account.as_mut() {
                account.cart_id = Some(cart_id.clone());
            }
            // Checkpoint: the cart is the user's even if the merge below fails.
            turn.commit().await?;
            (cart_id, true)
        }
    };
    let guest = match guest {
        Some(guest) => Some(merge_guest(&runtime, &guest, &cart_id).await?),
        None => None,
    };
    let cart = ask_cart(&runtime, &cart_id, CartCommand::Get)
        .await?
        .map_err(|rejection| {
            unreachable(turn.id(), format!("the user's cart answered {rejection}"))
        })?;
    Ok(UserReply::Cart(Some(OpenedCart {
        cart,
        created,
        guest,
    })))
}

/// Merge the guest cart's lines into the user's cart, then take the merged lines out of the
/// guest cart. Merging first means a crash in between can count a line twice on a retried
/// login (bounded by the line cap) but never loses one.
async fn merge_guest(
    runtime: &Runtime,
    guest_id: &CartId,
    cart_id: &CartId,
) -> Result<GuestMerge, RuntimeError> {
    if guest_id == cart_id {
        return Ok(GuestMerge::Same);
    }
    let guest = match ask_cart(runtime, guest_id, CartCommand::Get).await? {
        Ok(guest) => guest,
        Err(_) => return Ok(GuestMerge::NotFound),
    };
    // Only guest carts merge. An owned one is another user's, or one a checkout took over
    // (its lines are locked or already ordered): merging it would count them twice.
    if guest.owner.is_some() {
        return Ok(GuestMerge::Owned);
    }
    if guest.items.is_empty() {
        return Ok(GuestMerge::Merged(MergeReport::default()));
    }
    let command = CartCommand::MergeFrom {
        lines: guest.items.clone(),
        currency: guest.currency.clone(),
    };
    let merged = match ask_cart(runtime, cart_id, command).await? {
        Ok(merged) => merged,
        Err(rejection) => {
            tracing::warn!(%rejection, cart = %cart_id, "login merge refused");
            return Ok(GuestMerge::Merged(MergeReport {
                merged: Vec::new(),
                left_out: guest.items.into_iter().map(|line| line.sku).collect(),
            }));
        }
    };
    let mut report = MergeReport::default();
    for line in guest.items {
        if merged.items.iter().any(|merged| merged.sku == line.sku) {
            report.merged.push(line.sku);
        } else {
            report.left_out.push(line.sku);
        }
    }
    for sku in &report.merged {
        // A line removed meanwhile (the guest cart is still open to its holder) is fine.
        let command = CartCommand::RemoveItem { sku: sku.clone() };
        let _ = ask_cart(runtime, guest_id, command).await?;
    }
    Ok(GuestMerge::Merged(report))
}
