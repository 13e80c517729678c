//! Watching one life's membership view and lease table, and writing what changed into the
//! node's [`Journal`](crate::journal) for operators: joins, leaves, liveness changes, shard
//! moves grouped by (from, to), and failovers (moves away from a dead holder) with their
//! duration from the dead holder's last heartbeat.
//!
//! The first view and table of a life are the baseline, not news: a node that joins does
//! not report every existing member as joining. Each node reports what *it* saw; the
//! console shows the journal of the node it is connected to.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::life::Life;
use crate::leases::{LeaseHolder, LeaseTable};
use crate::membership::{Liveness, MembershipView};
use crate::placement::SHARD_COUNT;
use crate::runtime::WeakRuntime;
use crate::status::ClusterChange;
use crate::store::MemberStatus;

/// Follow `life` until it ends (or the runtime is gone), recording every change.
pub(super) async fn watch(runtime: WeakRuntime, life: Arc<Life>) {
    let mut views = life.membership.subscribe();
    let mut tables = life.leases.subscribe();
    let mut ended = life.ended();
    let mut view = views.borrow_and_update().clone();
    let mut table = tables.borrow_and_update().clone();
    loop {
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() { return; }
                let next = views.borrow_and_update().clone();
                let Some(runtime) = runtime.upgrade() else { return };
                for change in member_changes(&view, &next) {
                    runtime.journal().record(change);
                }
                view = next;
            }
            changed = tables.changed() => {
                if changed.is_err() { return; }
                let next = tables.borrow_and_update().clone();
                let Some(runtime) = runtime.upgrade() else { return };
                let now_ms = runtime.clock().now_ms();
                for change in shard_moves(&table, &next, &view, now_ms) {
                    runtime.journal().record(change);
                }
                table = next;
            }
            _ = ended.wait_for(|ended| *ended) => return,
        }
    }
}

/// Members that appeared (or began a new life), changed status to leaving or down, or whose
/// liveness changed.
fn member_changes(before: &MembershipView, after: &MembershipView) -> Vec<ClusterChange> {
    let mut changes = Vec::new();
    for member in &after.members {
        let (node_id, incarnation) = (member.node_id.clone(), member.incarnation);
        let Some(old) = before
            .member(&member.node_id)
            .filter(|old| old.incarnation == member.incarnation)
        else {
            changes.push(ClusterChange::Joined {
                node_id,
                incarnation,
            });
            continue;
        };
        if old.status != member.status
            && matches!(member.status, MemberStatus::Leaving | MemberStatus::Down)
        {
            changes.push(ClusterChange::Left {
                node_id: node_id.clone(),
                incarnation,
                status: member.status.as_str().to_owned(),
            });
        }
        if old.liveness != member.liveness {
            changes.push(ClusterChange::Liveness {
                node_id,
                incarnation,
                liveness: member.liveness.as_str().to_owned(),
            });
        }
    }
    changes
}

/// Shards whose holder changed, grouped by (previous holder, new holder); a group whose
/// previous holder is dead in `view` is a failover.
fn shard_moves(
    before: &LeaseTable,
    after: &LeaseTable,
    view: &MembershipView,
    now_ms: u64,
) -> Vec<ClusterChange> {
    let holder =
        |table: &LeaseTable, shard| table.lease(shard).and_then(|lease| lease.holder.clone());
    let mut moves: BTreeMap<(Option<LeaseHolder>, String), usize> = BTreeMap::new();
    for shard in 0..SHARD_COUNT {
        let (from, to) = (holder(before, shard), holder(after, shard));
        if let Some(to) = to
            && from.as_ref() != Some(&to)
        {
            *moves.entry((from, to.node_id)).or_default() += 1;
        }
    }
    moves
        .into_iter()
        .map(|((from, to), shards)| {
            let dead = from.as_ref().and_then(|from| {
                view.member(&from.node_id).filter(|member| {
                    member.incarnation == from.incarnation && member.liveness == Liveness::Dead
                })
            });
            match dead {
                Some(member) => ClusterChange::Failover {
                    dead: member.node_id.clone(),
                    to,
                    shards,
                    seconds: now_ms.saturating_sub(member.last_heartbeat_ms) as f64 / 1000.0,
                },
                None => ClusterChange::Ownership {
                    from: from.map(|from| from.node_id),
                    to,
                    shards,
                },
            }
        })
        .collect()
}
