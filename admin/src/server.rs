//! The admin service: each RPC checks the caller's token, makes one call of the runtime's
//! operations (`emporium_runtime::operations`, the same calls the HTTP admin routes make) and
//! converts the answer. Nothing else happens here, so the two adapters cannot drift apart.
//!
//! [`server`] builds the service, [`serve`] runs it on a bound listener (plain HTTP/2, or
//! TLS with a [`ServerTls`] identity) until its shutdown future resolves.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::Runtime;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, TcpListenerStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::auth::{Authorizer, authorize};
use crate::convert;
use crate::errors::{operation_status, required, runtime_status};
use crate::proto;
use crate::proto::admin_server::{Admin, AdminServer};
use crate::proto::watch_cluster_reply::Item;

/// The admin service of one node.
pub struct AdminService {
    runtime: Runtime,
    authorizer: Arc<dyn Authorizer>,
    /// `true` once the event streams must end (the server is stopping).
    closing: Arc<watch::Sender<bool>>,
}

impl AdminService {
    /// The admin service over `runtime`, letting through the calls `authorizer` accepts.
    pub fn new(runtime: Runtime, authorizer: Arc<dyn Authorizer>) -> Self {
        Self {
            runtime,
            authorizer,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// End every open event stream, and those opened later at once: a stream never ends by
    /// itself, so a server that stops gracefully would wait for it forever.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }
}

/// The admin service as a tonic service, to mount in a server of one's own (its event
/// streams then end only when their clients go away; [`serve`] ends them when it stops).
pub fn server(runtime: Runtime, authorizer: Arc<dyn Authorizer>) -> AdminServer<AdminService> {
    AdminServer::new(AdminService::new(runtime, authorizer))
}

/// The certificate chain and private key the admin API serves TLS with.
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
}

impl ServerTls {
    /// From PEM text: the certificate chain (leaf first) and its private key.
    pub fn from_pem(cert: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        Self {
            identity: Identity::from_pem(cert, key),
        }
    }

    /// From PEM files, checked now (a bad certificate or key is an error here, not when
    /// serving begins).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ServeError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ServeError::ReadPem {
                path: path.display().to_string(),
                source,
            })
        };
        let tls = Self::from_pem(read(cert)?, read(key)?);
        Server::builder().tls_config(ServerTlsConfig::new().identity(tls.identity.clone()))?;
        Ok(tls)
    }
}

/// Why the admin server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read {path}: {source}")]
    ReadPem {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad certificate or key, or the server failed while serving.
    #[error("admin API: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long calls in flight may finish once the server is told to stop. Event streams never
/// finish by themselves: they are cut after it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve `service` on `listener` until `shutdown` resolves, then end the event streams,
/// stop taking calls and cut those still running [`SHUTDOWN_GRACE`] later. The caller binds
/// the listener, so that a taken port fails where the address is configured, and port 0 can
/// be read back before serving.
pub async fn serve(
    service: AdminService,
    listener: TcpListener,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(ServerTlsConfig::new().identity(tls.identity))?;
    }
    let (told, heard) = oneshot::channel::<()>();
    let closing = Arc::clone(&service.closing);
    let signal = async move {
        shutdown.await;
        closing.send_replace(true);
        let _ = told.send(());
    };
    let serving = builder
        .add_service(AdminServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    tokio::pin!(serving);
    tokio::select! {
        biased;
        served = &mut serving => served?,
        () = async {
            if heard.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => tracing::info!("admin API: calls still running after the grace period were cut"),
    }
    Ok(())
}

impl AdminService {
    async fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        authorize(self.authorizer.as_ref(), request.metadata()).await
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<proto::WatchClusterReply, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn get_cluster(
        &self,
        request: Request<proto::GetClusterRequest>,
    ) -> Result<Response<proto::ClusterView>, Status> {
        self.authorize(&request).await?;
        let status = self.runtime.cluster_status().await;
        Ok(Response::new(convert::cluster_view(status)))
    }

    async fn locate_actor(
        &self,
        request: Request<proto::LocateActorRequest>,
    ) -> Result<Response<proto::ActorLocation>, Status> {
        self.authorize(&request).await?;
        let message = request.get_ref();
        let kind = required("kind", &message.kind)?;
        let key = required("key", &message.key)?;
        let location = self
            .runtime
            .locate_actor(kind, key)
            .await
            .map_err(|error| runtime_status(&error))?;
        Ok(Response::new(convert::actor_location(location)))
    }

    async fn drain_node(
        &self,
        request: Request<proto::DrainNodeRequest>,
    ) -> Result<Response<proto::DrainOutcome>, Status> {
        self.authorize(&request).await?;
        let node = required("node_id", &request.get_ref().node_id)?;
        let outcome = self
            .runtime
            .drain_node(node)
            .await
            .map_err(operation_status)?;
        Ok(Response::new(convert::drain_outcome(outcome)))
    }

    async fn passivate_actor(
        &self,
        request: Request<proto::PassivateActorRequest>,
    ) -> Result<Response<proto::PassivateOutcome>, Status> {
        self.authorize(&request).await?;
        let message = request.get_ref();
        let kind = required("kind", &message.kind)?;
        let key = required("key", &message.key)?;
        let outcome = self
            .runtime
            .passivate_actor(kind, key)
            .await
            .map_err(operation_status)?;
        Ok(Response::new(convert::passivate_outcome(outcome)))
    }

    async fn rebalance(
        &self,
        request: Request<proto::RebalanceRequest>,
    ) -> Result<Response<proto::RebalanceOutcome>, Status> {
        self.authorize(&request).await?;
        let nodes = self.runtime.rebalance().await.map_err(operation_status)?;
        Ok(Response::new(proto::RebalanceOutcome { nodes }))
    }

    type WatchClusterStream = ReplyStream;

    async fn watch_cluster(
        &self,
        request: Request<proto::WatchClusterRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        self.authorize(&request).await?;
        let feed = self.runtime.cluster_events();
        let history = tokio_stream::iter(feed.history).map(event_reply);
        let caught_up = tokio_stream::once(reply(Item::CaughtUp(proto::CaughtUp {})));
        let live = BroadcastStream::new(feed.live).map(|received| match received {
            Ok(event) => Some(event_reply(event)),
            // The reader fell behind: say how much it missed (its `seq` jumps as well).
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Some(reply(Item::Lagged(proto::Lagged { missed })))
            }
        });
        // `None` marks the end: the server is stopping.
        let closing = self.closing.subscribe();
        let closed = *closing.borrow();
        let close = WatchStream::from_changes(closing)
            .filter(|closing| *closing)
            .map(|_| None);
        let live = live
            .merge(close)
            .take_while(move |item| item.is_some() && !closed)
            .filter_map(|item| item);
        let stream = history.chain(caught_up).chain(live).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}

fn reply(item: Item) -> proto::WatchClusterReply {
    proto::WatchClusterReply { item: Some(item) }
}

fn event_reply(event: emporium_runtime::ClusterEvent) -> proto::WatchClusterReply {
    reply(Item::Event(convert::cluster_event(event)))
}
