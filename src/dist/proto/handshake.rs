//! The distribution handshake (OTP 23+ "HANDSHAKE_23" variant) as two pure state machines,
//! one per side. Each method takes the payload of one received frame (the bytes after the u16
//! length) and returns the frames to send, so the whole exchange is testable without sockets
//! and the I/O driver in [`super::setup`] only moves bytes and enforces timeouts.
//!
//! The exchange, initiator A and acceptor B (layouts in `DESIGN.md`):
//! 1. A → B `N` send_name: flags, creation, name.
//! 2. B → A `s` status: `ok`, `ok_simultaneous`, `nok`, `not_allowed`, `alive` or `named:`.
//! 3. B → A `N` challenge: flags, challenge, creation, name.
//! 4. A → B `r` challenge_reply: A's challenge and `md5(cookie ++ decimal(B's challenge))`.
//! 5. B → A `a` challenge_ack: `md5(cookie ++ decimal(A's challenge))`.
//!
//! Pre-OTP-23 peers (the `n` send_name, version 5) are refused: OTP 25 itself no longer talks
//! to them.

use bytes::{Buf, BufMut, BytesMut};
use md5::{Digest, Md5};
use thiserror::Error;

use super::flags;
use crate::dist::name::{Cookie, NameError, NodeName};

/// What one side says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfo {
    /// Our full node name.
    pub name: NodeName,
    /// The flags we advertise.
    pub flags: u64,
    /// Our creation, from the port mapper.
    pub creation: u32,
}

/// The peer, once the handshake has completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's full node name.
    pub name: NodeName,
    /// The flags the peer advertised.
    pub flags: u64,
    /// The peer's creation.
    pub creation: u32,
}

impl PeerInfo {
    /// Whether the peer is a visible node.
    pub fn is_visible(&self) -> bool {
        self.flags & flags::PUBLISHED != 0
    }
}

/// The acceptor's verdict after send_name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Go on.
    Ok,
    /// Go on; we abandoned our own simultaneous attempt in favour of this one.
    OkSimultaneous,
    /// A simultaneous attempt of ours wins; drop this one.
    Nok,
    /// This peer may not connect.
    NotAllowed,
    /// A connection with this peer is already up.
    Alive,
}

impl Status {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Status::Ok => b"ok",
            Status::OkSimultaneous => b"ok_simultaneous",
            Status::Nok => b"nok",
            Status::NotAllowed => b"not_allowed",
            Status::Alive => b"alive",
        }
    }

    fn parse(bytes: &[u8]) -> Result<Status, HandshakeError> {
        Ok(match bytes {
            b"ok" => Status::Ok,
            b"ok_simultaneous" => Status::OkSimultaneous,
            b"nok" => Status::Nok,
            b"not_allowed" => Status::NotAllowed,
            b"alive" => Status::Alive,
            other => {
                return Err(HandshakeError::Malformed(format!(
                    "unknown status {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        })
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// A frame did not have the expected layout.
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    /// The peer speaks only the pre-OTP-23 handshake.
    #[error("peer uses the pre-OTP 23 handshake, which is not supported")]
    PeerTooOld,
    /// The peer lacks flags OTP 25 requires.
    #[error("peer lacks mandatory distribution flags {0:#x}")]
    MissingFlags(u64),
    /// The acceptor answered with a status that ends the attempt.
    #[error("peer refused the connection: {0}")]
    Refused(&'static str),
    /// The digests did not match: the cookies differ.
    #[error("cookie rejected")]
    BadCookie,
    /// The peer claims a different name than the one we dialled.
    #[error("expected {expected}, but the peer is {got}")]
    WrongPeer {
        /// Who we dialled.
        expected: String,
        /// Who answered.
        got: String,
    },
    /// The peer's name is not a valid node name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A method was called out of order (a bug in the driver, not in the peer).
    #[error("handshake step out of order")]
    OutOfOrder,
}

/// `md5(cookie ++ decimal(challenge))`.
pub fn digest(cookie: &Cookie, challenge: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(cookie.expose().as_bytes());
    h.update(challenge.to_string().as_bytes());
    h.finalize().into()
}

fn frame(build: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    build(&mut b);
    b.to_vec()
}

/// Appends `Nlen u16 · Name`, the tail of both send_name and challenge.
fn put_name(b: &mut BytesMut, name: &NodeName) {
    b.put_u16(name.as_str().len() as u16);
    b.put_slice(name.as_str().as_bytes());
}

fn check_flags(peer_flags: u64) -> Result<(), HandshakeError> {
    if peer_flags & flags::HANDSHAKE_23 == 0 {
        return Err(HandshakeError::PeerTooOld);
    }
    let missing = flags::MANDATORY & !peer_flags;
    if missing != 0 {
        return Err(HandshakeError::MissingFlags(missing));
    }
    Ok(())
}

fn need(buf: &[u8], n: usize, what: &str) -> Result<(), HandshakeError> {
    if buf.len() < n {
        return Err(HandshakeError::Malformed(format!("{what} is truncated")));
    }
    Ok(())
}

fn take_name(buf: &mut &[u8], what: &str) -> Result<NodeName, HandshakeError> {
    need(buf, 2, what)?;
    let len = buf.get_u16() as usize;
    if buf.len() != len {
        return Err(HandshakeError::Malformed(format!(
            "{what}: name length {len} but {} bytes follow",
            buf.len()
        )));
    }
    let name = std::str::from_utf8(buf)
        .map_err(|_| HandshakeError::Malformed(format!("{what}: name is not UTF-8")))?;
    let name = NodeName::parse(name)?;
    *buf = &buf[len..];
    Ok(name)
}

/// The peer's send_name, as the acceptor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The peer's name.
    pub name: NodeName,
    /// The peer's flags.
    pub flags: u64,
    /// The peer's creation.
    pub creation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptorState {
    AwaitName,
    AwaitVerdict,
    AwaitAliveAnswer,
    AwaitReply,
    Done,
}

/// The accepting side.
#[derive(Debug)]
pub struct Acceptor {
    local: LocalInfo,
    cookie: Cookie,
    challenge: u32,
    state: AcceptorState,
    hello: Option<Hello>,
}

impl Acceptor {
    /// `challenge` must be random; it is what proves the peer knows the cookie.
    pub fn new(local: LocalInfo, cookie: Cookie, challenge: u32) -> Acceptor {
        Acceptor {
            local,
            cookie,
            challenge,
            state: AcceptorState::AwaitName,
            hello: None,
        }
    }

    /// Step 1: decodes the peer's send_name. The caller then decides the status.
    pub fn on_name(&mut self, mut buf: &[u8]) -> Result<Hello, HandshakeError> {
        if self.state != AcceptorState::AwaitName {
            return Err(HandshakeError::OutOfOrder);
        }
        match buf.first() {
            Some(b'N') => {}
            Some(b'n') => return Err(HandshakeError::PeerTooOld),
            _ => return Err(HandshakeError::Malformed("expected send_name".into())),
        }
        buf.advance(1);
        need(buf, 8 + 4, "send_name")?;
        let peer_flags = buf.get_u64();
        let creation = buf.get_u32();
        let name = take_name(&mut buf, "send_name")?;
        check_flags(peer_flags)?;
        let hello = Hello {
            name,
            flags: peer_flags,
            creation,
        };
        self.hello = Some(hello.clone());
        self.state = AcceptorState::AwaitVerdict;
        Ok(hello)
    }

    /// Step 2 and 3: the status frame and, when the status lets the peer continue, our
    /// challenge.
    pub fn verdict(&mut self, status: Status) -> Result<Vec<Vec<u8>>, HandshakeError> {
        if self.state != AcceptorState::AwaitVerdict {
            return Err(HandshakeError::OutOfOrder);
        }
        let mut frames = vec![frame(|b| {
            b.put_u8(b's');
            b.put_slice(status.as_bytes());
        })];
        match status {
            Status::Ok | Status::OkSimultaneous => frames.push(self.challenge_frame()),
            Status::Alive => self.state = AcceptorState::AwaitAliveAnswer,
            Status::Nok | Status::NotAllowed => self.state = AcceptorState::Done,
        }
        Ok(frames)
    }

    /// After `alive`: the initiator's `true` (replace the old connection; our challenge
    /// follows) or `false` (it gives up).
    pub fn on_alive_answer(&mut self, buf: &[u8]) -> Result<Option<Vec<u8>>, HandshakeError> {
        if self.state != AcceptorState::AwaitAliveAnswer {
            return Err(HandshakeError::OutOfOrder);
        }
        match buf {
            b"strue" => Ok(Some(self.challenge_frame())),
            b"sfalse" => {
                self.state = AcceptorState::Done;
                Ok(None)
            }
            _ => Err(HandshakeError::Malformed("expected strue or sfalse".into())),
        }
    }

    fn challenge_frame(&mut self) -> Vec<u8> {
        self.state = AcceptorState::AwaitReply;
        frame(|b| {
            b.put_u8(b'N');
            b.put_u64(self.local.flags);
            b.put_u32(self.challenge);
            b.put_u32(self.local.creation);
            put_name(b, &self.local.name);
        })
    }

    /// Step 4 and 5: checks the peer's digest and returns our ack and who the peer is.
    pub fn on_reply(&mut self, mut buf: &[u8]) -> Result<(Vec<u8>, PeerInfo), HandshakeError> {
        if self.state != AcceptorState::AwaitReply {
            return Err(HandshakeError::OutOfOrder);
        }
        self.state = AcceptorState::Done;
        if buf.first() != Some(&b'r') || buf.len() != 1 + 4 + 16 {
            return Err(HandshakeError::Malformed(
                "expected a 21-byte challenge_reply".into(),
            ));
        }
        buf.advance(1);
        let their_challenge = buf.get_u32();
        if buf[..16] != digest(&self.cookie, self.challenge) {
            return Err(HandshakeError::BadCookie);
        }
        let hello = self.hello.take().ok_or(HandshakeError::OutOfOrder)?;
        let ack = frame(|b| {
            b.put_u8(b'a');
            b.put_slice(&digest(&self.cookie, their_challenge));
        });
        Ok((
            ack,
            PeerInfo {
                name: hello.name,
                flags: hello.flags,
                creation: hello.creation,
            },
        ))
    }
}

/// What the initiator learns from the status frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// Wait for the challenge.
    Continue,
    /// The acceptor thinks we are already connected; answer with [`Initiator::answer_alive`].
    Alive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitiatorState {
    Start,
    AwaitStatus,
    AwaitChallenge,
    AwaitAck,
    Done,
}

/// The connecting side.
#[derive(Debug)]
pub struct Initiator {
    local: LocalInfo,
    peer: NodeName,
    cookie: Cookie,
    challenge: u32,
    state: InitiatorState,
    learned: Option<PeerInfo>,
}

impl Initiator {
    /// `challenge` must be random.
    pub fn new(local: LocalInfo, peer: NodeName, cookie: Cookie, challenge: u32) -> Initiator {
        Initiator {
            local,
            peer,
            cookie,
            challenge,
            state: InitiatorState::Start,
            learned: None,
        }
    }

    /// Step 1: our send_name.
    pub fn send_name(&mut self) -> Vec<u8> {
        self.state = InitiatorState::AwaitStatus;
        frame(|b| {
            b.put_u8(b'N');
            b.put_u64(self.local.flags);
            b.put_u32(self.local.creation);
            put_name(b, &self.local.name);
        })
    }

    /// Step 2: the acceptor's status.
    pub fn on_status(&mut self, buf: &[u8]) -> Result<StatusOutcome, HandshakeError> {
        if self.state != InitiatorState::AwaitStatus {
            return Err(HandshakeError::OutOfOrder);
        }
        let body = buf
            .strip_prefix(b"s")
            .ok_or_else(|| HandshakeError::Malformed("expected status".into()))?;
        if body.starts_with(b"named:") {
            return Err(HandshakeError::Refused(
                "named: (dynamic node names are not supported)",
            ));
        }
        match Status::parse(body)? {
            Status::Ok | Status::OkSimultaneous => {
                self.state = InitiatorState::AwaitChallenge;
                Ok(StatusOutcome::Continue)
            }
            Status::Alive => Ok(StatusOutcome::Alive),
            Status::Nok => Err(HandshakeError::Refused(
                "nok (a simultaneous connection from the peer won)",
            )),
            Status::NotAllowed => Err(HandshakeError::Refused("not_allowed")),
        }
    }

    /// Answers `alive`: `true` to replace the old connection, `false` to give up.
    pub fn answer_alive(&mut self, replace: bool) -> Vec<u8> {
        self.state = if replace {
            InitiatorState::AwaitChallenge
        } else {
            InitiatorState::Done
        };
        frame(|b| {
            b.put_u8(b's');
            b.put_slice(if replace { b"true" } else { b"false" });
        })
    }

    /// Step 3: the acceptor's challenge; returns our challenge_reply.
    pub fn on_challenge(&mut self, mut buf: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        if self.state != InitiatorState::AwaitChallenge {
            return Err(HandshakeError::OutOfOrder);
        }
        match buf.first() {
            Some(b'N') => {}
            Some(b'n') => return Err(HandshakeError::PeerTooOld),
            _ => return Err(HandshakeError::Malformed("expected challenge".into())),
        }
        buf.advance(1);
        need(buf, 8 + 4 + 4, "challenge")?;
        let peer_flags = buf.get_u64();
        let their_challenge = buf.get_u32();
        let creation = buf.get_u32();
        let name = take_name(&mut buf, "challenge")?;
        check_flags(peer_flags)?;
        if name != self.peer {
            return Err(HandshakeError::WrongPeer {
                expected: self.peer.to_string(),
                got: name.to_string(),
            });
        }
        self.learned = Some(PeerInfo {
            name,
            flags: peer_flags,
            creation,
        });
        self.state = InitiatorState::AwaitAck;
        Ok(frame(|b| {
            b.put_u8(b'r');
            b.put_u32(self.challenge);
            b.put_slice(&digest(&self.cookie, their_challenge));
        }))
    }

    /// Step 5: the acceptor's ack; proves the acceptor knows the cookie too.
    pub fn on_ack(&mut self, buf: &[u8]) -> Result<PeerInfo, HandshakeError> {
        if self.state != InitiatorState::AwaitAck {
            return Err(HandshakeError::OutOfOrder);
        }
        self.state = InitiatorState::Done;
        if buf.first() != Some(&b'a') || buf.len() != 17 {
            return Err(HandshakeError::Malformed(
                "expected a 17-byte challenge_ack".into(),
            ));
        }
        if buf[1..] != digest(&self.cookie, self.challenge) {
            return Err(HandshakeError::BadCookie);
        }
        self.learned.take().ok_or(HandshakeError::OutOfOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(name: &str, visible: bool) -> LocalInfo {
        LocalInfo {
            name: NodeName::parse(name).unwrap(),
            flags: flags::advertised(visible),
            creation: 7,
        }
    }

    fn pair(a_cookie: &str, b_cookie: &str) -> (Initiator, Acceptor) {
        (
            Initiator::new(
                local("a@127.0.0.1", false),
                NodeName::parse("b@127.0.0.1").unwrap(),
                Cookie::new(a_cookie),
                1234,
            ),
            Acceptor::new(
                local("b@127.0.0.1", true),
                Cookie::new(b_cookie),
                987_654_321,
            ),
        )
    }

    #[test]
    fn digest_matches_erlang() {
        // Expected values printed by OTP 25 on this machine:
        // erlang:md5("cookie" ++ integer_to_list(42)), and the largest challenge.
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(digest(&Cookie::new("cookie"), 42)),
            "bc4b5e3f17073012aea742a22f5e1b6a"
        );
        assert_eq!(
            hex(digest(&Cookie::new("mmo"), u32::MAX)),
            "2463fda3ec9bb3dfae75715b6dab5b92"
        );
    }

    #[test]
    fn full_exchange_succeeds_with_equal_cookies() {
        let (mut a, mut b) = pair("mmo", "mmo");
        let hello = b.on_name(&a.send_name()).unwrap();
        assert_eq!(hello.name.as_str(), "a@127.0.0.1");
        assert_eq!(hello.creation, 7);
        let frames = b.verdict(Status::Ok).unwrap();
        assert_eq!(frames[0], b"sok");
        assert_eq!(a.on_status(&frames[0]).unwrap(), StatusOutcome::Continue);
        let reply = a.on_challenge(&frames[1]).unwrap();
        let (ack, peer_a) = b.on_reply(&reply).unwrap();
        assert_eq!(peer_a.name.as_str(), "a@127.0.0.1");
        assert!(!peer_a.is_visible());
        let peer_b = a.on_ack(&ack).unwrap();
        assert_eq!(peer_b.name.as_str(), "b@127.0.0.1");
        assert!(peer_b.is_visible());
    }

    #[test]
    fn wrong_cookie_is_caught_by_the_acceptor() {
        let (mut a, mut b) = pair("right", "wrong");
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::Ok).unwrap();
        a.on_status(&frames[0]).unwrap();
        let reply = a.on_challenge(&frames[1]).unwrap();
        assert_eq!(b.on_reply(&reply), Err(HandshakeError::BadCookie));
    }

    #[test]
    fn forged_ack_is_caught_by_the_initiator() {
        let (mut a, mut b) = pair("same", "same");
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::Ok).unwrap();
        a.on_status(&frames[0]).unwrap();
        a.on_challenge(&frames[1]).unwrap();
        let mut forged = vec![b'a'];
        forged.extend_from_slice(&digest(&Cookie::new("guess"), 1234));
        assert_eq!(a.on_ack(&forged), Err(HandshakeError::BadCookie));
    }

    #[test]
    fn each_refusing_status_ends_the_attempt() {
        for (status, text) in [(Status::Nok, "nok"), (Status::NotAllowed, "not_allowed")] {
            let (mut a, mut b) = pair("c", "c");
            b.on_name(&a.send_name()).unwrap();
            let frames = b.verdict(status).unwrap();
            assert_eq!(frames.len(), 1, "no challenge after {text}");
            let err = a.on_status(&frames[0]).unwrap_err();
            assert!(err.to_string().contains(text), "{err}");
        }
        let (mut a, mut b) = pair("c", "c");
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::Alive).unwrap();
        assert_eq!(a.on_status(&frames[0]).unwrap(), StatusOutcome::Alive);
        assert_eq!(b.on_alive_answer(&a.answer_alive(false)), Ok(None));
        // Answering true replaces the old connection and the exchange goes on.
        let (mut a, mut b) = pair("c", "c");
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::Alive).unwrap();
        a.on_status(&frames[0]).unwrap();
        let challenge = b.on_alive_answer(&a.answer_alive(true)).unwrap().unwrap();
        let reply = a.on_challenge(&challenge).unwrap();
        let (ack, _) = b.on_reply(&reply).unwrap();
        assert_eq!(a.on_ack(&ack).unwrap().name.as_str(), "b@127.0.0.1");
        let (mut a, _) = pair("c", "c");
        a.send_name();
        assert!(matches!(
            a.on_status(b"snamed:"),
            Err(HandshakeError::Refused(_))
        ));
        let (mut a, _) = pair("c", "c");
        a.send_name();
        assert!(matches!(
            a.on_status(b"sperhaps"),
            Err(HandshakeError::Malformed(_))
        ));
        let (mut a, mut b) = pair("c", "c");
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::OkSimultaneous).unwrap();
        assert_eq!(frames[0], b"sok_simultaneous");
        assert_eq!(a.on_status(&frames[0]).unwrap(), StatusOutcome::Continue);
    }

    #[test]
    fn challenge_from_the_wrong_node_is_refused() {
        let mut a = Initiator::new(
            local("a@127.0.0.1", true),
            NodeName::parse("c@127.0.0.1").unwrap(),
            Cookie::new("x"),
            1,
        );
        let mut b = Acceptor::new(local("b@127.0.0.1", true), Cookie::new("x"), 2);
        b.on_name(&a.send_name()).unwrap();
        let frames = b.verdict(Status::Ok).unwrap();
        a.on_status(&frames[0]).unwrap();
        assert!(matches!(
            a.on_challenge(&frames[1]),
            Err(HandshakeError::WrongPeer { .. })
        ));
    }

    #[test]
    fn old_or_incapable_peers_are_refused() {
        let mut b = Acceptor::new(local("b@h.x", true), Cookie::new("x"), 2);
        assert_eq!(
            b.on_name(b"n\x00\x05\x00\x00\x00\x04a@h.x"),
            Err(HandshakeError::PeerTooOld)
        );
        let mut b = Acceptor::new(local("b@h.x", true), Cookie::new("x"), 2);
        let mut f = vec![b'N'];
        f.extend_from_slice(&(flags::HANDSHAKE_23).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 5]);
        f.extend_from_slice(b"a@h.x");
        assert!(matches!(
            b.on_name(&f),
            Err(HandshakeError::MissingFlags(_))
        ));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let good = {
            let (mut a, _) = pair("c", "c");
            a.send_name()
        };
        for cut in 0..good.len() {
            let mut b = Acceptor::new(local("b@h.x", true), Cookie::new("x"), 2);
            assert!(b.on_name(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut b = Acceptor::new(local("b@h.x", true), Cookie::new("x"), 2);
        let mut bad_name = good.clone();
        // The name starts after tag, flags, creation and length: "a@127.0.0.1" -> " @...".
        bad_name[1 + 8 + 4 + 2] = b' ';
        assert!(b.on_name(&bad_name).is_err());
        let (mut a, mut b) = pair("c", "c");
        b.on_name(&a.send_name()).unwrap();
        b.verdict(Status::Ok).unwrap();
        assert!(b.on_reply(b"r\0\0").is_err());
        assert!(a.on_ack(b"a").is_err()); // out of order as well as short
    }
}
