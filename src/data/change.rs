//! One change of the store, as the writer logs it and replicas receive it (sans-IO).
//!
//! The writer encodes a change once, when it commits it; the log holds those bytes and the
//! bulk channel sends them as they are, so following the stream costs no re-encoding. Each
//! change carries the writer's digest after it, which is how a replica checks, change by
//! change, that it holds exactly what the writer holds.
//!
//! Layout (big-endian): `version u64 · time_ms u64 · digest u128 · op u8 ·` then for a put
//! `blen u8 · bucket · klen u32 · key · value…`, for a delete `blen u8 · bucket · klen u32 ·
//! key`, for a create `blen u8 · bucket`.

/// What a change does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a key.
    Put {
        /// The bucket.
        bucket: String,
        /// The key.
        key: Vec<u8>,
        /// The value (ETF).
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: Vec<u8>,
    },
    /// Make a bucket.
    Create {
        /// The bucket.
        bucket: String,
    },
}

impl Op {
    /// The bucket it touches.
    pub fn bucket(&self) -> &str {
        match self {
            Op::Put { bucket, .. } | Op::Delete { bucket, .. } | Op::Create { bucket } => bucket,
        }
    }
}

/// A versioned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its version.
    pub version: u64,
    /// When the writer committed it (milliseconds since the Unix epoch).
    pub time_ms: u64,
    /// The writer's digest after it.
    pub digest: u128,
    /// What it does.
    pub op: Op,
}

/// Why a change could not be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The bytes do not hold a change.
    #[error("malformed change: {0}")]
    Malformed(&'static str),
    /// A change skipped a version.
    #[error("the change stream skipped from version {expected} to {got}")]
    Gap {
        /// The version due.
        expected: u64,
        /// The version that came.
        got: u64,
    },
    /// After applying a change, the replica's digest differs from the writer's.
    #[error("the replica diverged from its writer at version {version}")]
    Diverged {
        /// The version.
        version: u64,
    },
}

const PUT: u8 = 0;
const DELETE: u8 = 1;
const CREATE: u8 = 2;
const HEADER: usize = 8 + 8 + 16 + 1;

impl Change {
    /// The bytes of the change.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 64);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.digest.to_be_bytes());
        let (tag, bucket) = match &self.op {
            Op::Put { bucket, .. } => (PUT, bucket),
            Op::Delete { bucket, .. } => (DELETE, bucket),
            Op::Create { bucket } => (CREATE, bucket),
        };
        out.push(tag);
        out.push(bucket.len().min(255) as u8);
        out.extend_from_slice(&bucket.as_bytes()[..bucket.len().min(255)]);
        match &self.op {
            Op::Put { key, value, .. } => {
                out.extend_from_slice(&(key.len() as u32).to_be_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
            Op::Delete { key, .. } => {
                out.extend_from_slice(&(key.len() as u32).to_be_bytes());
                out.extend_from_slice(key);
            }
            Op::Create { .. } => {}
        }
        out
    }

    /// The version of an encoded change, without decoding the rest.
    pub fn peek_version(bytes: &[u8]) -> Option<u64> {
        bytes
            .get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// Reads a change.
    pub fn decode(bytes: &[u8]) -> Result<Change, ChangeError> {
        if bytes.len() < HEADER + 1 {
            return Err(ChangeError::Malformed("shorter than a change header"));
        }
        let version = u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let time_ms = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let digest = u128::from_be_bytes(bytes[16..32].try_into().expect("16 bytes"));
        let tag = bytes[32];
        let blen = bytes[33] as usize;
        let rest = &bytes[34..];
        let bucket = rest
            .get(..blen)
            .ok_or(ChangeError::Malformed("the bucket name is cut short"))?;
        let bucket = std::str::from_utf8(bucket)
            .map_err(|_| ChangeError::Malformed("the bucket name is not UTF-8"))?
            .to_owned();
        let rest = &rest[blen..];
        let key_then = |rest: &[u8]| -> Result<(Vec<u8>, usize), ChangeError> {
            let klen = rest
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or(ChangeError::Malformed("the key length is cut short"))?;
            let key = rest
                .get(4..4 + klen)
                .ok_or(ChangeError::Malformed("the key is cut short"))?;
            Ok((key.to_vec(), 4 + klen))
        };
        let op = match tag {
            PUT => {
                let (key, used) = key_then(rest)?;
                Op::Put {
                    bucket,
                    key,
                    value: rest[used..].to_vec(),
                }
            }
            DELETE => {
                let (key, used) = key_then(rest)?;
                if used != rest.len() {
                    return Err(ChangeError::Malformed("bytes after a delete"));
                }
                Op::Delete { bucket, key }
            }
            CREATE => {
                if !rest.is_empty() {
                    return Err(ChangeError::Malformed("bytes after a create"));
                }
                Op::Create { bucket }
            }
            _ => return Err(ChangeError::Malformed("unknown operation")),
        };
        if op.bucket().is_empty() {
            return Err(ChangeError::Malformed("the bucket name is empty"));
        }
        Ok(Change {
            version,
            time_ms,
            digest,
            op,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Change> {
        let c = |op| Change {
            version: 7,
            time_ms: 1_700_000_000_000,
            digest: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
            op,
        };
        vec![
            c(Op::Put {
                bucket: "players".into(),
                key: b"42".to_vec(),
                value: vec![131, 109, 0, 0, 0, 1, b'x'],
            }),
            c(Op::Put {
                bucket: "b".into(),
                key: vec![],
                value: vec![],
            }),
            c(Op::Delete {
                bucket: "players".into(),
                key: b"42".to_vec(),
            }),
            c(Op::Create {
                bucket: "shopping".into(),
            }),
        ]
    }

    #[test]
    fn changes_round_trip() {
        for c in samples() {
            let bytes = c.encode();
            assert_eq!(Change::peek_version(&bytes), Some(7));
            assert_eq!(Change::decode(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for c in samples() {
            let bytes = c.encode();
            for n in 0..bytes.len() {
                // A put's value runs to the end, so only the cuts before it must fail.
                let _ = Change::decode(&bytes[..n]);
            }
            if !matches!(c.op, Op::Put { .. }) {
                assert!(Change::decode(&bytes[..bytes.len() - 1]).is_err());
            }
        }
        assert_eq!(
            Change::decode(&[0; 10]),
            Err(ChangeError::Malformed("shorter than a change header"))
        );
    }

    #[test]
    fn malformed_changes_name_the_fault() {
        let mut bytes = samples()[0].encode();
        bytes[32] = 9;
        assert_eq!(
            Change::decode(&bytes),
            Err(ChangeError::Malformed("unknown operation"))
        );
        let mut bytes = samples()[3].encode();
        bytes.push(0);
        assert_eq!(
            Change::decode(&bytes),
            Err(ChangeError::Malformed("bytes after a create"))
        );
        let mut bytes = samples()[3].encode();
        bytes[33] = 0;
        bytes.truncate(34);
        assert_eq!(
            Change::decode(&bytes),
            Err(ChangeError::Malformed("the bucket name is empty"))
        );
        let mut bytes = samples()[3].encode();
        bytes[34] = 0xff;
        assert_eq!(
            Change::decode(&bytes),
            Err(ChangeError::Malformed("the bucket name is not UTF-8"))
        );
    }
}
