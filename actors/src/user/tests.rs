//! The user actors on an in-memory store: sign-up races, stale claims, login, admin
//! bootstrap, and the login merge through real cart actors.

use std::collections::BTreeMap;
use std::sync::Arc;

use emporium_runtime::Runtime;
use emporium_runtime::store::MemoryStore;

use super::*;
use crate::cart::{CartActor, CartCommand, CartView};
use crate::catalog::{ProductActor, ProductCommand, ProductDraft};
use crate::values::{Currency, Quantity, Sku};

async fn runtime_on(store: Arc<MemoryStore>) -> Runtime {
    crate::register(Runtime::builder(store))
        .build()
        .await
        .expect("runtime starts")
}

async fn users() -> (Users, Runtime) {
    let runtime = runtime_on(Arc::new(MemoryStore::new())).await;
    (Users::new(runtime.clone()), runtime)
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

fn name(text: &str) -> UserName {
    UserName::parse(text).unwrap()
}

fn password(text: &str) -> Password {
    Password::new(text).unwrap()
}

async fn product(runtime: &Runtime, sku: &str, price_cents: i64, currency: &str) {
    let draft = ProductDraft {
        name: sku.to_owned(),
        description: String::new(),
        price_cents,
        currency: Currency::parse(currency).unwrap(),
        category: "test".to_owned(),
        attributes: BTreeMap::new(),
    };
    let reply = runtime
        .actor::<ProductActor>(sku)
        .ask(ProductCommand::Upsert(draft))
        .await
        .unwrap();
    assert!(reply.is_ok());
}

async fn cart(runtime: &Runtime, id: &CartId, command: CartCommand) -> CartView {
    runtime
        .actor::<CartActor>(id.as_str())
        .ask(command)
        .await
        .unwrap()
        .unwrap()
}

async fn guest_cart(runtime: &Runtime, lines: &[(&str, i64)]) -> CartId {
    let id = CartId::generate();
    cart(runtime, &id, CartCommand::Create { owner: None }).await;
    for (sku, quantity) in lines {
        let command = CartCommand::AddItem {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::new(*quantity).unwrap(),
        };
        cart(runtime, &id, command).await;
    }
    id
}

fn quantities(view: &CartView) -> Vec<(String, u32)> {
    view.items
        .iter()
        .map(|line| (line.sku.to_string(), line.quantity))
        .collect()
}

#[tokio::test]
async fn sign_up_then_authenticate() {
    let (users, _) = users().await;
    let user = users
        .sign_up(
            email("Ada@Example.com"),
            name("Ada"),
            &password("analytical"),
        )
        .await
        .unwrap();
    assert_eq!(user.email.as_str(), "ada@example.com");
    assert_eq!(user.roles, vec![Role::Customer]);
    assert_eq!(user.cart_id, None, "no cart before it is needed");
    assert_eq!(users.get(&user.id).await.unwrap(), Some(user.clone()));

    let right = Password::presented("analytical");
    let found = users
        .authenticate(Some(&email(" ADA@example.com")), &right)
        .await
        .unwrap();
    assert_eq!(found.map(|found| found.id), Some(user.id.clone()));
    let wrong = Password::presented("analytica1");
    assert_eq!(
        users.authenticate(Some(&user.email), &wrong).await.unwrap(),
        None
    );
    let unknown = email("nobody@example.com");
    assert_eq!(
        users.authenticate(Some(&unknown), &right).await.unwrap(),
        None
    );
    assert_eq!(users.authenticate(None, &right).await.unwrap(), None);
}

#[tokio::test]
async fn an_address_has_one_account_whatever_its_case() {
    let (users, _) = users().await;
    users
        .sign_up(
            email("ada@example.com"),
            name("Ada"),
            &password("analytical"),
        )
        .await
        .unwrap();
    let again = users
        .sign_up(
            email("ADA@EXAMPLE.COM"),
            name("Other"),
            &password("different-one"),
        )
        .await;
    assert!(matches!(again, Err(UserError::EmailTaken)), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_make_one_account() {
    let (users, runtime) = users().await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let users = users.clone();
            tokio::spawn(async move {
                users
                    .sign_up(
                        email("race@example.com"),
                        name(&format!("Racer {i}")),
                        &password("same-password"),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(user) => winners.push(user),
            Err(UserError::EmailTaken) => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one sign-up wins");
    let reply = runtime
        .actor::<EmailIndexActor>("race@example.com")
        .ask(EmailIndexCommand::Lookup)
        .await
        .unwrap();
    assert!(
        matches!(reply, EmailIndexReply::Owner(Some(ref id)) if *id == winners[0].id),
        "{reply:?}"
    );
}

fn account(user_id: &str, address: &str, password_hash: PasswordHash) -> NewAccount {
    NewAccount {
        user_id: user_id.to_owned(),
        email: email(address),
        name: name("Someone"),
        password_hash,
        roles: vec![Role::Customer],
    }
}

#[tokio::test]
async fn a_retried_registration_is_idempotent() {
    let (_, runtime) = users().await;
    let hash = password::hash(&password("whatever-1")).await.unwrap();
    let index = runtime.actor::<EmailIndexActor>("same@example.com");
    for _ in 0..2 {
        let reply = index
            .ask(EmailIndexCommand::Register(account(
                "u-1",
                "same@example.com",
                hash.clone(),
            )))
            .await
            .unwrap();
        assert!(
            matches!(reply, EmailIndexReply::Registered(ref user) if user.id == "u-1"),
            "{reply:?}"
        );
    }
    let reply = index
        .ask(EmailIndexCommand::Register(account(
            "u-2",
            "same@example.com",
            hash,
        )))
        .await
        .unwrap();
    assert!(
        matches!(reply, EmailIndexReply::Taken { ref user_id } if user_id == "u-1"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_claim_whose_user_was_never_created_is_taken_over() {
    let store = Arc::new(MemoryStore::new());
    // A node that can claim but not create users: the sign-up fails after the claim.
    let crippled = Runtime::builder(store.clone())
        .register(EmailIndexActor)
        .build()
        .await
        .unwrap();
    let hash = password::hash(&password("whatever-1")).await.unwrap();
    let failed = crippled
        .actor::<EmailIndexActor>("stuck@example.com")
        .ask(EmailIndexCommand::Register(account(
            "u-lost",
            "stuck@example.com",
            hash,
        )))
        .await;
    assert!(failed.is_err(), "the creation failed");
    crippled.shutdown(std::time::Duration::from_secs(1)).await;

    let runtime = runtime_on(store).await;
    let reply = runtime
        .actor::<EmailIndexActor>("stuck@example.com")
        .ask(EmailIndexCommand::Lookup)
        .await
        .unwrap();
    assert!(
        matches!(reply, EmailIndexReply::Owner(Some(ref id)) if id == "u-lost"),
        "the claim was checkpointed: {reply:?}"
    );
    let users = Users::new(runtime);
    let secret = Password::presented("whatever-1");
    assert_eq!(
        users
            .authenticate(Some(&email("stuck@example.com")), &secret)
            .await
            .unwrap(),
        None,
        "a stale claim is no account"
    );
    let user = users
        .sign_up(
            email("stuck@example.com"),
            name("Retry"),
            &password("another-try"),
        )
        .await
        .expect("the address is not locked out");
    assert_ne!(user.id, "u-lost");
    let again = users
        .sign_up(
            email("stuck@example.com"),
            name("Late"),
            &password("another-try"),
        )
        .await;
    assert!(matches!(again, Err(UserError::EmailTaken)));
}

#[tokio::test]
async fn the_users_cart_is_created_once_and_owned() {
    let (users, runtime) = users().await;
    let user = users
        .sign_up(
            email("cart@example.com"),
            name("Cart"),
            &password("carts-are-fun"),
        )
        .await
        .unwrap();
    let first = users.open_cart(&user.id, None).await.unwrap().unwrap();
    assert!(first.created);
    assert_eq!(first.cart.owner.as_deref(), Some(user.id.as_str()));
    let second = users.open_cart(&user.id, None).await.unwrap().unwrap();
    assert!(!second.created);
    assert_eq!(second.cart.id, first.cart.id);
    let stored = users.get(&user.id).await.unwrap().unwrap();
    assert_eq!(stored.cart_id.map(|id| id.to_string()), Some(first.cart.id));
    assert_eq!(users.open_cart("no-such-user", None).await.unwrap(), None);
    drop(runtime);
}

#[tokio::test]
async fn login_merge_adds_caps_and_empties_the_guest_cart() {
    let (users, runtime) = users().await;
    product(&runtime, "MUG", 1200, "USD").await;
    product(&runtime, "TEE", 2500, "USD").await;
    let user = users
        .sign_up(
            email("merge@example.com"),
            name("Merge"),
            &password("merge-merge"),
        )
        .await
        .unwrap();
    let own = users.open_cart(&user.id, None).await.unwrap().unwrap().cart;
    let own_id = CartId::parse(&own.id).unwrap();
    let command = CartCommand::AddItem {
        sku: Sku::parse("MUG").unwrap(),
        quantity: Quantity::new(90).unwrap(),
    };
    cart(&runtime, &own_id, command).await;

    let guest = guest_cart(&runtime, &[("MUG", 20), ("TEE", 2)]).await;
    let opened = users
        .open_cart(&user.id, Some(guest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        quantities(&opened.cart),
        vec![("MUG".to_owned(), Quantity::MAX), ("TEE".to_owned(), 2)]
    );
    assert!(
        matches!(opened.guest, Some(GuestMerge::Merged(ref report)) if report.merged.len() == 2)
    );
    let guest_after = cart(&runtime, &guest, CartCommand::Get).await;
    assert!(guest_after.items.is_empty(), "the guest cart is emptied");

    // Merging the emptied guest cart again changes nothing.
    let again = users
        .open_cart(&user.id, Some(guest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quantities(&again.cart), quantities(&opened.cart));
    // The user's own cart as the guest: nothing happens.
    let same = users
        .open_cart(&user.id, Some(own_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.guest, Some(GuestMerge::Same));
    // An unknown guest cart is ignored.
    let unknown = users
        .open_cart(&user.id, Some(CartId::generate()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unknown.guest, Some(GuestMerge::NotFound));
}

#[tokio::test]
async fn another_users_cart_is_not_merged() {
    let (users, runtime) = users().await;
    product(&runtime, "MUG", 1200, "USD").await;
    let alice = users
        .sign_up(
            email("alice@example.com"),
            name("Alice"),
            &password("alice-pass"),
        )
        .await
        .unwrap();
    let bob = users
        .sign_up(
            email("bob@example.com"),
            name("Bob"),
            &password("bob-password"),
        )
        .await
        .unwrap();
    let bobs = users.open_cart(&bob.id, None).await.unwrap().unwrap().cart;
    let bobs_id = CartId::parse(&bobs.id).unwrap();
    let command = CartCommand::AddItem {
        sku: Sku::parse("MUG").unwrap(),
        quantity: Quantity::new(3).unwrap(),
    };
    cart(&runtime, &bobs_id, command).await;
    let opened = users
        .open_cart(&alice.id, Some(bobs_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.guest, Some(GuestMerge::Owned));
    assert!(opened.cart.items.is_empty());
    let bobs_after = cart(&runtime, &bobs_id, CartCommand::Get).await;
    assert_eq!(quantities(&bobs_after), vec![("MUG".to_owned(), 3)]);
}

#[tokio::test]
async fn lines_that_cannot_merge_stay_in_the_guest_cart() {
    let (users, runtime) = users().await;
    product(&runtime, "MUG", 1200, "USD").await;
    product(&runtime, "BOOK", 900, "EUR").await;
    let user = users
        .sign_up(
            email("eur@example.com"),
            name("Euro"),
            &password("euro-euro"),
        )
        .await
        .unwrap();
    let own = users.open_cart(&user.id, None).await.unwrap().unwrap().cart;
    let command = CartCommand::AddItem {
        sku: Sku::parse("MUG").unwrap(),
        quantity: Quantity::new(1).unwrap(),
    };
    cart(&runtime, &CartId::parse(&own.id).unwrap(), command).await;
    let guest = guest_cart(&runtime, &[("BOOK", 2)]).await;
    let opened = users
        .open_cart(&user.id, Some(guest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quantities(&opened.cart), vec![("MUG".to_owned(), 1)]);
    let guest_after = cart(&runtime, &guest, CartCommand::Get).await;
    assert_eq!(quantities(&guest_after), vec![("BOOK".to_owned(), 2)]);
}

#[tokio::test]
async fn the_configured_admin_is_created_then_updated() {
    let (users, _) = users().await;
    let lines = users
        .bootstrap(Some(("Boss@Example.com", "first-secret")), true)
        .await
        .unwrap();
    assert!(
        lines.is_empty(),
        "no demo accounts next to a configured admin"
    );
    let boss = email("boss@example.com");
    let admin = users
        .authenticate(Some(&boss), &Password::presented("first-secret"))
        .await
        .unwrap()
        .expect("admin logs in");
    assert!(admin.is_admin());
    // Next start with another password: same account, new password.
    users
        .bootstrap(Some(("boss@example.com", "second-secret")), false)
        .await
        .unwrap();
    let old = Password::presented("first-secret");
    assert_eq!(users.authenticate(Some(&boss), &old).await.unwrap(), None);
    let again = users
        .authenticate(Some(&boss), &Password::presented("second-secret"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, admin.id);

    // An existing customer account named as admin becomes an admin.
    let customer = users
        .sign_up(
            email("promote@example.com"),
            name("Promote"),
            &password("customer-pw"),
        )
        .await
        .unwrap();
    users
        .bootstrap(Some(("promote@example.com", "now-admin")), false)
        .await
        .unwrap();
    let promoted = users.get(&customer.id).await.unwrap().unwrap();
    assert_eq!(promoted.roles, vec![Role::Customer, Role::Admin]);
}

#[tokio::test]
async fn demo_accounts_are_made_once() {
    let (users, _) = users().await;
    let lines = users.bootstrap(None, true).await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let generated = lines[0]
        .strip_prefix("demo admin: admin@emporium.local / ")
        .expect("admin line");
    let admin = users
        .authenticate(
            Some(&email(DEMO_ADMIN_EMAIL)),
            &Password::presented(generated),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(admin.is_admin());
    let customer = users
        .authenticate(
            Some(&email(DEMO_CUSTOMER_EMAIL)),
            &Password::presented(DEMO_CUSTOMER_PASSWORD),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!customer.is_admin());
    let again = users.bootstrap(None, true).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "the admin password is shown only once: {again:?}"
    );
    assert!(users.bootstrap(None, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn registration_and_each_login_raise_their_events_once() {
    use crate::events::{DomainEvent, emitted};
    use emporium_runtime::{ActorId, StateStore};

    let store = Arc::new(MemoryStore::new());
    let runtime = runtime_on(store.clone()).await;
    let users = Users::new(runtime.clone());
    let user = users
        .sign_up(
            email("Ada@Example.com"),
            name("Ada"),
            &password("analytical"),
        )
        .await
        .unwrap();
    // Refused or repeated: nothing more.
    let taken = users
        .sign_up(
            email("ada@example.com"),
            name("Ada"),
            &password("analytical"),
        )
        .await;
    assert!(matches!(taken, Err(UserError::EmailTaken)));
    let hash = password::hash(&password("whatever-1")).await.unwrap();
    let mut retried = account(&user.id, "ada@example.com", hash);
    retried.name = name("Ada");
    runtime
        .actor::<UserActor>(user.id.as_str())
        .ask(UserCommand::Create(retried))
        .await
        .unwrap();
    // A login: verified outside the actor, then recorded; its cart is the cart's business.
    for _ in 0..2 {
        let found = users
            .authenticate(Some(&user.email), &Password::presented("analytical"))
            .await
            .unwrap()
            .unwrap();
        users.open_cart(&found.id, None).await.unwrap();
        users.record_login(&found.id).await.unwrap();
    }
    let registered = DomainEvent::UserRegistered {
        user_id: user.id.clone(),
        email: "ada@example.com".to_owned(),
        name: "Ada".to_owned(),
    };
    let logged_in = DomainEvent::UserLoggedIn {
        user_id: user.id.clone(),
    };
    assert_eq!(
        emitted::events(store.as_ref(), "user", &user.id).await,
        [registered, logged_in.clone(), logged_in]
    );
    // An unknown user records nothing, and is not created by trying.
    users.record_login("ghost").await.unwrap();
    assert!(
        emitted::events(store.as_ref(), "user", "ghost")
            .await
            .is_empty()
    );
    let ghost = store.load(&ActorId::new("user", "ghost")).await.unwrap();
    assert!(ghost.is_none());
}
