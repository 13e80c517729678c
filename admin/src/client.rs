//! A client of the admin API (used by `emporium ctl`): connects to one node, sends the token
//! with every call, and answers the runtime's own status types, so that callers print what
//! the HTTP admin routes serve.
//!
//! Every error says what kind of failure it is ([`ClientError::failure`]): the exit codes of
//! `emporium ctl` are made from it.

use std::time::Duration;

use emporium_runtime::{
    ActorLocation, ClusterEvent, ClusterStatus, DrainOutcome, PassivateOutcome,
};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status, Streaming};

use crate::convert::{self, MalformedReply};
use crate::proto;
use crate::proto::admin_client::AdminClient as Raw;
use crate::proto::watch_cluster_reply::Item;

/// Where and how to reach a node's admin API.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// `host:port` (plain, or TLS when `ca_cert` is set), or an `http://` / `https://` URL.
    pub addr: String,
    /// Sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// PEM certificate(s) to trust for TLS (the node's certificate, or its CA).
    pub ca_cert: Option<Vec<u8>>,
    /// Deadline of connecting, and of each call that is not a stream.
    pub timeout: Duration,
}

/// What kind of failure an error is (what a script decides on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The node answered: the operation was refused or failed.
    Refused,
    /// Bad arguments (found by the client or by the server).
    Usage,
    /// The node could not be reached, or answered that it (or what it had to ask) is
    /// unavailable, or no answer came in time.
    Unreachable,
    /// No valid token, or not an admin's.
    Denied,
    /// No such node or actor kind.
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] Status),
    #[error(transparent)]
    Malformed(#[from] MalformedReply),
    /// The node closed a stream that only ends when it stops.
    #[error("the node closed the event stream (it is stopping)")]
    Closed,
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission denied",
        Code::NotFound => "not found",
        Code::FailedPrecondition => "refused",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "outcome unknown",
        Code::InvalidArgument => "invalid argument",
        Code::Unknown | Code::Cancelled => "no answer",
        _ => "failed",
    }
}

impl ClientError {
    pub fn failure(&self) -> Failure {
        match self {
            Self::Usage(_) => Failure::Usage,
            Self::Connect { .. } | Self::Timeout(_) | Self::Closed => Failure::Unreachable,
            Self::Malformed(_) => Failure::Refused,
            // A status the client's HTTP/2 stack made from a broken exchange (it carries the
            // transport error underneath, e.g. "h2 protocol error" from plain HTTP/2 to a TLS
            // port) is no answer from the node, whatever code it was given.
            Self::Status(status) if std::error::Error::source(status).is_some() => {
                Failure::Unreachable
            }
            Self::Status(status) => match status.code() {
                Code::Unauthenticated | Code::PermissionDenied => Failure::Denied,
                Code::NotFound => Failure::NotFound,
                Code::InvalidArgument => Failure::Usage,
                // `Unknown`: the connection broke mid-call (the server never answers it).
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
                    Failure::Unreachable
                }
                _ => Failure::Refused,
            },
        }
    }
}

/// One item of the cluster's event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchItem {
    Event(ClusterEvent),
    /// The history has been sent; what follows is live.
    CaughtUp,
    /// The reader fell behind and missed this many events.
    Lagged(u64),
}

/// A connection to one node's admin API.
#[derive(Clone)]
pub struct AdminClient {
    raw: Raw<Channel>,
    token: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl AdminClient {
    pub async fn connect(settings: ClientSettings) -> Result<Self, ClientError> {
        let uri = uri_of(&settings.addr, settings.ca_cert.is_some())?;
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|error| ClientError::Usage(format!("bad address {uri:?}: {error}")))?
            .connect_timeout(settings.timeout);
        if uri.starts_with("https://") {
            let ca = settings.ca_cert.as_ref().ok_or_else(|| {
                ClientError::Usage(format!(
                    "{uri} is TLS: give the certificate to trust (--ca-cert)"
                ))
            })?;
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            endpoint = endpoint.tls_config(tls).map_err(|error| {
                ClientError::Usage(format!("bad TLS settings: {}", error_chain(&error)))
            })?;
        }
        let token = settings
            .token
            .map(|token| {
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Usage("the token must be printable ASCII".to_owned()))
            })
            .transpose()?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| ClientError::Connect {
                addr: uri.clone(),
                reason: error_chain(&error),
            })?;
        Ok(Self {
            raw: Raw::new(channel),
            token,
            timeout: settings.timeout,
        })
    }

    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        let request = self.request(proto::GetClusterRequest {});
        let view = self.unary(self.raw.clone().get_cluster(request)).await?;
        Ok(convert::cluster_status(view))
    }

    pub async fn locate_actor(&self, kind: &str, key: &str) -> Result<ActorLocation, ClientError> {
        let request = self.request(proto::LocateActorRequest {
            kind: kind.to_owned(),
            key: key.to_owned(),
        });
        let location = self.unary(self.raw.clone().locate_actor(request)).await?;
        Ok(convert::location_of(location))
    }

    pub async fn drain_node(&self, node: &str) -> Result<DrainOutcome, ClientError> {
        let request = self.request(proto::DrainNodeRequest {
            node_id: node.to_owned(),
        });
        let outcome = self.unary(self.raw.clone().drain_node(request)).await?;
        Ok(convert::drained(outcome))
    }

    pub async fn passivate_actor(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<PassivateOutcome, ClientError> {
        let request = self.request(proto::PassivateActorRequest {
            kind: kind.to_owned(),
            key: key.to_owned(),
        });
        let outcome = self
            .unary(self.raw.clone().passivate_actor(request))
            .await?;
        Ok(convert::passivated(outcome))
    }

    /// The nodes that ran a lease round.
    pub async fn rebalance(&self) -> Result<Vec<String>, ClientError> {
        let request = self.request(proto::RebalanceRequest {});
        let outcome = self.unary(self.raw.clone().rebalance(request)).await?;
        Ok(outcome.nodes)
    }

    /// The cluster's events: the history, [`WatchItem::CaughtUp`], then live ones. Opening
    /// the stream is bounded by the timeout; the stream itself is not.
    pub async fn watch(&self) -> Result<EventStream, ClientError> {
        let request = self.request(proto::WatchClusterRequest {});
        let stream = self.unary(self.raw.clone().watch_cluster(request)).await?;
        Ok(EventStream { stream })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }

    async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => Ok(answer?.into_inner()),
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }
}

/// The open event stream of [`AdminClient::watch`].
pub struct EventStream {
    stream: Streaming<proto::WatchClusterReply>,
}

impl EventStream {
    /// The next item; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<WatchItem, ClientError>> {
        let reply = match self.stream.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => return None,
            Err(status) => return Some(Err(status.into())),
        };
        Some(match reply.item {
            Some(Item::Event(event)) => convert::event_of(event)
                .map(WatchItem::Event)
                .map_err(ClientError::from),
            Some(Item::CaughtUp(_)) => Ok(WatchItem::CaughtUp),
            Some(Item::Lagged(lagged)) => Ok(WatchItem::Lagged(lagged.missed)),
            None => Err(MalformedReply("a watch reply without its item").into()),
        })
    }
}

/// `host:port` becomes `http://host:port` (`https://` when a CA is given); a URL stays.
fn uri_of(addr: &str, tls: bool) -> Result<String, ClientError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(ClientError::Usage(
            "no admin address: give --addr or set EMPORIUM_ADMIN_ADDR".to_owned(),
        ));
    }
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return Ok(addr.to_owned());
    }
    if addr.contains("://") {
        return Err(ClientError::Usage(format!(
            "{addr:?}: the address is host:port, http://host:port or https://host:port"
        )));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}"))
}

/// An error and its sources on one line (transport errors hide the useful part in sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_uris() {
        assert_eq!(uri_of("n1:9090", false).unwrap(), "http://n1:9090");
        assert_eq!(uri_of("n1:9090", true).unwrap(), "https://n1:9090");
        assert_eq!(uri_of("https://n1:1", false).unwrap(), "https://n1:1");
        assert_eq!(uri_of(" http://n1:1 ", true).unwrap(), "http://n1:1");
        assert!(matches!(uri_of("", false), Err(ClientError::Usage(_))));
        assert!(matches!(
            uri_of("ftp://x:1", false),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn failures_follow_the_codes() {
        let failure = |code| ClientError::Status(Status::new(code, "x")).failure();
        assert_eq!(failure(Code::Unauthenticated), Failure::Denied);
        assert_eq!(failure(Code::PermissionDenied), Failure::Denied);
        assert_eq!(failure(Code::NotFound), Failure::NotFound);
        assert_eq!(failure(Code::FailedPrecondition), Failure::Refused);
        assert_eq!(failure(Code::Internal), Failure::Refused);
        assert_eq!(failure(Code::Unavailable), Failure::Unreachable);
        assert_eq!(failure(Code::InvalidArgument), Failure::Usage);
        let mut broken = Status::new(Code::Internal, "h2 protocol error: http2 error");
        broken.set_source(std::sync::Arc::new(std::io::Error::other(
            "connection reset",
        )));
        assert_eq!(ClientError::Status(broken).failure(), Failure::Unreachable);
        assert_eq!(
            ClientError::Timeout(Duration::from_secs(1)).failure(),
            Failure::Unreachable
        );
    }
}
