//! Users and their accounts: sign-up, credentials, roles, and the user's own cart.
//!
//! Two actor kinds:
//! - [`EmailIndexActor`] (`user-email`, keyed by the normalized e-mail): who holds an
//!   address. Sign-up claims the address and creates the user in one turn, so concurrent
//!   sign-ups with one address yield exactly one account.
//! - [`UserActor`] (`user`, keyed by a generated user id): the account and its cart id. At
//!   login it creates the user's cart on first need and merges a guest cart into it
//!   ([`merge`] has the rules).
//!
//! Passwords are hashed with argon2id on the blocking pool ([`password`]), never inside a
//! turn. [`Users`] is the facade the edge and the node use.

mod account;
mod bootstrap;
mod email_index;
pub mod merge;
pub mod password;
mod values;

pub use account::{
    Account, GuestMerge, NewAccount, OpenedCart, User, UserActor, UserCommand, UserReply, UserState,
};
pub use bootstrap::{DEMO_ADMIN_EMAIL, DEMO_CUSTOMER_EMAIL, DEMO_CUSTOMER_PASSWORD};
pub use email_index::{EmailClaim, EmailIndexActor, EmailIndexCommand, EmailIndexReply};
pub use merge::{MergeReport, merge_lines};
pub use password::PasswordHash;
pub use values::{Email, Password, Role, UserName};

use emporium_runtime::{Runtime, RuntimeError};

use crate::values::CartId;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Sign-up with an address another account holds.
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A bug or a broken invariant; the message is for the log, not for clients.
    #[error("{0}")]
    Internal(String),
}

/// The facade over the user actors.
#[derive(Clone)]
pub struct Users {
    runtime: Runtime,
}

impl Users {
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }

    /// Create a customer account. [`UserError::EmailTaken`] when the address is held.
    pub async fn sign_up(
        &self,
        email: Email,
        name: UserName,
        password: &Password,
    ) -> Result<User, UserError> {
        // Cheap early answer for a taken address; the claim below is what decides.
        if self.find_by_email(&email).await?.is_some() {
            return Err(UserError::EmailTaken);
        }
        let password_hash = password::hash(password).await?;
        self.register(NewAccount {
            user_id: new_user_id(),
            email,
            name,
            password_hash,
            roles: vec![Role::Customer],
        })
        .await
    }

    /// The user whose credentials these are, or `None` (unknown address or wrong password:
    /// both cost one password verification, so the time taken does not tell them apart).
    /// `email` is `None` when the presented address could not even be parsed.
    pub async fn authenticate(
        &self,
        email: Option<&Email>,
        password: &Password,
    ) -> Result<Option<User>, UserError> {
        let found = match email {
            Some(email) => self.find_by_email(email).await?,
            None => None,
        };
        let (user, hash) = found.unzip();
        let matches = password::verify(password, hash.as_ref()).await?;
        Ok(user.filter(|_| matches))
    }

    pub async fn get(&self, user_id: &str) -> Result<Option<User>, UserError> {
        match self.ask_user(user_id, UserCommand::Get).await? {
            UserReply::Found(user) => Ok(user),
            other => Err(unexpected("get", &other)),
        }
    }

    /// The user's own cart (created on first need), with `guest`'s lines merged in.
    /// `None` when there is no such user.
    pub async fn open_cart(
        &self,
        user_id: &str,
        guest: Option<CartId>,
    ) -> Result<Option<OpenedCart>, UserError> {
        match self
            .ask_user(user_id, UserCommand::OpenCart { guest })
            .await?
        {
            UserReply::Cart(cart) => Ok(cart),
            other => Err(unexpected("open cart", &other)),
        }
    }

    /// Record a successful login of `user_id` (its password already verified): the user
    /// actor raises `UserLoggedIn`, in one commit. An unknown user records nothing.
    pub async fn record_login(&self, user_id: &str) -> Result<(), UserError> {
        match self.ask_user(user_id, UserCommand::RecordLogin).await? {
            UserReply::Found(_) => Ok(()),
            other => Err(unexpected("record login", &other)),
        }
    }

    /// Make `email` an admin account with `password`: create it, or set the password and
    /// add the admin role to the existing account.
    pub async fn ensure_admin(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<User, UserError> {
        let password_hash = password::hash(password).await?;
        // Two rounds: a sign-up may take the address between the lookup and the claim.
        for _ in 0..2 {
            if let Some((user, _)) = self.find_by_email(email).await? {
                let command = UserCommand::MakeAdmin {
                    password_hash: password_hash.clone(),
                };
                match self.ask_user(&user.id, command).await? {
                    UserReply::Found(Some(user)) => return Ok(user),
                    UserReply::Found(None) => continue,
                    other => return Err(unexpected("make admin", &other)),
                }
            }
            let registered = self
                .register(NewAccount {
                    user_id: new_user_id(),
                    email: email.clone(),
                    name: admin_name(),
                    password_hash: password_hash.clone(),
                    roles: vec![Role::Customer, Role::Admin],
                })
                .await;
            match registered {
                Err(UserError::EmailTaken) => continue,
                other => return other,
            }
        }
        Err(UserError::Internal(format!(
            "the admin account {email} kept changing while it was set up"
        )))
    }

    /// Create the account unless the address is already held. `Some` when created.
    pub async fn create_if_absent(
        &self,
        email: &Email,
        name: UserName,
        password: &Password,
        roles: Vec<Role>,
    ) -> Result<Option<User>, UserError> {
        if self.find_by_email(email).await?.is_some() {
            return Ok(None);
        }
        let password_hash = password::hash(password).await?;
        let registered = self
            .register(NewAccount {
                user_id: new_user_id(),
                email: email.clone(),
                name,
                password_hash,
                roles,
            })
            .await;
        match registered {
            Ok(user) => Ok(Some(user)),
            Err(UserError::EmailTaken) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn register(&self, account: NewAccount) -> Result<User, UserError> {
        let reply = self
            .runtime
            .actor::<EmailIndexActor>(account.email.as_str())
            .ask(EmailIndexCommand::Register(account))
            .await?;
        match reply {
            EmailIndexReply::Registered(user) => Ok(user),
            EmailIndexReply::Taken { .. } => Err(UserError::EmailTaken),
            EmailIndexReply::Owner(_) => Err(UserError::Internal(
                "the e-mail index answered a registration with a lookup".to_owned(),
            )),
        }
    }

    /// The account holding `email`, with its password hash.
    async fn find_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, PasswordHash)>, UserError> {
        let reply = self
            .runtime
            .actor::<EmailIndexActor>(email.as_str())
            .ask(EmailIndexCommand::Lookup)
            .await?;
        let user_id = match reply {
            EmailIndexReply::Owner(Some(user_id)) => user_id,
            EmailIndexReply::Owner(None) => return Ok(None),
            other => {
                return Err(UserError::Internal(format!(
                    "the e-mail index answered a lookup with {other:?}"
                )));
            }
        };
        match self.ask_user(&user_id, UserCommand::Credentials).await? {
            // A claim whose user was never created (a sign-up cut short) holds no account.
            UserReply::Credentials(found) => Ok(found.filter(|(user, _)| user.email == *email)),
            other => Err(unexpected("credentials", &other)),
        }
    }

    async fn ask_user(&self, user_id: &str, command: UserCommand) -> Result<UserReply, UserError> {
        Ok(self
            .runtime
            .actor::<UserActor>(user_id)
            .ask(command)
            .await?)
    }
}

fn new_user_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn admin_name() -> UserName {
    UserName::parse("Administrator").expect("a valid literal name")
}

fn unexpected(what: &str, reply: &UserReply) -> UserError {
    UserError::Internal(format!("the user actor answered {what} with {reply:?}"))
}

#[cfg(test)]
mod tests;
