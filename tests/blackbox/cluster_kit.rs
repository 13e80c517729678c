//! The cluster tests' kit: the cluster itself (several real `emporium` nodes sharing one
//! fresh store, the balancer, the load) is `emporium_testkit::cluster`, shared with the
//! benchmark harness; this module names what the tests use and adds the checks every fault
//! test ends with.
//!
//! - [`CartChecks::assert_carts_hold_exactly_the_acknowledged_writes`]: reads every cart
//!   through every given node: acknowledged lines present once, refused ones absent.
//! - [`LoadChecks`]: no stale read, no failed request.
//! - [`shops`]: a [`Shop`] on each running member.

use std::collections::{BTreeMap, BTreeSet};

pub use emporium_testkit::cluster::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Balancer, CLUSTER_SECRET, Cluster, Endpoints, JWT_SECRET, Load,
    LoadPlan, LoadReport, Op, Outcome, PRODUCTS, Placement, SHARD_COUNT, describe, free_port,
    lines_of, next_loopback_host, shards_by_node, sku,
};

use crate::checkout::Shop;

/// A [`Shop`] on each running member, signed in as the cluster's admin.
pub async fn shops(cluster: &Cluster) -> Vec<Shop> {
    let mut shops = Vec::new();
    for member in cluster.members.iter().filter(|member| member.is_running()) {
        shops.push(Shop::with_admin(member.running(), ADMIN_EMAIL, ADMIN_PASSWORD).await);
    }
    shops
}

/// What the fault tests check of the carts at the end.
#[allow(async_fn_in_trait)] // used in this test binary only
pub trait CartChecks {
    /// Every cart of `report` (and of `extra`) read through each of `via`: the same lines
    /// through every node; every acknowledged write present, once; every write refused with
    /// a definite answer absent. A write whose outcome is unknown (the node answered 504, or
    /// the connection was lost after the request was sent) may have been applied or not: a
    /// client cannot tell either, so both are allowed, but never twice.
    async fn assert_carts_hold_exactly_the_acknowledged_writes(
        &self,
        report: &LoadReport,
        extra: &[Op],
        via: &[usize],
    ) -> FinalState;
}

impl CartChecks for Cluster {
    async fn assert_carts_hold_exactly_the_acknowledged_writes(
        &self,
        report: &LoadReport,
        extra: &[Op],
        via: &[usize],
    ) -> FinalState {
        let mut state = FinalState::default();
        let writes: Vec<&Op> = report
            .ops
            .iter()
            .chain(extra)
            .filter(|op| op.write.is_some())
            .collect();
        let carts: BTreeSet<&str> = report
            .carts
            .iter()
            .map(String::as_str)
            .chain(writes.iter().map(|op| op.cart.as_str()))
            .collect();
        for cart in carts {
            let lines = cart_lines_through_all(self, cart, via).await;
            let cart_writes: Vec<&Op> = writes
                .iter()
                .copied()
                .filter(|op| op.cart == cart)
                .collect();
            state.tally.check_cart(cart, &lines, &cart_writes);
            state.carts.insert(cart.to_owned(), lines);
        }
        eprintln!("final state: {}", state.tally);
        state
    }
}

/// The cart's lines (SKU → quantity), identical through every node of `via`.
async fn cart_lines_through_all(
    cluster: &Cluster,
    cart: &str,
    via: &[usize],
) -> BTreeMap<String, u64> {
    let mut seen: Option<(String, BTreeMap<String, u64>)> = None;
    for &index in via {
        let lines = cluster.cart_lines(index, cart).await;
        let id = &cluster.members[index].id;
        match &seen {
            None => seen = Some((id.clone(), lines)),
            Some((first, expected)) => assert_eq!(
                &lines, expected,
                "cart {cart} read through {id} differs from {first}"
            ),
        }
    }
    seen.expect("at least one node to read through").1
}

/// What the fault tests check of a load.
pub trait LoadChecks {
    /// No successful read misses a write acknowledged before the read was sent: a node
    /// serves a shard taken from a live holder only once that holder has let go of it (or
    /// can no longer serve anything), so two nodes never answer for one actor at once
    /// (ARCHITECTURE.md, cluster invariants).
    fn assert_no_stale_reads(&self, label: &str);

    /// Every request answered 2xx (the "zero failed requests" of a graceful change).
    fn assert_no_failures(&self, label: &str);
}

impl LoadChecks for LoadReport {
    fn assert_no_stale_reads(&self, label: &str) {
        eprintln!("{label}: {} stale reads", self.stale_reads.len());
        let stale: Vec<&str> = self
            .stale_reads
            .iter()
            .map(|stale| stale.description.as_str())
            .collect();
        assert!(
            stale.is_empty(),
            "{label}: stale reads:\n{}",
            stale.join("\n")
        );
    }

    fn assert_no_failures(&self, label: &str) {
        let failures = self.failures();
        let shown: Vec<String> = failures.iter().take(10).map(|&op| describe(op)).collect();
        assert!(
            failures.is_empty(),
            "{label}: {} of {} requests failed; first ones:\n{}",
            failures.len(),
            self.ops.len(),
            shown.join("\n")
        );
    }
}

/// The carts at the end, and how the writes came out.
#[derive(Default)]
pub struct FinalState {
    pub carts: BTreeMap<String, BTreeMap<String, u64>>,
    pub tally: Tally,
}

#[derive(Default, Debug)]
pub struct Tally {
    pub acked: usize,
    pub refused: usize,
    pub unknown: usize,
    /// Unknown-outcome writes that turned out applied.
    pub unknown_applied: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged writes all present once, {} refused all absent, {} of unknown outcome ({} applied)",
            self.acked, self.refused, self.unknown, self.unknown_applied
        )
    }
}

impl Tally {
    /// Check one cart's final `lines` against the writes sent to it.
    fn check_cart(&mut self, cart: &str, lines: &BTreeMap<String, u64>, writes: &[&Op]) {
        for op in writes {
            let sku = op.write.as_deref().expect("a write");
            let quantity = lines.get(sku).copied();
            let why = describe(op);
            assert!(
                quantity.is_none_or(|quantity| quantity == 1),
                "cart {cart}: {sku} applied {quantity:?} times; {why}"
            );
            match op.exchange.outcome() {
                Outcome::Acked => {
                    self.acked += 1;
                    assert!(
                        quantity.is_some(),
                        "cart {cart}: acknowledged write lost; {why}"
                    );
                }
                Outcome::Refused => {
                    self.refused += 1;
                    assert!(
                        quantity.is_none(),
                        "cart {cart}: refused write applied; {why}"
                    );
                }
                Outcome::Unknown => {
                    self.unknown += 1;
                    self.unknown_applied += usize::from(quantity.is_some());
                }
            }
        }
        let written: BTreeSet<&str> = writes.iter().filter_map(|op| op.write.as_deref()).collect();
        let phantoms: Vec<&String> = lines
            .keys()
            .filter(|sku| !written.contains(sku.as_str()))
            .collect();
        assert!(
            phantoms.is_empty(),
            "cart {cart} holds lines nobody wrote: {phantoms:?}"
        );
    }
}
