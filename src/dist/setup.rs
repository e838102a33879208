//! Runs the handshake state machines of [`super::proto::handshake`] over a stream: reads and
//! writes the length-prefixed handshake messages (a 2-byte length on plain TCP, 4 inside TLS)
//! and bounds every step by the setup time (`net_setuptime`, 7 s by default), so a peer that
//! stalls mid-handshake is dropped instead of holding a connection slot forever. An incoming
//! connection gets a shorter deadline for its first message: until it has said who it is, it
//! is just a socket someone opened.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::proto::handshake::{
    Acceptor, HandshakeError, Hello, Initiator, PeerInfo, Status, StatusOutcome,
};

/// Erlang's default `net_setuptime`.
pub const DEFAULT_SETUP_TIME: Duration = Duration::from_secs(7);

/// Why a connection could not be set up.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The peer did not complete a step in time.
    #[error("handshake timed out waiting for {0}")]
    Timeout(&'static str),
    /// The peer closed the connection during the handshake.
    #[error("connection closed by the peer during the handshake (waiting for {0})")]
    Closed(&'static str),
    /// The handshake itself failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Socket error.
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Largest handshake message accepted (a name is at most a few hundred bytes).
const MAX_MESSAGE: usize = u16::MAX as usize;

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
    step: &'static str,
    prefix: usize,
) -> Result<Vec<u8>, SetupError> {
    let work = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len[4 - prefix..]).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("handshake message of {n} bytes"),
            ));
        }
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(limit, work).await {
        Err(_) => Err(SetupError::Timeout(step)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(SetupError::Closed(step))
        }
        Ok(Err(e)) => Err(SetupError::Io(e)),
        Ok(Ok(buf)) => Ok(buf),
    }
}

async fn write_frames<S: AsyncWrite + Unpin>(
    stream: &mut S,
    frames: &[Vec<u8>],
    limit: Duration,
    prefix: usize,
) -> Result<(), SetupError> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes()[4 - prefix..]);
        out.extend_from_slice(f);
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| SetupError::Timeout("the peer to read"))??;
    Ok(())
}

/// Runs the initiator side to completion. `prefix` is the handshake length size (2 or 4).
/// When the peer answers `alive` (it thinks we are connected), `still_wanted` says whether
/// this attempt should replace that connection (it should only if we are not connected).
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut hs: Initiator,
    limit: Duration,
    prefix: usize,
    still_wanted: impl FnOnce() -> bool,
) -> Result<PeerInfo, SetupError> {
    write_frames(stream, &[hs.send_name()], limit, prefix).await?;
    let status = read_frame(stream, limit, "status", prefix).await?;
    if hs.on_status(&status)? == StatusOutcome::Alive {
        let replace = still_wanted();
        write_frames(stream, &[hs.answer_alive(replace)], limit, prefix).await?;
        if !replace {
            return Err(HandshakeError::Refused("alive: already connected").into());
        }
    }
    let challenge = read_frame(stream, limit, "challenge", prefix).await?;
    let reply = hs.on_challenge(&challenge)?;
    write_frames(stream, &[reply], limit, prefix).await?;
    match read_frame(stream, limit, "challenge_ack", prefix).await {
        // Erlang closes without a word when the digest is wrong.
        Err(SetupError::Closed(_)) => Err(HandshakeError::BadCookie.into()),
        Err(e) => Err(e),
        Ok(ack) => Ok(hs.on_ack(&ack)?),
    }
}

/// Deadlines of the acceptor side.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// For the peer's first message.
    pub hello: Duration,
    /// For every later step.
    pub step: Duration,
    /// The handshake length size (2 or 4).
    pub prefix: usize,
}

impl AcceptLimits {
    /// Every step bounded by `step`, on plain TCP.
    pub fn uniform(step: Duration) -> AcceptLimits {
        AcceptLimits {
            hello: step,
            step,
            prefix: 2,
        }
    }
}

/// Runs the acceptor side to completion. `decide` sees the peer's send_name and returns the
/// status to answer with (simultaneous-connect resolution, duplicates, name kinds).
pub async fn accept<S, F>(
    stream: &mut S,
    mut hs: Acceptor,
    limits: AcceptLimits,
    decide: F,
) -> Result<PeerInfo, SetupError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Hello) -> Status,
{
    let (limit, prefix) = (limits.step, limits.prefix);
    let name = read_frame(stream, limits.hello, "send_name", prefix).await?;
    let hello = hs.on_name(&name)?;
    let status = decide(&hello);
    write_frames(stream, &hs.verdict(status)?, limit, prefix).await?;
    match status {
        Status::Ok | Status::OkSimultaneous => {}
        Status::Alive => {
            let answer = read_frame(stream, limit, "alive answer", prefix).await?;
            match hs.on_alive_answer(&answer)? {
                Some(challenge) => write_frames(stream, &[challenge], limit, prefix).await?,
                None => return Err(HandshakeError::Refused("peer gave up (alive)").into()),
            }
        }
        Status::Nok => return Err(HandshakeError::Refused("nok").into()),
        Status::NotAllowed => return Err(HandshakeError::Refused("not_allowed").into()),
    }
    let reply = read_frame(stream, limit, "challenge_reply", prefix).await?;
    let (ack, peer) = hs.on_reply(&reply)?;
    write_frames(stream, &[ack], limit, prefix).await?;
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::proto::flags;
    use crate::dist::proto::handshake::LocalInfo;
    use crate::dist::{Cookie, NodeName};

    fn local(name: &str) -> LocalInfo {
        LocalInfo {
            name: NodeName::parse(name).unwrap(),
            flags: flags::advertised(true),
            creation: 1,
        }
    }

    fn initiator(cookie: &str) -> Initiator {
        Initiator::new(
            local("a@127.0.0.1"),
            NodeName::parse("b@127.0.0.1").unwrap(),
            Cookie::new(cookie),
            11,
        )
    }

    fn acceptor(cookie: &str) -> Acceptor {
        Acceptor::new(local("b@127.0.0.1"), Cookie::new(cookie), 22)
    }

    #[tokio::test]
    async fn both_sides_complete_over_a_stream() {
        let (mut x, mut y) = tokio::io::duplex(1024);
        let (a, b) = tokio::join!(
            initiate(&mut x, initiator("c"), DEFAULT_SETUP_TIME, 2, || true),
            accept(
                &mut y,
                acceptor("c"),
                AcceptLimits::uniform(DEFAULT_SETUP_TIME),
                |_| Status::Ok
            )
        );
        assert_eq!(a.unwrap().name.as_str(), "b@127.0.0.1");
        assert_eq!(b.unwrap().name.as_str(), "a@127.0.0.1");
    }

    #[tokio::test]
    async fn wrong_cookie_fails_both_sides() {
        let (mut x, mut y) = tokio::io::duplex(1024);
        let (a, b) = tokio::join!(
            initiate(&mut x, initiator("one"), DEFAULT_SETUP_TIME, 2, || true),
            async {
                let r = accept(
                    &mut y,
                    acceptor("two"),
                    AcceptLimits::uniform(DEFAULT_SETUP_TIME),
                    |_| Status::Ok,
                )
                .await;
                drop(y); // the acceptor closes, as Erlang does
                r
            }
        );
        assert!(matches!(
            b,
            Err(SetupError::Handshake(HandshakeError::BadCookie))
        ));
        assert!(matches!(
            a,
            Err(SetupError::Handshake(HandshakeError::BadCookie))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_peer_times_out_after_the_setup_time() {
        let (mut x, _silent) = tokio::io::duplex(1024);
        let started = tokio::time::Instant::now();
        let err = initiate(&mut x, initiator("c"), DEFAULT_SETUP_TIME, 2, || true)
            .await
            .unwrap_err();
        assert!(matches!(err, SetupError::Timeout("status")), "{err}");
        assert_eq!(started.elapsed(), DEFAULT_SETUP_TIME);

        // An acceptor whose peer sends half a frame and stalls.
        let (mut x, mut y) = tokio::io::duplex(1024);
        y.write_all(&[0, 50, b'N']).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = accept(
            &mut x,
            acceptor("c"),
            AcceptLimits::uniform(DEFAULT_SETUP_TIME),
            |_| Status::Ok,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SetupError::Timeout("send_name")), "{err}");
        assert_eq!(started.elapsed(), DEFAULT_SETUP_TIME);
    }

    #[tokio::test]
    async fn refusing_statuses_end_both_sides() {
        for status in [Status::Nok, Status::NotAllowed] {
            let (mut x, mut y) = tokio::io::duplex(1024);
            let (a, b) = tokio::join!(
                initiate(&mut x, initiator("c"), DEFAULT_SETUP_TIME, 2, || true),
                accept(
                    &mut y,
                    acceptor("c"),
                    AcceptLimits::uniform(DEFAULT_SETUP_TIME),
                    move |_| status
                )
            );
            assert!(matches!(
                a,
                Err(SetupError::Handshake(HandshakeError::Refused(_)))
            ));
            assert!(matches!(
                b,
                Err(SetupError::Handshake(HandshakeError::Refused(_)))
            ));
        }
        // alive: the initiator replaces the stale connection.
        let (mut x, mut y) = tokio::io::duplex(1024);
        let (a, b) = tokio::join!(
            initiate(&mut x, initiator("c"), DEFAULT_SETUP_TIME, 2, || true),
            accept(
                &mut y,
                acceptor("c"),
                AcceptLimits::uniform(DEFAULT_SETUP_TIME),
                |_| Status::Alive
            )
        );
        assert!(a.is_ok() && b.is_ok());
    }

    #[tokio::test]
    async fn garbage_is_a_handshake_error() {
        let (mut x, mut y) = tokio::io::duplex(1024);
        y.write_all(b"\x00\x05HELLO").await.unwrap();
        let err = accept(
            &mut x,
            acceptor("c"),
            AcceptLimits::uniform(DEFAULT_SETUP_TIME),
            |_| Status::Ok,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, SetupError::Handshake(HandshakeError::Malformed(_))),
            "{err}"
        );
    }
}
