//! Following one life's leases: passivate what moved away, arm the reminders of what
//! arrived, count both, time failovers, and ask previous holders to hand over.
//!
//! - A shard **gained** gets its stored reminders armed here (and once more a few seconds
//!   later, for reminders the previous owner committed before it noticed the move).
//! - A shard **lost** gets its idle activations passivated at once (busy ones retire when
//!   the message they are running is done; see `activation`).
//! - When the life **ends** (the node fenced itself), everything it held is let go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::forwarding::request_handovers;
use super::life::Life;
use crate::leases::{LeaseHolder, LeaseTable};
use crate::membership::Liveness;
use crate::placement::Shard;
use crate::runtime::{Runtime, WeakRuntime};
use crate::transport::Transport;

/// Reminders of a gained shard are armed again after this, for late commits of the
/// previous owner.
const REARM_AFTER: Duration = Duration::from_secs(3);

/// Follow `life`'s lease table until the life ends or the runtime is gone (and record its
/// membership and lease changes in the node's journal meanwhile).
pub(super) async fn follow_leases(runtime: WeakRuntime, transport: Transport, life: Arc<Life>) {
    tokio::spawn(super::journal::watch(runtime.clone(), Arc::clone(&life)));
    let mut tables = life.leases.subscribe();
    let mut ended = life.ended();
    let mut held: BTreeMap<Shard, u64> = BTreeMap::new();
    let mut previous = tables.borrow().clone();
    loop {
        let table = tables.borrow_and_update().clone();
        let Some(node) = runtime.upgrade() else {
            return;
        };
        let now: BTreeMap<Shard, u64> = table
            .held_locally()
            .into_iter()
            .filter_map(|shard| table.lease(shard).map(|lease| (shard, lease.epoch)))
            .collect();
        let lost: BTreeSet<Shard> = held
            .iter()
            .filter(|(shard, epoch)| now.get(shard) != Some(epoch))
            .map(|(shard, _)| *shard)
            .collect();
        let gained: Vec<Shard> = now
            .iter()
            .filter(|(shard, epoch)| held.get(shard) != Some(epoch))
            .map(|(shard, _)| *shard)
            .collect();
        if !lost.is_empty() || !gained.is_empty() {
            shards_changed(&node, &life, &now, &lost, &gained);
            record_failovers(&life, &node, &previous, &gained);
            tokio::spawn(arm_gained(node.clone(), gained));
        }
        request_handovers(&transport, &life);
        held = now;
        previous = table;
        drop(node);
        tokio::select! {
            changed = tables.changed() => if changed.is_err() {
                return;
            },
            _ = ended.wait_for(|ended| *ended) => {
                let_go_of_everything(&runtime, &held);
                return;
            }
        }
    }
}

fn shards_changed(
    runtime: &Runtime,
    life: &Life,
    now: &BTreeMap<Shard, u64>,
    lost: &BTreeSet<Shard>,
    gained: &[Shard],
) {
    let passivated = runtime.release_shards(lost);
    runtime.lifecycle().shards_changed(gained.len(), lost.len());
    tracing::info!(
        incarnation = life.membership.incarnation(),
        gained = gained.len(),
        lost = lost.len(),
        passivated,
        held = now.len(),
        "cluster: shard ownership changed"
    );
}

/// The life ended: nothing it held is served any more (its leases serve only while its
/// membership is healthy); passivate the activations so that the next life starts clean.
fn let_go_of_everything(runtime: &WeakRuntime, held: &BTreeMap<Shard, u64>) {
    let Some(runtime) = runtime.upgrade() else {
        return;
    };
    let lost: BTreeSet<Shard> = held.keys().copied().collect();
    let passivated = runtime.release_shards(&lost);
    runtime.lifecycle().shards_changed(0, lost.len());
    tracing::warn!(
        lost = lost.len(),
        passivated,
        "cluster: this life ended; let go of every shard it held"
    );
}

/// For gained shards whose previous holder is dead: the time from its last heartbeat (its
/// own clock; a kill happens within one heartbeat interval after it) to now.
fn record_failovers(life: &Life, runtime: &Runtime, previous: &LeaseTable, gained: &[Shard]) {
    let view = life.membership.view();
    let dead_holders: BTreeSet<&LeaseHolder> = gained
        .iter()
        .filter_map(|shard| previous.lease(*shard)?.holder.as_ref())
        .filter(|holder| {
            view.member(&holder.node_id).is_some_and(|member| {
                member.incarnation == holder.incarnation && member.liveness == Liveness::Dead
            })
        })
        .collect();
    let now_ms = runtime.clock().now_ms();
    for holder in dead_holders {
        let Some(member) = view.member(&holder.node_id) else {
            continue;
        };
        let seconds = now_ms.saturating_sub(member.last_heartbeat_ms) as f64 / 1000.0;
        runtime.lifecycle().failover(seconds);
        tracing::info!(dead = %holder, seconds, "cluster: took over shards of a dead node");
    }
}

/// Arm the stored reminders of `shards` now and once more after [`REARM_AFTER`] (a timer
/// armed twice fires twice; the second finds the reminder gone and does nothing).
async fn arm_gained(runtime: Runtime, shards: Vec<Shard>) {
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(REARM_AFTER).await;
        }
        runtime.relay_shards(shards.iter().copied());
        for shard in &shards {
            if let Err(error) = runtime.arm_shard_reminders(*shard).await {
                tracing::warn!(shard, %error, "cluster: cannot arm the reminders of a gained shard");
            }
        }
    }
}
