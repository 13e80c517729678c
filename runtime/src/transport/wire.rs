//! The wire format: what a node sends to a peer's shard host ([`Envelope`]) and what comes
//! back ([`Answer`]), and how both are encoded.

/// The envelope and answer format this node writes.
pub(super) const ENVELOPE_VERSION: u16 = 1;

/// The kind of a probe: answered by the shard host itself, never by the handler.
pub(super) const PROBE_KIND: &str = "$probe";

/// A request for one actor on another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub version: u16,
    pub kind: String,
    pub key: String,
    /// The encoded command (its encoding is the kind's business).
    pub payload: Vec<u8>,
    /// Sender's wall clock, Unix ms: no answer is useful after it.
    pub deadline_ms: u64,
}

/// Why an envelope or an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("format version {0} is not supported (this node speaks {ENVELOPE_VERSION})")]
    UnsupportedVersion(u16),
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

impl Envelope {
    pub fn new(
        kind: impl Into<String>,
        key: impl Into<String>,
        payload: Vec<u8>,
        deadline_ms: u64,
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            kind: kind.into(),
            key: key.into(),
            payload,
            deadline_ms,
        }
    }

    /// A liveness probe, answered by the shard host itself.
    pub(super) fn probe(deadline_ms: u64) -> Self {
        Self::new(PROBE_KIND, "", Vec::new(), deadline_ms)
    }

    /// Version 1: `version u16 | deadline_ms u64 | kind (u16 length) | key (u32 length) |
    /// payload (u32 length)`, big-endian.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            2 + 8 + 2 + self.kind.len() + 4 + self.key.len() + 4 + self.payload.len(),
        );
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.deadline_ms.to_be_bytes());
        put_bytes16(&mut out, self.kind.as_bytes());
        put_bytes32(&mut out, self.key.as_bytes());
        put_bytes32(&mut out, &self.payload);
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.u16()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let deadline_ms = reader.u64()?;
        let kind = reader.string16()?;
        let key = reader.string32()?;
        let payload = reader.bytes32()?.to_vec();
        reader.end()?;
        Ok(Self {
            version,
            kind,
            key,
            payload,
            deadline_ms,
        })
    }
}

/// Why a shard host did not run an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnsupportedVersion,
    Malformed,
    /// Arrived after its deadline.
    Expired,
    /// Too many envelopes in flight on the host.
    Overloaded,
    /// The host's node does not hold the shard's lease (for the handler to use).
    NotOwner,
    /// No such kind on the host (for the handler to use).
    UnknownKind,
    /// The handler failed.
    Failed,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Self::UnsupportedVersion => 1,
            Self::Malformed => 2,
            Self::Expired => 3,
            Self::Overloaded => 4,
            Self::NotOwner => 5,
            Self::UnknownKind => 6,
            Self::Failed => 7,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::UnsupportedVersion,
            2 => Self::Malformed,
            3 => Self::Expired,
            4 => Self::Overloaded,
            5 => Self::NotOwner,
            6 => Self::UnknownKind,
            7 => Self::Failed,
            _ => return None,
        })
    }
}

/// A shard host's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The encoded reply.
    Reply(Vec<u8>),
    Refused {
        reason: Refusal,
        detail: String,
    },
}

impl Answer {
    pub fn refused(reason: Refusal, detail: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            detail: detail.into(),
        }
    }

    /// Version 1: `version u16 | status u8 (0 = reply, else a refusal) | body (u32 length)`;
    /// the body is the reply, or the refusal's detail in UTF-8.
    pub(super) fn encode(&self) -> Vec<u8> {
        let (status, body) = match self {
            Self::Reply(reply) => (0, reply.as_slice()),
            Self::Refused { reason, detail } => (reason.code(), detail.as_bytes()),
        };
        let mut out = Vec::with_capacity(2 + 1 + 4 + body.len());
        out.extend_from_slice(&ENVELOPE_VERSION.to_be_bytes());
        out.push(status);
        put_bytes32(&mut out, body);
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.u16()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let status = reader.u8()?;
        let body = reader.bytes32()?.to_vec();
        reader.end()?;
        if status == 0 {
            return Ok(Self::Reply(body));
        }
        let reason = Refusal::from_code(status).ok_or(DecodeError::Malformed("refusal code"))?;
        let detail = String::from_utf8(body).map_err(|_| DecodeError::Malformed("detail"))?;
        Ok(Self::Refused { reason, detail })
    }
}

fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    // Kinds are short names chosen by the domain; a longer one is cut rather than wrapped.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    // Frames are capped far below 4 GiB by ractor_cluster (16 MiB by default).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Malformed("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut buf = [0; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut buf = [0; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    fn bytes32(&mut self) -> Result<&'b [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string16(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| DecodeError::Malformed("utf-8"))
    }

    fn string32(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes32()?.to_vec()).map_err(|_| DecodeError::Malformed("utf-8"))
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let envelope = Envelope::new("cart", "c-7f3a", vec![1, 2, 3, 0, 255], 1_700_000_000_000);
        let bytes = envelope.encode();
        assert_eq!(&bytes[..2], &ENVELOPE_VERSION.to_be_bytes());
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        let probe = Envelope::probe(5);
        assert_eq!(Envelope::decode(&probe.encode()), Ok(probe));
    }

    #[test]
    fn unknown_versions_and_garbage_are_named() {
        let mut bytes = Envelope::new("k", "x", vec![], 1).encode();
        bytes[1] = 9;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(9))
        );
        let bytes = Envelope::new("k", "x", vec![7; 10], 1).encode();
        assert!(matches!(
            Envelope::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Envelope::decode(&long),
            Err(DecodeError::Malformed("trailing bytes"))
        );
        assert!(Envelope::decode(&[]).is_err());
    }

    #[test]
    fn answers_round_trip() {
        for answer in [
            Answer::Reply(vec![]),
            Answer::Reply(b"{\"ok\":true}".to_vec()),
            Answer::refused(Refusal::NotOwner, "shard 17 is on node-2"),
            Answer::refused(Refusal::Overloaded, ""),
        ] {
            assert_eq!(Answer::decode(&answer.encode()), Ok(answer));
        }
        let mut bad = Answer::Reply(vec![]).encode();
        bad[2] = 200;
        assert!(Answer::decode(&bad).is_err());
    }
}
