//! Users and auth against real nodes: sign-up (with a race), login, `me`, token checks,
//! the login cart merge, owned carts, the admin from the environment, demo accounts, and
//! tokens across a restart.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emporium_http_edge::auth::TokenKeys;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Answer, Api, NodeProcess, NodeSpec};

const SECRET: &str = "users-test-secret-users-test-secret-0123";

/// Requests with a bearer token (the kit's client sends none).
struct Client {
    http: reqwest::Client,
    api: Api,
}

impl Client {
    fn new(node: &NodeProcess) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            api: Api::new(node),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.base)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.http.get(self.url(path)), token).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request, token).await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(body), token)
            .await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.http.delete(self.url(path)), token).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, token: Option<&str>) -> Answer {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.api.send(request).await
    }

    async fn sign_up(&self, email: &str, password: &str, name: &str) -> Answer {
        let body = json!({"email": email, "password": password, "name": name});
        self.post("/v1/users", None, Some(&body)).await
    }

    async fn login(&self, email: &str, password: &str, guest_cart_id: Option<&str>) -> Answer {
        let mut body = json!({"email": email, "password": password});
        if let Some(guest) = guest_cart_id {
            body["guest_cart_id"] = json!(guest);
        }
        self.post("/v1/auth/login", None, Some(&body)).await
    }

    /// Sign up and log in; returns (user id, token, cart id).
    async fn customer(&self, email: &str) -> (String, String, String) {
        let created = self.sign_up(email, "password-123", "Customer").await;
        assert_eq!(created.status, 201, "{created:?}");
        let login = self.login(email, "password-123", None).await;
        assert_eq!(login.status, 200, "{login:?}");
        (
            text(&login, "user_id"),
            text(&login, "access_token"),
            text(&login, "cart_id"),
        )
    }

    async fn add(&self, cart: &str, token: Option<&str>, sku: &str, quantity: i64) -> Answer {
        let body = json!({"sku": sku, "quantity": quantity});
        self.post(&format!("/v1/carts/{cart}/items"), token, Some(&body))
            .await
    }
}

fn text(answer: &Answer, field: &str) -> String {
    answer.body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {answer:?}"))
        .to_owned()
}

fn quantities(cart: &Answer) -> Vec<(String, u64)> {
    cart.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {cart:?}"))
        .iter()
        .map(|line| {
            (
                line["sku"].as_str().unwrap().to_owned(),
                line["quantity"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_login_me_and_every_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start(NodeSpec::embedded(dir.path()).env("EMPORIUM_JWT_SECRET", SECRET)).await;
    let client = Client::new(&node);

    let created = client
        .sign_up("  Ada@Example.COM ", "analytical-engine", " Ada Lovelace ")
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = text(&created, "id");
    assert_eq!(created.body["email"], "ada@example.com", "normalized");
    assert_eq!(created.body["name"], "Ada Lovelace");
    assert_eq!(created.body["roles"], json!(["customer"]));
    let fields: Vec<&String> = created.body.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["email", "id", "name", "roles"],
        "no password, no hash"
    );

    // Duplicates, also in another case.
    for email in ["ada@example.com", "ADA@example.com", " ada@EXAMPLE.com"] {
        let again = client.sign_up(email, "another-password", "Ada").await;
        again.expect_problem(409);
    }

    // Invalid values: 422 naming the field. Malformed JSON: 400.
    let bad = [
        (
            json!({"email": "not-an-email", "password": "password-123", "name": "X"}),
            "email",
        ),
        (
            json!({"email": "a b@example.com", "password": "password-123", "name": "X"}),
            "email",
        ),
        (
            json!({"email": "ok@example.com", "password": "short", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "ok@example.com", "password": "1234567", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "ok@example.com", "password": "password-123", "name": "  "}),
            "name",
        ),
    ];
    for (body, field) in bad {
        let answer = client.post("/v1/users", None, Some(&body)).await;
        let detail = answer.expect_problem(422);
        assert!(detail.starts_with(&format!("{field}:")), "{detail}");
    }
    let raw = client
        .api
        .post_raw("/v1/users", "application/json", b"{\"email\": ".to_vec())
        .await;
    raw.expect_problem(400);
    let missing = client
        .post("/v1/users", None, Some(&json!({"email": "x@example.com"})))
        .await;
    missing.expect_problem(400);
    assert_eq!(
        client
            .sign_up("ok@example.com", "12345678", "Ok")
            .await
            .status,
        201,
        "8 characters are enough"
    );

    // Login.
    let login = client
        .login("ADA@example.com", "analytical-engine", None)
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 3600);
    assert_eq!(login.body["user_id"], id.as_str());
    assert!(login.body["cart_id"].is_string());
    assert_eq!(login.headers["cache-control"], "no-store");
    let token = text(&login, "access_token");

    let me = client.get("/v1/users/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body, created.body);

    // Wrong credentials: one answer for an unknown address and a wrong password.
    let unknown = client
        .login("nobody@example.com", "analytical-engine", None)
        .await;
    let wrong = client
        .login("ada@example.com", "analytical-engin3", None)
        .await;
    let garbage = client.login("not an address", "whatever", None).await;
    unknown.expect_problem(401);
    wrong.expect_problem(401);
    garbage.expect_problem(401);
    assert_eq!(unknown.body, wrong.body, "same body");
    assert_eq!(garbage.body, wrong.body, "same body");
    assert_eq!(unknown.headers["www-authenticate"], "Bearer");
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
    let bad_guest = client
        .login("ada@example.com", "analytical-engine", Some("no/slashes"))
        .await;
    assert!(bad_guest.expect_problem(422).starts_with("guest_cart_id:"));

    // Tokens: none, malformed, tampered, wrongly signed, expired.
    client.get("/v1/users/me", None).await.expect_problem(401);
    client
        .get("/v1/users/me", Some("not-a-token"))
        .await
        .expect_problem(401);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let last = parts[1].pop().unwrap();
    parts[1].push(if last == 'A' { 'B' } else { 'A' });
    let tampered = parts.join(".");
    client
        .get("/v1/users/me", Some(&tampered))
        .await
        .expect_problem(401);
    let roles = ["customer".to_owned(), "admin".to_owned()];
    let forged = TokenKeys::new(
        b"another-secret-another-secret-another",
        Duration::from_secs(60),
    )
    .issue(&id, "ada@example.com", &roles, now_secs())
    .unwrap()
    .0;
    client
        .get("/v1/users/me", Some(&forged))
        .await
        .expect_problem(401);
    let keys = TokenKeys::new(SECRET.as_bytes(), Duration::from_secs(3600));
    let expired = keys
        .issue(&id, "ada@example.com", &roles, now_secs() - 7200)
        .unwrap()
        .0;
    client
        .get("/v1/users/me", Some(&expired))
        .await
        .expect_problem(401);
    // The same key, in date: accepted (the checks above failed for the right reason).
    let fresh = keys
        .issue(&id, "ada@example.com", &roles, now_secs())
        .unwrap()
        .0;
    assert_eq!(client.get("/v1/users/me", Some(&fresh)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_with_one_address_make_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(NodeSpec::embedded(dir.path())).await;
    let client = std::sync::Arc::new(Client::new(&node));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            // Spellings differ; the normalized address is one.
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            tokio::spawn(async move {
                client
                    .sign_up(email, &format!("password-{i}"), &format!("Racer {i}"))
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            201 => created.push(answer),
            409 => {
                answer.expect_problem(409);
                conflicts += 1;
            }
            _ => panic!("{answer:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one sign-up wins");
    assert_eq!(conflicts, 19);
    // The winner's password is the one that logs in.
    let name = text(&created[0], "name");
    let i: usize = name.strip_prefix("Racer ").unwrap().parse().unwrap();
    let login = client
        .login("race@example.com", &format!("password-{i}"), None)
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(login.body["user_id"], created[0].body["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_merges_the_guest_cart() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(NodeSpec::embedded(dir.path())).await;
    let client = Client::new(&node);
    let (_, token, cart) = client.customer("merge@example.com").await;
    assert_eq!(
        client.add(&cart, Some(&token), "SKU-MUG", 60).await.status,
        200
    );
    assert_eq!(
        client.add(&cart, Some(&token), "SKU-PEN", 1).await.status,
        200
    );

    let guest = client.api.new_cart().await;
    assert_eq!(client.add(&guest, None, "SKU-MUG", 50).await.status, 200);
    assert_eq!(client.add(&guest, None, "SKU-PEN", 2).await.status, 200);
    assert_eq!(client.add(&guest, None, "SKU-CAP", 3).await.status, 200);

    let login = client
        .login("merge@example.com", "password-123", Some(&guest))
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(text(&login, "cart_id"), cart, "the user's one cart");
    let token = text(&login, "access_token");
    let merged = client.get(&format!("/v1/carts/{cart}"), Some(&token)).await;
    assert_eq!(
        quantities(&merged),
        [
            ("SKU-MUG".to_owned(), 99),
            ("SKU-PEN".to_owned(), 3),
            ("SKU-CAP".to_owned(), 3)
        ],
        "quantities add, capped at 99; new lines appended"
    );
    let emptied = client.get(&format!("/v1/carts/{guest}"), None).await;
    assert_eq!(emptied.status, 200);
    assert_eq!(
        emptied.body["items"],
        json!([]),
        "the guest cart is emptied"
    );

    // Logging in again with the emptied guest cart changes nothing.
    client
        .login("merge@example.com", "password-123", Some(&guest))
        .await;
    let again = client.get(&format!("/v1/carts/{cart}"), Some(&token)).await;
    assert_eq!(quantities(&again), quantities(&merged));

    // Another user's cart given as the guest cart is ignored, and left untouched.
    let (_, other_token, other_cart) = client.customer("other@example.com").await;
    client
        .add(&other_cart, Some(&other_token), "SKU-CAP", 4)
        .await;
    let login = client
        .login("merge@example.com", "password-123", Some(&other_cart))
        .await;
    assert_eq!(login.status, 200, "the login still succeeds: {login:?}");
    let mine = client.get(&format!("/v1/carts/{cart}"), Some(&token)).await;
    assert_eq!(quantities(&mine), quantities(&merged), "nothing merged");
    let theirs = client
        .get(&format!("/v1/carts/{other_cart}"), Some(&other_token))
        .await;
    assert_eq!(quantities(&theirs), [("SKU-CAP".to_owned(), 4)]);

    // An unknown guest cart is ignored too.
    let login = client
        .login("merge@example.com", "password-123", Some("no-such-cart"))
        .await;
    assert_eq!(login.status, 200, "{login:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_carts_answer_their_owner_and_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = NodeSpec::embedded(dir.path())
        .env("EMPORIUM_ADMIN_EMAIL", "Boss@Example.com")
        .env("EMPORIUM_ADMIN_PASSWORD", "boss-password")
        .env("EMPORIUM_JWT_SECRET", SECRET);
    let node = NodeProcess::start(spec).await;
    let client = Client::new(&node);
    let (_, alice_token, _) = client.customer("alice@example.com").await;
    let (_, bob_token, _) = client.customer("bob@example.com").await;

    // POST /v1/carts with a token answers the caller's own cart.
    let own = client.post("/v1/carts", Some(&alice_token), None).await;
    assert_eq!(own.status, 200, "the login already created it: {own:?}");
    let cart = text(&own, "id");
    assert_eq!(
        own.headers["location"].to_str().unwrap(),
        format!("/v1/carts/{cart}")
    );
    let path = format!("/v1/carts/{cart}");
    let line = format!("{path}/items/SKU-MUG");
    assert_eq!(
        client
            .add(&cart, Some(&alice_token), "SKU-MUG", 2)
            .await
            .status,
        200
    );

    // No token: 401 on every cart route.
    client.get(&path, None).await.expect_problem(401);
    client
        .add(&cart, None, "SKU-MUG", 1)
        .await
        .expect_problem(401);
    client
        .put(&line, None, &json!({"quantity": 5}))
        .await
        .expect_problem(401);
    client.delete(&line, None).await.expect_problem(401);
    // Another user's token: 403.
    client
        .get(&path, Some(&bob_token))
        .await
        .expect_problem(403);
    client
        .add(&cart, Some(&bob_token), "SKU-MUG", 1)
        .await
        .expect_problem(403);
    client
        .put(&line, Some(&bob_token), &json!({"quantity": 5}))
        .await
        .expect_problem(403);
    client
        .delete(&line, Some(&bob_token))
        .await
        .expect_problem(403);
    let untouched = client.get(&path, Some(&alice_token)).await;
    assert_eq!(untouched.status, 200);
    assert_eq!(quantities(&untouched), [("SKU-MUG".to_owned(), 2)]);

    // The admin from the environment: logs in (address compared normalized), is an admin,
    // and may use anyone's cart.
    let admin_login = client
        .login("boss@example.com", "boss-password", None)
        .await;
    assert_eq!(admin_login.status, 200, "{admin_login:?}");
    let admin_token = text(&admin_login, "access_token");
    let me = client.get("/v1/users/me", Some(&admin_token)).await;
    assert_eq!(me.body["roles"], json!(["customer", "admin"]), "{me:?}");
    assert_eq!(me.body["email"], "boss@example.com");
    assert_eq!(client.get(&path, Some(&admin_token)).await.status, 200);
    let set = client
        .put(&line, Some(&admin_token), &json!({"quantity": 7}))
        .await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(quantities(&set), [("SKU-MUG".to_owned(), 7)]);
    assert_eq!(client.delete(&line, Some(&alice_token)).await.status, 200);

    // Guest carts stay open to anyone, with or without a token.
    let guest = client.api.new_cart().await;
    assert_eq!(client.add(&guest, None, "SKU-PEN", 1).await.status, 200);
    assert_eq!(
        client
            .add(&guest, Some(&bob_token), "SKU-PEN", 1)
            .await
            .status,
        200
    );
    let read = client
        .get(&format!("/v1/carts/{guest}"), Some(&alice_token))
        .await;
    assert_eq!(quantities(&read), [("SKU-PEN".to_owned(), 2)]);

    // Login makes the user's cart; a token for a user who never logged in (signed here
    // with the node's secret) shows POST /v1/carts creating it: 201, then 200, one id.
    let dave = client
        .sign_up("dave@example.com", "password-123", "Dave")
        .await;
    let dave_id = text(&dave, "id");
    let customer = ["customer".to_owned()];
    let dave_token = TokenKeys::new(SECRET.as_bytes(), Duration::from_secs(600))
        .issue(&dave_id, "dave@example.com", &customer, now_secs())
        .unwrap()
        .0;
    let first = client.post("/v1/carts", Some(&dave_token), None).await;
    assert_eq!(first.status, 201, "{first:?}");
    let second = client.post("/v1/carts", Some(&dave_token), None).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(first.body["id"], second.body["id"]);
    let dave_login = client.login("dave@example.com", "password-123", None).await;
    assert_eq!(dave_login.body["cart_id"], first.body["id"]);
    client
        .get(
            &format!("/v1/carts/{}", text(&first, "id")),
            Some(&alice_token),
        )
        .await
        .expect_problem(403);
}

/// A node started by hand to read the lines it prints before `serving on`.
async fn start_reading_stdout(
    dir: &std::path::Path,
) -> (tokio::process::Child, String, Vec<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
        .env("EMPORIUM_DATA_DIR", dir)
        .env("EMPORIUM_LOG", "warn")
        .env("EMPORIUM_NODE_ID", "test-node")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn emporium");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, url)) = line.split_once("serving on ") {
                return url.trim().to_owned();
            }
            before.push(line);
        }
        panic!("node exited before serving: {before:?}");
    })
    .await
    .expect("node printed its URL in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_accounts_and_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, printed) = start_reading_stdout(dir.path()).await;
    let admin_line = printed
        .iter()
        .find_map(|line| line.strip_prefix("demo admin: admin@emporium.local / "))
        .unwrap_or_else(|| panic!("the demo admin is announced: {printed:?}"));
    let admin_password = admin_line.trim().to_owned();
    assert!(
        printed
            .iter()
            .any(|line| line == "demo customer: demo@emporium.local / demo-password"),
        "{printed:?}"
    );
    let http = reqwest::Client::new();
    let login = |email: &'static str, password: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let response = http
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, admin) = login("admin@emporium.local", admin_password.clone()).await;
    assert_eq!(status, 200, "{admin}");
    let (status, customer) = login("demo@emporium.local", "demo-password".to_owned()).await;
    assert_eq!(status, 200, "{customer}");
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    let customer_token = customer["access_token"].as_str().unwrap().to_owned();
    let me = http
        .get(format!("{base}/v1/users/me"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["customer", "admin"]));

    // Restart on the same data dir: the generated token secret is kept, tokens stay
    // valid, and the admin password is not shown again.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let node = NodeProcess::start(NodeSpec::embedded(dir.path())).await;
    let client = Client::new(&node);
    let me = client.get("/v1/users/me", Some(&customer_token)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["email"], "demo@emporium.local");
    assert_eq!(
        client.get("/v1/users/me", Some(&admin_token)).await.body["roles"],
        json!(["customer", "admin"])
    );
    let relogin = client
        .login("admin@emporium.local", &admin_password, None)
        .await;
    assert_eq!(relogin.status, 200, "the first password still works");
    // Wait for the exit: the next start needs the store's file lock.
    node.terminate().await;

    let (_child, _, printed) = start_reading_stdout(dir.path()).await;
    assert!(
        !printed.iter().any(|line| line.starts_with("demo admin:")),
        "shown once: {printed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_password_follows_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = NodeSpec::embedded(dir.path())
        .env("EMPORIUM_ADMIN_EMAIL", "root@example.com")
        .env("EMPORIUM_ADMIN_PASSWORD", "first-password");
    let node = NodeProcess::start(spec).await;
    let client = Client::new(&node);
    assert_eq!(
        client
            .login("root@example.com", "first-password", None)
            .await
            .status,
        200
    );
    node.terminate().await;
    let spec = NodeSpec::embedded(dir.path())
        .env("EMPORIUM_ADMIN_EMAIL", "root@example.com")
        .env("EMPORIUM_ADMIN_PASSWORD", "second-password");
    let node = NodeProcess::start(spec).await;
    let client = Client::new(&node);
    client
        .login("root@example.com", "first-password", None)
        .await
        .expect_problem(401);
    let login = client
        .login("root@example.com", "second-password", None)
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    let me = client
        .get("/v1/users/me", Some(&text(&login, "access_token")))
        .await;
    assert_eq!(me.body["roles"], json!(["customer", "admin"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(NodeSpec::embedded(dir.path())).await;
    let client = Client::new(&node);
    let created = client
        .sign_up("guess@example.com", "the-right-one", "Guess")
        .await;
    assert_eq!(created.status, 201);
    // A success takes its attempt back: failures before it do not add up with later ones.
    for _ in 0..4 {
        client
            .login("guess@example.com", "wrong-guess", None)
            .await
            .expect_problem(401);
    }
    let ok = client
        .login("guess@example.com", "the-right-one", None)
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    for _ in 0..5 {
        client
            .login("GUESS@example.com", "wrong-guess", None)
            .await
            .expect_problem(401);
    }
    // Over the limit: 429, even with the right password, with a Retry-After.
    let limited = client
        .login("guess@example.com", "the-right-one", None)
        .await;
    limited.expect_problem(429);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{limited:?}");
}
