//! The shard host: the one remotable actor of a node. It decodes and checks every envelope
//! and hands it to the node's [`EnvelopeHandler`], each in its own task.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Semaphore;

use super::wire::{Answer, DIRECT_KIND, DecodeError, Envelope, PROBE_KIND, Refusal, WIRE_VERSION};
use crate::clock::SharedClock;

const SCOPE: &str = "emporium";
const VARIANT: &str = "envelope";

fn host_group(node_id: &str) -> String {
    format!("emporium.shard_host.{node_id}")
}

/// Announce `host` as `node_id`'s shard host: every peer's session with this node spawns a
/// proxy for it.
pub(super) fn announce(node_id: &str, host: &ActorRef<ShardHostMsg>) {
    ractor::pg::join_scoped(SCOPE.to_owned(), host_group(node_id), vec![host.get_cell()]);
}

/// Withdraw `host` from `node_id`'s group (the node is stopping).
pub(super) fn withdraw(node_id: &str, host: &ActorRef<ShardHostMsg>) {
    ractor::pg::leave_scoped(SCOPE.to_owned(), host_group(node_id), vec![host.get_cell()]);
}

/// Every member of `node_id`'s group in this process: its shard host if it is local, and
/// the proxies for it made by every session with it (see the module doc).
pub(super) fn announced(node_id: &str) -> Vec<ActorCell> {
    ractor::pg::get_scoped_members(&SCOPE.to_owned(), &host_group(node_id))
}

/// What a shard host does with an envelope addressed to one of its node's actors.
#[async_trait]
pub trait EnvelopeHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: Envelope) -> Answer;
}

/// The shard host's ractor message: an encoded envelope and the port for the encoded answer.
/// Serialisable, so ractor_cluster carries it between nodes.
pub(super) struct ShardHostMsg {
    pub(super) envelope: Vec<u8>,
    pub(super) reply: RpcReplyPort<Vec<u8>>,
}

impl ractor::Message for ShardHostMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(SerializedMessage::Call {
            variant: VARIANT.to_owned(),
            args: self.envelope,
            reply: self.reply,
            metadata: None,
        })
    }

    fn deserialize(message: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match message {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == VARIANT => Ok(Self {
                envelope: args,
                reply,
            }),
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// How a node receives an encoded envelope, whichever way it came (through the shard host
/// over ractor_cluster, or over a direct link): decode it, check it, answer probes and
/// `$direct` itself, and hand the rest to the handler, each in its own task (a slow actor
/// must not hold up the others). Exactly one answer per envelope, given to `reply`.
pub(super) struct Reception {
    handler: Arc<dyn EnvelopeHandler>,
    clock: SharedClock,
    /// Shared by both ways in: at most `max_in_flight` envelopes run at once.
    permits: Arc<Semaphore>,
    /// This node's direct-link address, answered to `$direct` (none: no direct links).
    direct_addr: OnceLock<String>,
}

impl Reception {
    /// A reception that runs at most `max_in_flight` envelopes at once.
    pub(super) fn new(
        handler: Arc<dyn EnvelopeHandler>,
        clock: SharedClock,
        max_in_flight: usize,
    ) -> Self {
        Self {
            handler,
            clock,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            direct_addr: OnceLock::new(),
        }
    }

    /// Answer `$direct` with `addr` from now on.
    pub(super) fn offer_direct(&self, addr: String) {
        let _ = self.direct_addr.set(addr);
    }

    /// Answer the encoded `envelope` through `reply`: at once when it is refused or answered
    /// here, else from a task of its own once the handler answered.
    pub(super) fn receive(&self, envelope: &[u8], reply: impl FnOnce(Vec<u8>) + Send + 'static) {
        let envelope = match Envelope::decode(envelope) {
            Ok(envelope) => envelope,
            Err(DecodeError::UnsupportedVersion(version)) => {
                let detail = format!("envelope version {version}, this node speaks {WIRE_VERSION}");
                return reply(encode(&Answer::refused(
                    Refusal::UnsupportedVersion,
                    detail,
                )));
            }
            Err(error) => {
                return reply(encode(&Answer::refused(
                    Refusal::Malformed,
                    error.to_string(),
                )));
            }
        };
        let now_ms = self.clock.now_ms();
        if now_ms > envelope.deadline_ms {
            let detail = format!("{} ms late", now_ms - envelope.deadline_ms);
            return reply(encode(&Answer::refused(Refusal::Expired, detail)));
        }
        match envelope.kind.as_str() {
            PROBE_KIND => return reply(encode(&Answer::Reply(Vec::new()))),
            DIRECT_KIND => {
                // A JSON string, or `null` without a direct listener.
                let addr = serde_json::to_vec(&self.direct_addr.get()).unwrap_or_default();
                return reply(encode(&Answer::Reply(addr)));
            }
            _ => {}
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return reply(encode(&Answer::refused(
                Refusal::Overloaded,
                "too many in flight",
            )));
        };
        let handler = Arc::clone(&self.handler);
        let budget = Duration::from_millis(envelope.deadline_ms - now_ms);
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(budget, handler.handle(envelope)).await {
                Ok(answer) => answer,
                Err(_) => Answer::refused(Refusal::TimedOut, "deadline passed while handling"),
            };
            drop(permit);
            reply(encode(&answer));
        });
    }
}

/// The remotable actor of one node: what ractor_cluster delivers to it goes to the node's
/// [`Reception`].
pub(super) struct ShardHost {
    reception: Arc<Reception>,
}

impl ShardHost {
    pub(super) fn new(reception: Arc<Reception>) -> Self {
        Self { reception }
    }
}

impl Actor for ShardHost {
    type Msg = ShardHostMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ShardHostMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let ShardHostMsg { envelope, reply } = message;
        self.reception.receive(&envelope, move |answer| {
            // The caller may have stopped waiting.
            let _ = reply.send(answer);
        });
        Ok(())
    }
}

/// `answer`'s frame; a reply that is not JSON is answered as the handler's failure instead.
pub(super) fn encode(answer: &Answer) -> Vec<u8> {
    answer.encode().unwrap_or_else(|error| {
        tracing::warn!(%error, "transport: a handler replied with something other than JSON");
        let failed = Answer::refused(Refusal::Failed, format!("the reply is {error}"));
        // A refusal is always written; an empty answer would be read as malformed.
        failed.encode().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    /// Replies with the payload it was given.
    struct Mirror;

    #[async_trait]
    impl EnvelopeHandler for Mirror {
        async fn handle(&self, envelope: Envelope) -> Answer {
            Answer::Reply(envelope.payload)
        }
    }

    async fn call(host: &ActorRef<ShardHostMsg>, envelope: Vec<u8>) -> Answer {
        let answer = host
            .call(
                |reply| ShardHostMsg { envelope, reply },
                Some(Duration::from_secs(5)),
            )
            .await
            .expect("the host is running");
        match answer {
            ractor::rpc::CallResult::Success(bytes) => Answer::decode(&bytes).unwrap(),
            other => panic!("no answer: {other:?}"),
        }
    }

    fn refusal(answer: &Answer) -> Option<Refusal> {
        match answer {
            Answer::Refused { reason, .. } => Some(*reason),
            Answer::Reply(_) => None,
        }
    }

    #[tokio::test]
    async fn every_frame_gets_an_answer_it_can_read() {
        let clock: SharedClock = Arc::new(SystemClock::new());
        let deadline_ms = clock.now_ms() + 5_000;
        let reception = Reception::new(Arc::new(Mirror), Arc::clone(&clock), 16);
        let host = ShardHost::new(Arc::new(reception));
        let (host, _) = Actor::spawn(None, host, ()).await.unwrap();

        let call_payload = br#"{"inspect":null}"#.to_vec();
        let envelope = Envelope::new("cart", "c", call_payload.clone(), deadline_ms);
        let answer = call(&host, envelope.encode().unwrap()).await;
        assert_eq!(answer, Answer::Reply(call_payload));
        let probe = call(&host, Envelope::probe(deadline_ms).encode().unwrap()).await;
        assert_eq!(probe, Answer::Reply(b"null".to_vec()));

        // A node still writing version 1 (binary) is told which version this one speaks.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&deadline_ms.to_be_bytes());
        let answer = call(&host, v1).await;
        assert_eq!(
            refusal(&answer),
            Some(Refusal::UnsupportedVersion),
            "{answer:?}"
        );
        let answer = call(&host, br#"{"v":3}"#.to_vec()).await;
        assert_eq!(
            refusal(&answer),
            Some(Refusal::UnsupportedVersion),
            "{answer:?}"
        );

        let mut truncated = envelope.encode().unwrap();
        truncated.truncate(truncated.len() - 2);
        for garbage in [truncated, Vec::new(), b"add 2".to_vec()] {
            let answer = call(&host, garbage).await;
            assert_eq!(refusal(&answer), Some(Refusal::Malformed), "{answer:?}");
        }
        let late = Envelope::new("cart", "c", Vec::new(), 1).encode().unwrap();
        assert_eq!(refusal(&call(&host, late).await), Some(Refusal::Expired));
        host.stop(None);
    }

    #[test]
    fn a_reply_that_is_not_json_is_answered_as_a_failure() {
        let answer = Answer::decode(&encode(&Answer::Reply(b"ok".to_vec()))).unwrap();
        assert_eq!(refusal(&answer), Some(Refusal::Failed), "{answer:?}");
    }
}
