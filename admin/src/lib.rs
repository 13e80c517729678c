//! # emporium-admin: the admin gRPC API
//!
//! **What.** A `tonic` service (`proto/emporium/admin/v1/admin.proto`, package
//! `emporium.admin.v1`) for operators: the cluster view, where an actor lives, drain a node,
//! passivate an actor, rebalance now, and a stream of the cluster's events. Plus the client
//! `emporium ctl` uses.
//!
//! **One implementation.** Every RPC is one call of the runtime's operations
//! (`emporium_runtime::operations`), the calls the HTTP admin routes make too; this crate
//! only adapts them to gRPC: [`server`] (token check, conversion, error codes) and
//! [`client`]. It depends on the runtime alone (no HTTP edge, no domain).
//!
//! **Contract.**
//! - Every call needs `authorization: Bearer <token>`, judged by the injected
//!   [`Authorizer`]: `UNAUTHENTICATED` without a valid token, `PERMISSION_DENIED` for a
//!   valid one that is not an admin's.
//! - Errors keep the meaning they have on HTTP (see `errors`): `NOT_FOUND` (unknown node or
//!   kind), `FAILED_PRECONDITION` (refused in the cluster's state), `UNAVAILABLE` (retry),
//!   `DEADLINE_EXCEEDED` (outcome unknown), `INVALID_ARGUMENT` (an empty name), `INTERNAL`.
//! - `WatchCluster` sends the answering node's history, a `caught_up` marker, then live
//!   events; a reader that falls behind gets a `lagged` marker instead of what it missed.
//!
//! The code is generated at build time with the `protoc` of `protoc-bin-vendored`.
//!
//! ## Modules
//!
//! - `proto`: the generated messages, server trait and client.
//! - `server`: [`AdminService`], [`server`] (to mount elsewhere), [`serve`] (which ends
//!   the event streams when it stops), [`ServerTls`].
//! - `client`: [`AdminClient`], [`ClientSettings`], [`ClientError`] and its [`Failure`] kind.
//! - `auth`: [`Authorizer`], [`AuthError`], reading the bearer token.
//! - `convert`: runtime status types to messages and back.
//! - `errors`: runtime errors to gRPC codes.

mod auth;
pub mod client;
mod convert;
mod errors;
mod server;

/// The generated code of `emporium.admin.v1`.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("emporium.admin.v1");
}

pub use auth::{AuthError, Authorizer};
pub use client::{AdminClient, ClientError, ClientSettings, EventStream, Failure, WatchItem};
pub use convert::MalformedReply;
pub use server::{AdminService, SHUTDOWN_GRACE, ServeError, ServerTls, serve, server};
/// The attribute an [`Authorizer`] implementation needs (`async fn check`).
pub use tonic::async_trait;
