//! The cluster process kit: real `emporium` nodes started, driven and torn down from outside,
//! shared by the black-box tests (`tests/blackbox`) and the benchmark harness
//! (`load/src/bench`), so that both start clusters the same way.
//!
//! | module | concept |
//! | --- | --- |
//! | [`process`] | one node process: [`NodeSpec`] (binary, data dir, env, launcher, log), [`NodeProcess`] (start and learn the URL, `kill -9`, `SIGSTOP`/`SIGCONT`, `SIGTERM`) |
//! | [`http`] | [`Api`] and [`Answer`]: JSON over HTTP to one node; [`metric_sum`] over `/metrics` |
//! | [`store`] | scratch stores: a fresh PostgreSQL database or CQL keyspace ([`TestStore`], [`Provisioned`], [`StoreServers`]) |
//! | [`events`] | [`TestStream`]: a JetStream stream of its own (cluster mode needs NATS) |
//! | [`members`] | [`Placement`] (addresses, launcher, per-member URLs) and [`Member`] |
//! | [`lifecycle`] | [`Cluster`]: provision, start members with the running ones as seeds, wait until complete, admin requests, products and carts, finish |
//! | [`waits`] | polling under a deadline, and what "complete" and "settled" mean for a cluster view |
//! | [`balancer`] | [`Balancer`] (round robin, a refused connection moves on; the outcome of each request), [`Endpoints`] |
//! | [`load`] | [`Load`]: workers writing one distinct line per write and reading back; [`LoadReport`] |
//!
//! What a test asserts about the results (no stale read, every acknowledged write present)
//! stays in the test; the kit only starts, drives and reports.

pub mod balancer;
pub mod events;
pub mod http;
pub mod lifecycle;
pub mod load;
pub mod members;
pub mod process;
pub mod store;
pub mod waits;

pub use balancer::{Balancer, Endpoints, Exchange, Outcome, Reply, http_client};
pub use events::{Stored, TestStream};
pub use http::{Answer, Api, metric_sum};
pub use lifecycle::{
    ADMIN_EMAIL, ADMIN_PASSWORD, CLIENT_TIMEOUT, CLUSTER_SECRET, Cluster, JWT_SECRET, PRODUCTS,
    READY_DEADLINE, sku,
};
pub use load::{Load, LoadPlan, LoadReport, MAX_ROUNDS, Op, StaleRead, describe, lines_of};
pub use members::{Member, Placement, free_port, next_loopback_host};
pub use process::{NodeProcess, NodeSpec, default_binary, node_command, set_default_binary};
pub use store::{Provisioned, StoreServers, TestStore};
pub use waits::{
    SHARD_COUNT, shards_by_node, shards_line, view_is_complete, wait_settled, wait_until,
};
