//! The bulk channel's frames (sans-IO): what a data_contact and a replica say to each other on
//! their own TCP connection, never on the distribution connection (seed 003: bulk data on the
//! distribution connection delays ticks and causes false nodedowns; gen_rpc gives each pair of
//! nodes a separate data channel).
//!
//! Every frame is `length u32 · tag u8 · payload`, big-endian. The conversation:
//! 1. writer → replica `H`: magic, challenge u32, the writer's node name;
//! 2. replica → writer `C`: `md5(cookie ++ decimal(challenge))`, its own challenge u32, its
//!    node name, and where it is (lineage u64, version u64, digest u128);
//! 3. writer → replica `A`: `md5(cookie ++ decimal(replica's challenge))`. Both sides have now
//!    proved the cookie without sending it, as the distribution handshake does;
//! 4. writer → replica either `S` (snapshot at version V of lineage L), then `B` batches, then
//!    `E` (version, digest); or `R` (resume: changes follow from version V+1);
//! 5. writer → replica `L` batches of changes, and `T` (head: version, digest, time) when idle,
//!    so the replica knows how far behind it is and that the writer is alive;
//! 6. replica → writer `K` (applied version, bytes consumed): the acknowledgement that grants
//!    the writer more credit (flow control) and tells it the replica is alive.
//!
//! `X` carries an error text either way before a close.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::store::Entry;

/// The first bytes of the writer's hello.
pub const MAGIC: &[u8; 14] = b"cluster-bulk/1";

/// The largest frame either side accepts before the peer has proved the cookie: a hello or a
/// claim with the longest node name, or an error text. Until then a peer is anyone who can
/// reach the port, and must not make us hold a value-sized buffer.
pub const HANDSHAKE_FRAME: usize = 64 * 1024 + 64;

/// A frame of the bulk channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The writer's hello.
    Hello {
        /// Its challenge.
        challenge: u32,
        /// Its node name.
        node: String,
    },
    /// The replica's answer.
    Claim {
        /// `md5(cookie ++ decimal(challenge))`.
        digest: [u8; 16],
        /// The replica's challenge.
        challenge: u32,
        /// Its node name.
        node: String,
        /// The lineage it holds (0: none).
        lineage: u64,
        /// The version it has applied.
        version: u64,
        /// Its digest at that version.
        digest_at: u128,
    },
    /// The writer proves the cookie too.
    Ack {
        /// `md5(cookie ++ decimal(replica's challenge))`.
        digest: [u8; 16],
    },
    /// A snapshot begins.
    SnapshotBegin {
        /// The writer's lineage.
        lineage: u64,
        /// The version the snapshot is at.
        version: u64,
    },
    /// Part of a snapshot.
    SnapshotBatch {
        /// Buckets.
        buckets: Vec<String>,
        /// Entries.
        entries: Vec<Entry>,
    },
    /// The snapshot is complete.
    SnapshotEnd {
        /// Its version.
        version: u64,
        /// The writer's digest at that version.
        digest: u128,
    },
    /// No snapshot: changes follow from `version + 1`.
    Resume {
        /// The writer's lineage.
        lineage: u64,
        /// The replica's version.
        version: u64,
    },
    /// Encoded changes, consecutive.
    Changes(Vec<Vec<u8>>),
    /// The writer's head.
    Head {
        /// Its last version.
        version: u64,
        /// Its digest.
        digest: u128,
        /// When that version was committed (ms since the Unix epoch).
        time_ms: u64,
    },
    /// The replica's acknowledgement.
    Applied {
        /// The version it has applied.
        version: u64,
        /// Bytes of frames it has consumed since the start.
        consumed: u64,
    },
    /// An error, before the sender closes.
    Error(String),
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A frame is over the limit.
    #[error("a bulk frame of {0} bytes is over the limit of {1}")]
    TooLarge(usize, usize),
    /// The payload does not match its tag.
    #[error("malformed bulk frame: {0}")]
    Malformed(&'static str),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The codec, with the largest frame accepted.
#[derive(Debug, Clone)]
pub struct Codec {
    max: usize,
}

impl Codec {
    /// Frames up to `max` bytes.
    pub fn new(max: usize) -> Codec {
        Codec { max }
    }

    /// Changes the largest frame accepted (raised once the peer has proved the cookie).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn u128(&mut self, what: &'static str) -> Result<u128, WireError> {
        Ok(u128::from_be_bytes(
            self.take(16, what)?.try_into().expect("16"),
        ))
    }
    fn digest(&mut self) -> Result<[u8; 16], WireError> {
        Ok(self.take(16, "digest cut short")?.try_into().expect("16"))
    }
    fn text(&mut self, len: usize, what: &'static str) -> Result<String, WireError> {
        let b = self.take(len, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::Malformed("text is not UTF-8"))
    }
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("bytes after the frame's payload"))
        }
    }
}

impl Frame {
    /// The frame's kind, for messages (a frame's payload can be megabytes).
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Claim { .. } => "claim",
            Frame::Ack { .. } => "ack",
            Frame::SnapshotBegin { .. } => "snapshot begin",
            Frame::SnapshotBatch { .. } => "snapshot batch",
            Frame::SnapshotEnd { .. } => "snapshot end",
            Frame::Resume { .. } => "resume",
            Frame::Changes(_) => "changes",
            Frame::Head { .. } => "head",
            Frame::Applied { .. } => "applied",
            Frame::Error(_) => "error",
        }
    }

    /// Reads the payload of a frame with `tag`.
    pub fn parse(tag: u8, payload: &[u8]) -> Result<Frame, WireError> {
        let mut r = Reader(payload);
        let frame = match tag {
            b'H' => {
                if r.take(MAGIC.len(), "magic cut short")? != MAGIC {
                    return Err(WireError::Malformed("not a cluster bulk channel"));
                }
                let challenge = r.u32("challenge cut short")?;
                let n = r.u16("name length cut short")? as usize;
                Frame::Hello {
                    challenge,
                    node: r.text(n, "name cut short")?,
                }
            }
            b'C' => {
                let digest = r.digest()?;
                let challenge = r.u32("challenge cut short")?;
                let n = r.u16("name length cut short")? as usize;
                let node = r.text(n, "name cut short")?;
                Frame::Claim {
                    digest,
                    challenge,
                    node,
                    lineage: r.u64("lineage cut short")?,
                    version: r.u64("version cut short")?,
                    digest_at: r.u128("digest cut short")?,
                }
            }
            b'A' => Frame::Ack {
                digest: r.digest()?,
            },
            b'S' => Frame::SnapshotBegin {
                lineage: r.u64("lineage cut short")?,
                version: r.u64("version cut short")?,
            },
            b'B' => {
                let nb = r.u32("bucket count cut short")? as usize;
                let mut buckets = Vec::with_capacity(nb.min(4096));
                for _ in 0..nb {
                    let n = r.u8("bucket length cut short")? as usize;
                    buckets.push(r.text(n, "bucket cut short")?);
                }
                let ne = r.u32("entry count cut short")? as usize;
                let mut entries = Vec::with_capacity(ne.min(4096));
                for _ in 0..ne {
                    let n = r.u8("bucket length cut short")? as usize;
                    let bucket = r.text(n, "bucket cut short")?;
                    let kn = r.u32("key length cut short")? as usize;
                    let key = r.take(kn, "key cut short")?.to_vec();
                    let version = r.u64("version cut short")?;
                    let vn = r.u32("value length cut short")? as usize;
                    let value = r.take(vn, "value cut short")?.to_vec();
                    entries.push(Entry {
                        bucket,
                        key,
                        version,
                        value,
                    });
                }
                Frame::SnapshotBatch { buckets, entries }
            }
            b'E' => Frame::SnapshotEnd {
                version: r.u64("version cut short")?,
                digest: r.u128("digest cut short")?,
            },
            b'R' => Frame::Resume {
                lineage: r.u64("lineage cut short")?,
                version: r.u64("version cut short")?,
            },
            b'L' => {
                let n = r.u32("change count cut short")? as usize;
                let mut changes = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let len = r.u32("change length cut short")? as usize;
                    changes.push(r.take(len, "change cut short")?.to_vec());
                }
                Frame::Changes(changes)
            }
            b'T' => Frame::Head {
                version: r.u64("version cut short")?,
                digest: r.u128("digest cut short")?,
                time_ms: r.u64("time cut short")?,
            },
            b'K' => Frame::Applied {
                version: r.u64("version cut short")?,
                consumed: r.u64("count cut short")?,
            },
            b'X' => {
                let n = r.0.len();
                Frame::Error(String::from_utf8_lossy(r.take(n, "")?).into_owned())
            }
            _ => return Err(WireError::Malformed("unknown frame tag")),
        };
        r.end()?;
        Ok(frame)
    }

    /// The frame's size on the wire, length prefix included, without encoding it.
    pub fn wire_len(&self) -> usize {
        let name = |n: &str| 2 + n.len().min(u16::MAX as usize);
        let bucket = |b: &str| 1 + b.len().min(255);
        5 + match self {
            Frame::Hello { node, .. } => MAGIC.len() + 4 + name(node),
            Frame::Claim { node, .. } => 16 + 4 + name(node) + 8 + 8 + 16,
            Frame::Ack { .. } => 16,
            Frame::SnapshotBegin { .. } | Frame::Resume { .. } => 16,
            Frame::SnapshotBatch { buckets, entries } => {
                4 + buckets.iter().map(|b| bucket(b)).sum::<usize>()
                    + 4
                    + entries
                        .iter()
                        .map(|e| bucket(&e.bucket) + 4 + e.key.len() + 8 + 4 + e.value.len())
                        .sum::<usize>()
            }
            Frame::SnapshotEnd { .. } => 24,
            Frame::Changes(changes) => 4 + changes.iter().map(|c| 4 + c.len()).sum::<usize>(),
            Frame::Head { .. } => 32,
            Frame::Applied { .. } => 16,
            Frame::Error(text) => text.len(),
        }
    }

    /// Writes the frame, length first.
    pub fn write(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        match self {
            Frame::Hello { challenge, node } => {
                out.put_u8(b'H');
                out.put_slice(MAGIC);
                out.put_u32(*challenge);
                put_name(out, node);
            }
            Frame::Claim {
                digest,
                challenge,
                node,
                lineage,
                version,
                digest_at,
            } => {
                out.put_u8(b'C');
                out.put_slice(digest);
                out.put_u32(*challenge);
                put_name(out, node);
                out.put_u64(*lineage);
                out.put_u64(*version);
                out.put_u128(*digest_at);
            }
            Frame::Ack { digest } => {
                out.put_u8(b'A');
                out.put_slice(digest);
            }
            Frame::SnapshotBegin { lineage, version } => {
                out.put_u8(b'S');
                out.put_u64(*lineage);
                out.put_u64(*version);
            }
            Frame::SnapshotBatch { buckets, entries } => {
                out.put_u8(b'B');
                out.put_u32(buckets.len() as u32);
                for b in buckets {
                    put_bucket(out, b);
                }
                out.put_u32(entries.len() as u32);
                for e in entries {
                    put_bucket(out, &e.bucket);
                    out.put_u32(e.key.len() as u32);
                    out.put_slice(&e.key);
                    out.put_u64(e.version);
                    out.put_u32(e.value.len() as u32);
                    out.put_slice(&e.value);
                }
            }
            Frame::SnapshotEnd { version, digest } => {
                out.put_u8(b'E');
                out.put_u64(*version);
                out.put_u128(*digest);
            }
            Frame::Resume { lineage, version } => {
                out.put_u8(b'R');
                out.put_u64(*lineage);
                out.put_u64(*version);
            }
            Frame::Changes(changes) => {
                out.put_u8(b'L');
                out.put_u32(changes.len() as u32);
                for c in changes {
                    out.put_u32(c.len() as u32);
                    out.put_slice(c);
                }
            }
            Frame::Head {
                version,
                digest,
                time_ms,
            } => {
                out.put_u8(b'T');
                out.put_u64(*version);
                out.put_u128(*digest);
                out.put_u64(*time_ms);
            }
            Frame::Applied { version, consumed } => {
                out.put_u8(b'K');
                out.put_u64(*version);
                out.put_u64(*consumed);
            }
            Frame::Error(text) => {
                out.put_u8(b'X');
                out.put_slice(text.as_bytes());
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn put_name(out: &mut BytesMut, name: &str) {
    let b = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_bucket(out: &mut BytesMut, name: &str) {
    let b = &name.as_bytes()[..name.len().min(255)];
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

impl Decoder for Codec {
    type Item = (Frame, usize);
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(Frame, usize)>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(src[..4].try_into().expect("4")) as usize;
        if len > self.max {
            return Err(WireError::TooLarge(len, self.max));
        }
        if len == 0 {
            return Err(WireError::Malformed("an empty frame"));
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let body = src.split_to(len);
        Ok(Some((Frame::parse(body[0], &body[1..])?, 4 + len)))
    }
}

impl Encoder<Frame> for Codec {
    type Error = WireError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        item.write(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Frame> {
        vec![
            Frame::Hello {
                challenge: 7,
                node: "c@h".into(),
            },
            Frame::Claim {
                digest: [3; 16],
                challenge: u32::MAX,
                node: "r@h".into(),
                lineage: 9,
                version: 10,
                digest_at: u128::MAX,
            },
            Frame::Ack { digest: [1; 16] },
            Frame::SnapshotBegin {
                lineage: 1,
                version: 2,
            },
            Frame::SnapshotBatch {
                buckets: vec!["a".into(), "players".into()],
                entries: vec![Entry {
                    bucket: "players".into(),
                    key: b"42".to_vec(),
                    version: 5,
                    value: vec![131, 100, 0, 1, b'x'],
                }],
            },
            Frame::SnapshotEnd {
                version: 2,
                digest: 77,
            },
            Frame::Resume {
                lineage: 1,
                version: 2,
            },
            Frame::Changes(vec![vec![1, 2, 3], vec![]]),
            Frame::Head {
                version: 3,
                digest: 4,
                time_ms: 5,
            },
            Frame::Applied {
                version: 3,
                consumed: 100,
            },
            Frame::Error("nope".into()),
        ]
    }

    #[test]
    fn frames_round_trip_and_report_their_size() {
        let mut codec = Codec::new(1 << 20);
        for f in all() {
            let mut buf = BytesMut::new();
            f.write(&mut buf);
            let n = buf.len();
            assert_eq!(f.wire_len(), n, "{f:?}");
            // Byte by byte: nothing decodes before the whole frame is there.
            let mut partial = BytesMut::new();
            for (i, b) in buf.iter().enumerate() {
                partial.put_u8(*b);
                let got = codec.decode(&mut partial).unwrap();
                if i + 1 < n {
                    assert!(got.is_none());
                } else {
                    assert_eq!(got, Some((f.clone(), n)));
                }
            }
        }
    }

    #[test]
    fn malformed_frames_are_errors_with_a_reason() {
        let mut codec = Codec::new(64);
        let mut buf = BytesMut::from(&[0, 0, 1, 0, b'H'][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(WireError::TooLarge(256, 64))
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(codec.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0, 0, 0, 1, b'?'][..]);
        let e = codec.decode(&mut buf).unwrap_err().to_string();
        assert!(e.contains("unknown frame tag"), "{e}");
        // Every truncated payload is an error, not a panic.
        for f in all() {
            let mut buf = BytesMut::new();
            f.write(&mut buf);
            if !matches!(f, Frame::Error(_)) {
                for cut in 5..buf.len() {
                    let r = Frame::parse(buf[4], &buf[5..cut]);
                    assert!(r.is_err(), "{f:?} cut to {cut} bytes parsed");
                }
            }
            let mut long = buf[5..].to_vec();
            long.push(0);
            if !matches!(f, Frame::Error(_)) {
                assert!(
                    Frame::parse(buf[4], &long).is_err(),
                    "{f:?} with a byte more"
                );
            }
        }
        let mut buf = BytesMut::new();
        Frame::Hello {
            challenge: 1,
            node: "x".into(),
        }
        .write(&mut buf);
        buf[6] = b'X';
        let e = Frame::parse(buf[4], &buf[5..]).unwrap_err().to_string();
        assert!(e.contains("not a cluster bulk channel"), "{e}");
    }
}
