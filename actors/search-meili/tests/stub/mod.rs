//! A stub Meilisearch: an HTTP server on 127.0.0.1:0 answering the endpoints the adapter
//! calls with the shapes of Meilisearch's HTTP API reference, and recording every request.
//!
//! By default every write is enqueued (`202`, a task summary) and every task has succeeded
//! when asked for; searches find nothing. A test scripts other answers with
//! [`Stub::reply`]: the next request with that method and path (query string included)
//! gets it instead, once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const TIME: &str = "2025-06-01T12:00:00.000000Z";

/// One request as the stub received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query string.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body; `Null` without a body.
    pub body: Value,
}

/// An answer: a status and a body (JSON, or any text).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
        }
    }

    /// A Meilisearch error: `{message, code, type, link}`.
    pub fn error(status: u16, code: &str, kind: &str, message: &str) -> Self {
        Self::json(status, error_body(code, kind, message))
    }
}

pub fn error_body(code: &str, kind: &str, message: &str) -> Value {
    json!({
        "message": message,
        "code": code,
        "type": kind,
        "link": format!("https://docs.meilisearch.com/errors#{code}"),
    })
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    scripted: Vec<(String, String, Reply)>,
    /// Task uid → (type, index uid).
    tasks: HashMap<u64, (String, String)>,
}

/// The running stub. Dropping it leaves the server running until the test ends.
#[derive(Clone)]
pub struct Stub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Stub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stub = Self {
            url,
            state: Arc::default(),
        };
        let serving = stub.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let stub = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let stub = stub.clone();
                        async move { Ok::<_, Infallible>(stub.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        stub
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answer the next `method path` request with `reply`.
    pub fn reply(&self, method: &str, path: &str, reply: Reply) {
        self.state()
            .scripted
            .push((method.to_owned(), path.to_owned(), reply));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// The requests so far other than task polls.
    pub fn calls(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| !request.path.starts_with("/tasks/"))
            .collect()
    }

    /// How many times `path` was requested.
    pub fn count(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.path == path)
            .count()
    }

    /// Forget the requests so far.
    pub fn clear(&self) {
        self.state().requests.clear();
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let recorded = record(request).await;
        let reply = {
            let mut state = self.state();
            state.requests.push(recorded.clone());
            let scripted = state
                .scripted
                .iter()
                .position(|(method, path, _)| *method == recorded.method && *path == recorded.path);
            match scripted {
                Some(at) => state.scripted.remove(at).2,
                None => default_reply(&mut state, &recorded),
            }
        };
        Response::builder()
            .status(reply.status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(reply.body)))
            .unwrap()
    }
}

async fn record(request: Request<Incoming>) -> Recorded {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|path| path.to_string())
        .unwrap_or_default();
    let authorization = header("authorization");
    let content_type = header("content-type");
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Recorded {
        method,
        path,
        authorization,
        content_type,
        body,
    }
}

/// What Meilisearch answers when all goes well.
fn default_reply(state: &mut State, request: &Recorded) -> Reply {
    let segments: Vec<&str> = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_start_matches('/')
        .split('/')
        .collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["indexes"]) => {
            let uid = request.body["uid"].as_str().unwrap_or_default().to_owned();
            enqueue(state, "indexCreation", &uid)
        }
        ("GET", ["indexes", uid]) => Reply::json(200, index_body(uid, Some("id"))),
        ("DELETE", ["indexes", uid]) => enqueue(state, "indexDeletion", uid),
        ("PATCH", ["indexes", uid, "settings"]) | ("PUT", ["indexes", uid, "settings", _]) => {
            enqueue(state, "settingsUpdate", uid)
        }
        ("POST", ["indexes", uid, "documents"]) => enqueue(state, "documentAdditionOrUpdate", uid),
        ("GET", ["indexes", _, "stats"]) => Reply::json(200, stats_body(0)),
        ("GET", ["tasks", uid]) => match uid.parse().ok().and_then(|uid| state.tasks.get(&uid)) {
            Some((kind, index)) => Reply::json(200, task_body(uid, "succeeded", kind, index)),
            None => Reply::error(404, "task_not_found", "invalid_request", "Task not found."),
        },
        ("POST", ["multi-search"]) => Reply::json(200, empty_results(&request.body)),
        _ => Reply::error(404, "not_found", "invalid_request", "Not found."),
    }
}

fn enqueue(state: &mut State, kind: &str, index: &str) -> Reply {
    let uid = state.tasks.len() as u64;
    state.tasks.insert(uid, (kind.to_owned(), index.to_owned()));
    Reply::json(202, task_summary(uid, kind, index))
}

/// The `202 Accepted` answer to a write: a summarized task.
pub fn task_summary(uid: u64, kind: &str, index: &str) -> Value {
    json!({
        "taskUid": uid,
        "indexUid": index,
        "status": "enqueued",
        "type": kind,
        "enqueuedAt": TIME,
    })
}

/// `GET /tasks/{uid}`: a task in `status`.
pub fn task_body(uid: &str, status: &str, kind: &str, index: &str) -> Value {
    let done = matches!(status, "succeeded" | "failed");
    let started = status != "enqueued";
    json!({
        "uid": uid.parse::<u64>().unwrap_or_default(),
        "batchUid": if started { json!(0) } else { Value::Null },
        "indexUid": index,
        "status": status,
        "type": kind,
        "canceledBy": null,
        "details": details(kind),
        "error": null,
        "duration": if done { json!("PT0.004S") } else { Value::Null },
        "enqueuedAt": TIME,
        "startedAt": if started { json!(TIME) } else { Value::Null },
        "finishedAt": if done { json!(TIME) } else { Value::Null },
    })
}

/// `GET /tasks/{uid}` of a failed task.
pub fn failed_task_body(uid: &str, kind: &str, index: &str, error: Value) -> Value {
    let mut body = task_body(uid, "failed", kind, index);
    body["error"] = error;
    body
}

fn details(kind: &str) -> Value {
    match kind {
        "indexCreation" => json!({ "primaryKey": "id" }),
        "documentAdditionOrUpdate" => json!({ "receivedDocuments": 1, "indexedDocuments": 1 }),
        "indexDeletion" => json!({ "deletedDocuments": 0 }),
        _ => json!({}),
    }
}

/// `GET /indexes/{uid}`.
pub fn index_body(uid: &str, primary_key: Option<&str>) -> Value {
    json!({
        "uid": uid,
        "createdAt": TIME,
        "updatedAt": TIME,
        "primaryKey": primary_key,
    })
}

/// `GET /indexes/{uid}/stats`.
pub fn stats_body(documents: u64) -> Value {
    json!({
        "numberOfDocuments": documents,
        "rawDocumentDbSize": 4096,
        "avgDocumentSize": 64,
        "isIndexing": false,
        "numberOfEmbeddings": 0,
        "numberOfEmbeddedDocuments": 0,
        "fieldDistribution": {},
    })
}

/// One search result: `hits`, with the `page` fields when the query pages and the
/// `offset`/`limit` ones otherwise, and a facet distribution when it asks for one.
pub fn result(query: &Value, hits: Vec<Value>, total: u64, facets: Value) -> Value {
    let mut result = json!({
        "indexUid": query["indexUid"],
        "hits": hits,
        "query": query.get("q").cloned().unwrap_or(json!("")),
        "processingTimeMs": 1,
    });
    if query.get("page").is_some() {
        result["page"] = query["page"].clone();
        result["hitsPerPage"] = json!(20);
        result["totalPages"] = json!(total.div_ceil(20));
        result["totalHits"] = json!(total);
    } else {
        result["offset"] = query.get("offset").cloned().unwrap_or(json!(0));
        result["limit"] = query.get("limit").cloned().unwrap_or(json!(20));
        result["estimatedTotalHits"] = json!(total);
    }
    if query.get("facets").is_some() {
        result["facetDistribution"] = json!({ "category": facets });
        result["facetStats"] = json!({});
    }
    result
}

fn empty_results(body: &Value) -> Value {
    let results: Vec<Value> = body["queries"]
        .as_array()
        .map(|queries| {
            queries
                .iter()
                .map(|query| result(query, Vec::new(), 0, json!({})))
                .collect()
        })
        .unwrap_or_default();
    json!({ "results": results })
}
