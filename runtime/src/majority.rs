//! The majority rule for partitions of the cluster links alone (the store still reachable
//! by everyone): the members that can reach each other keep serving, the rest step out.
//!
//! Heartbeats travel through the store, so a node cut off from its peers' cluster ports
//! still looks alive to them: without this rule its shards would stay unreachable from every
//! other node for as long as the cut lasts (it keeps its leases, they cannot reach it). A
//! node that cannot reach a majority of the live members for `dead_after` expels itself
//! (`Expulsion::Isolated`): its `Down` lets the others take its shards at once, and it
//! begins a new life only once it reaches a majority again.
//!
//! Reachability is what this node's own probes found (`MemberState::unreachable`, and a
//! refused connection that the store has not yet confirmed as a crash). An even split is
//! decided in favour of the side that holds the smallest node id, so that exactly one side
//! of a two-node cluster stays. With no majority anywhere (every link cut) every node steps
//! out: nothing is served twice, and nothing is served until links return.

use crate::membership::{Liveness, MemberState, MembershipView};
use crate::store::MemberStatus;

/// How many live peers this node reaches, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach {
    pub reached: usize,
    pub of: usize,
}

impl Reach {
    /// Whether this node (with the peers it reaches) is on the side that may serve.
    pub fn is_majority(self, holds_smallest_id: bool) -> bool {
        let side = self.reached + 1;
        let all = self.of + 1;
        side * 2 > all || (side * 2 == all && holds_smallest_id)
    }
}

/// What `view` says about this node's reach: `None` when it reaches a majority (or is
/// alone), `Some(reach)` when it is cut off from one.
pub fn cut_off(view: &MembershipView) -> Option<Reach> {
    let local = view.local_node_id.as_str();
    let peers: Vec<(&str, bool)> = view
        .members
        .iter()
        .filter(|member| member.node_id != local && counts(member))
        .map(|member| {
            let reached = !member.unreachable && !member.refused;
            (member.node_id.as_str(), reached)
        })
        .collect();
    cut_off_among(local, &peers)
}

/// The rule itself, over the live peers as `(node id, reached)`.
pub fn cut_off_among(local: &str, peers: &[(&str, bool)]) -> Option<Reach> {
    let reach = Reach {
        reached: peers.iter().filter(|(_, reached)| *reached).count(),
        of: peers.len(),
    };
    let smallest = peers
        .iter()
        .map(|(id, _)| *id)
        .chain(std::iter::once(local))
        .min();
    let holds_smallest = smallest == Some(local)
        || peers
            .iter()
            .any(|(id, reached)| *reached && Some(*id) == smallest);
    (!reach.is_majority(holds_smallest)).then_some(reach)
}

/// Members whose votes count: alive in the store (not judged dead) and not gone.
fn counts(member: &MemberState) -> bool {
    member.liveness != Liveness::Dead && member.status != MemberStatus::Down
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, unreachable: bool) -> MemberState {
        MemberState {
            node_id: id.to_owned(),
            incarnation: 1,
            cluster_addr: format!("{id}:1"),
            http_addr: format!("{id}:2"),
            status: MemberStatus::Up,
            liveness: if unreachable {
                Liveness::Suspect
            } else {
                Liveness::Alive
            },
            last_heartbeat_ms: 1,
            silent_for_ms: 0,
            unreachable,
            death: None,
            refused: false,
            candidate: !unreachable,
        }
    }

    fn view(local: &str, members: Vec<MemberState>) -> MembershipView {
        MembershipView {
            members,
            local_node_id: local.to_owned(),
            ..MembershipView::default()
        }
    }

    #[test]
    fn a_node_cut_off_from_both_peers_steps_out_and_they_stay() {
        let a = view(
            "a",
            vec![member("a", false), member("b", true), member("c", true)],
        );
        assert_eq!(cut_off(&a), Some(Reach { reached: 0, of: 2 }));
        let b = view(
            "b",
            vec![member("a", true), member("b", false), member("c", false)],
        );
        assert_eq!(cut_off(&b), None);
    }

    #[test]
    fn an_even_split_keeps_the_side_with_the_smallest_id() {
        let a = view("a", vec![member("a", false), member("b", true)]);
        let b = view("b", vec![member("a", true), member("b", false)]);
        assert_eq!(cut_off(&a), None);
        assert_eq!(cut_off(&b), Some(Reach { reached: 0, of: 1 }));
        let c = view(
            "c",
            vec![
                member("a", true),
                member("b", true),
                member("c", false),
                member("d", false),
            ],
        );
        assert!(cut_off(&c).is_some(), "c and d lack the smallest id");
    }

    #[test]
    fn dead_and_departed_members_do_not_vote() {
        let mut dead = member("b", true);
        dead.liveness = Liveness::Dead;
        let mut down = member("c", true);
        down.status = MemberStatus::Down;
        let a = view("a", vec![member("a", false), dead, down]);
        assert_eq!(cut_off(&a), None, "alone among the living");
    }

    #[test]
    fn every_link_cut_leaves_no_majority() {
        let ids = ["a", "b", "c"];
        for local in ids {
            let members = ids.iter().map(|id| member(id, *id != local)).collect();
            assert!(
                cut_off(&view(local, members)).is_some(),
                "{local} steps out"
            );
        }
    }
}
