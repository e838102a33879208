//! The table of connection slots, one per peer node, as a pure state machine (generic over the
//! connection handle `C` and the queued-message type `Q`, so tests use plain numbers).
//!
//! A slot is either **connecting** (with the messages sent meanwhile queued in order, as erts
//! queues them on a pending connection) or **up**. The rules follow `net_kernel`/`dist_util`:
//! - a send to an unknown peer starts a dial (auto-connect) and queues the message;
//! - simultaneous connect: when a peer's hello arrives while we dial it, the node whose name
//!   compares greater keeps its own attempt (`nok` to the other); the lesser accepts
//!   (`ok_simultaneous`), keeping what it had queued;
//! - a hello from a peer we think is up is answered `alive`; if the peer confirms and
//!   authenticates, the new connection replaces the old one;
//! - only an attempt that owns a slot may complete it, so a late result of a superseded attempt
//!   changes nothing.
//!
//! A hello proves nothing until the handshake's challenge is answered with the cookie, so no
//! unauthenticated attempt may displace another attempt or block our own dial: a slot holds
//! our dial and several incoming handshakes side by side, and the first to authenticate wins.
//! Unlike `dist_util`, losing a simultaneous connect does not abort our dial: an honest peer
//! with the greater name refuses it (`nok`) anyway, and a stranger claiming that name must not
//! be able to cancel it. A dial may also start beside an incoming handshake that is slow to
//! finish ([`Peers::dial_alongside`]); the node does that after a short grace.

use std::collections::HashMap;

use super::super::proto::handshake::Status;
use super::super::NodeName;

/// Incoming handshakes kept at once for one peer name; a newer one evicts the oldest.
pub const MAX_ACCEPTS: usize = 4;

/// One peer's slot.
pub enum Slot<C, Q> {
    /// A connection is being set up; messages wait in `queue`.
    Connecting {
        /// Our dial, if one is running (or waiting after `nok` for the peer's connection).
        dial: Option<u64>,
        /// Incoming handshakes, oldest first.
        accepts: Vec<u64>,
        /// A dial beside the incoming handshakes has been asked for (once per slot).
        alongside: bool,
        /// Messages sent meanwhile, in order.
        queue: Vec<Q>,
    },
    /// Connected.
    Up {
        /// The connection.
        conn: C,
        /// Replacement handshakes (after `alive`) in progress.
        replacing: Vec<u64>,
    },
}

/// Where a send goes.
pub enum Route<C, Q> {
    /// Connected: send on this connection.
    Up(C, Q),
    /// Queued on a connection being set up.
    Queued,
    /// Queued on incoming handshakes only: if none completes soon, dial beside them.
    QueuedDialSoon,
    /// Queued, and a dial must start with this attempt id.
    Dial(u64),
    /// Not connected and auto-connect is off.
    NotConnected(Q),
}

/// What to do with a peer's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// Go on with the handshake as `attempt`, answering `status`.
    Accept {
        /// The attempt id.
        attempt: u64,
        /// `Ok` or `OkSimultaneous`.
        status: Status,
    },
    /// A connection is up: answer `alive`; if the peer confirms, `attempt` replaces it.
    Alive {
        /// The attempt id.
        attempt: u64,
    },
    /// Refuse with this status (`Nok`).
    Refuse(Status),
}

/// A dial claim.
pub enum Claim<C> {
    /// Dial, as this attempt.
    Dial(u64),
    /// Already connected.
    Up(C),
    /// Our dial is running already.
    InProgress,
    /// Only incoming handshakes are running; [`Peers::dial_alongside`] may add a dial.
    Accepting,
}

/// The slot table.
pub struct Peers<C, Q> {
    slots: HashMap<NodeName, Slot<C, Q>>,
    next_attempt: u64,
}

impl<C: Clone, Q> Default for Peers<C, Q> {
    fn default() -> Self {
        Peers {
            slots: HashMap::new(),
            next_attempt: 1,
        }
    }
}

/// Adds `attempt` to a bounded list of handshakes, evicting the oldest.
fn push_bounded(list: &mut Vec<u64>, attempt: u64) {
    if list.len() >= MAX_ACCEPTS {
        list.remove(0);
    }
    list.push(attempt);
}

impl<C: Clone, Q> Peers<C, Q> {
    fn attempt(&mut self) -> u64 {
        let a = self.next_attempt;
        self.next_attempt += 1;
        a
    }

    fn dialing(&mut self, peer: &NodeName, queue: Vec<Q>) -> u64 {
        let attempt = self.attempt();
        self.slots.insert(
            peer.clone(),
            Slot::Connecting {
                dial: Some(attempt),
                accepts: Vec::new(),
                alongside: false,
                queue,
            },
        );
        attempt
    }

    /// The connection to `peer`, if up.
    pub fn up(&self, peer: &NodeName) -> Option<&C> {
        match self.slots.get(peer) {
            Some(Slot::Up { conn, .. }) => Some(conn),
            _ => None,
        }
    }

    /// Whether a connection to `peer` is being set up.
    pub fn is_connecting(&self, peer: &NodeName) -> bool {
        matches!(self.slots.get(peer), Some(Slot::Connecting { .. }))
    }

    /// Routes a message to `peer`.
    pub fn route(&mut self, peer: &NodeName, item: Q, auto_connect: bool) -> Route<C, Q> {
        match self.slots.get_mut(peer) {
            Some(Slot::Up { conn, .. }) => Route::Up(conn.clone(), item),
            Some(Slot::Connecting {
                dial,
                alongside,
                queue,
                ..
            }) => {
                queue.push(item);
                if dial.is_none() && !*alongside && auto_connect {
                    *alongside = true;
                    Route::QueuedDialSoon
                } else {
                    Route::Queued
                }
            }
            None if !auto_connect => Route::NotConnected(item),
            None => Route::Dial(self.dialing(peer, vec![item])),
        }
    }

    /// Claims the slot for an explicit connect.
    pub fn claim_dial(&mut self, peer: &NodeName) -> Claim<C> {
        match self.slots.get(peer) {
            Some(Slot::Up { conn, .. }) => Claim::Up(conn.clone()),
            Some(Slot::Connecting { dial: Some(_), .. }) => Claim::InProgress,
            Some(Slot::Connecting { .. }) => Claim::Accepting,
            None => Claim::Dial(self.dialing(peer, Vec::new())),
        }
    }

    /// Starts our dial beside incoming handshakes that have not finished: returns its attempt,
    /// or `None` when there is nothing to do (connected, or our dial is running).
    pub fn dial_alongside(&mut self, peer: &NodeName) -> Option<u64> {
        let fresh = self.next_attempt;
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting {
                dial: dial @ None, ..
            }) => {
                *dial = Some(fresh);
                self.next_attempt += 1;
                Some(fresh)
            }
            _ => None,
        }
    }

    /// Decides on a hello from `peer`; `we_win` says our name compares greater.
    pub fn hello(&mut self, peer: &NodeName, we_win: bool) -> Hello {
        let fresh = self.next_attempt;
        let verdict = match self.slots.get_mut(peer) {
            Some(Slot::Up { replacing, .. }) => {
                push_bounded(replacing, fresh);
                Hello::Alive { attempt: fresh }
            }
            Some(Slot::Connecting { dial: Some(_), .. }) if we_win => {
                return Hello::Refuse(Status::Nok);
            }
            Some(Slot::Connecting { dial, accepts, .. }) => {
                push_bounded(accepts, fresh);
                Hello::Accept {
                    attempt: fresh,
                    status: if dial.is_some() {
                        Status::OkSimultaneous
                    } else {
                        Status::Ok
                    },
                }
            }
            None => {
                self.slots.insert(
                    peer.clone(),
                    Slot::Connecting {
                        dial: None,
                        accepts: vec![fresh],
                        alongside: false,
                        queue: Vec::new(),
                    },
                );
                Hello::Accept {
                    attempt: fresh,
                    status: Status::Ok,
                }
            }
        };
        self.next_attempt += 1;
        verdict
    }

    /// Attempt `attempt` connected with `conn`. Returns the queued messages and the
    /// connection it replaced, or gives `conn` back if the attempt no longer owns the slot.
    #[allow(clippy::type_complexity)]
    pub fn established(
        &mut self,
        peer: &NodeName,
        attempt: u64,
        conn: C,
    ) -> Result<(Vec<Q>, Option<C>), C> {
        if !self.owns(peer, attempt) {
            return Err(conn);
        }
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting { queue, .. }) => {
                let queue = std::mem::take(queue);
                self.slots.insert(
                    peer.clone(),
                    Slot::Up {
                        conn,
                        replacing: Vec::new(),
                    },
                );
                Ok((queue, None))
            }
            Some(Slot::Up {
                conn: old,
                replacing,
            }) => {
                let old = std::mem::replace(old, conn);
                replacing.clear();
                Ok((Vec::new(), Some(old)))
            }
            None => Err(conn),
        }
    }

    /// Whether `attempt` still owns part of `peer`'s slot (a dial superseded by the peer's own
    /// connection must stop rather than replace it).
    pub fn owns(&self, peer: &NodeName, attempt: u64) -> bool {
        match self.slots.get(peer) {
            Some(Slot::Connecting { dial, accepts, .. }) => {
                *dial == Some(attempt) || accepts.contains(&attempt)
            }
            Some(Slot::Up { replacing, .. }) => replacing.contains(&attempt),
            None => false,
        }
    }

    /// Whether our dial `attempt`, answered `alive` by the peer, should replace the peer's
    /// connection: only while it owns the slot and no incoming handshake from the peer is in
    /// progress (that handshake is the connection the peer calls alive).
    pub fn dial_wanted(&self, peer: &NodeName, attempt: u64) -> bool {
        matches!(
            self.slots.get(peer),
            Some(Slot::Connecting { dial, accepts, .. })
                if *dial == Some(attempt) && accepts.is_empty()
        )
    }

    /// Our dial `attempt` was answered `nok`: the peer is connecting to us and its attempt
    /// wins. The slot (and its queue) waits for that connection instead of failing; the dial
    /// keeps its place until [`Peers::failed`] ends the wait. Returns whether the attempt
    /// still owned the slot.
    pub fn await_peer(&mut self, peer: &NodeName, attempt: u64) -> bool {
        matches!(
            self.slots.get(peer),
            Some(Slot::Connecting { dial, .. }) if *dial == Some(attempt)
        )
    }

    /// Attempt `attempt` failed. When it was the slot's last attempt, the slot is freed and its
    /// queued messages are returned; otherwise the other attempts go on.
    pub fn failed(&mut self, peer: &NodeName, attempt: u64) -> Option<Vec<Q>> {
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting { dial, accepts, .. }) => {
                if *dial == Some(attempt) {
                    *dial = None;
                } else if let Some(i) = accepts.iter().position(|a| *a == attempt) {
                    accepts.remove(i);
                } else {
                    return None;
                }
                if dial.is_some() || !accepts.is_empty() {
                    return None;
                }
                match self.slots.remove(peer) {
                    Some(Slot::Connecting { queue, .. }) => Some(queue),
                    _ => Some(Vec::new()),
                }
            }
            Some(Slot::Up { replacing, .. }) => {
                replacing.retain(|a| *a != attempt);
                None
            }
            None => None,
        }
    }

    /// The connection for which `is_it` holds closed; true if it was the live one.
    pub fn closed(&mut self, peer: &NodeName, is_it: impl Fn(&C) -> bool) -> bool {
        match self.slots.get(peer) {
            Some(Slot::Up { conn, .. }) if is_it(conn) => {
                self.slots.remove(peer);
                true
            }
            _ => false,
        }
    }

    /// Every live connection.
    pub fn connected(&self) -> impl Iterator<Item = (&NodeName, &C)> {
        self.slots.iter().filter_map(|(n, s)| match s {
            Slot::Up { conn, .. } => Some((n, conn)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        NodeName::parse(s).unwrap()
    }

    type T = Peers<u32, &'static str>;

    #[test]
    fn sends_queue_while_dialling_and_flush_in_order() {
        let mut p = T::default();
        let b = n("b@h");
        let Route::Dial(attempt) = p.route(&b, "m1", true) else {
            panic!("dial")
        };
        assert!(matches!(p.route(&b, "m2", true), Route::Queued));
        assert!(matches!(p.claim_dial(&b), Claim::InProgress));
        let (queued, replaced) = p.established(&b, attempt, 7).ok().unwrap();
        assert_eq!((queued, replaced), (vec!["m1", "m2"], None));
        assert!(matches!(p.route(&b, "m3", true), Route::Up(7, "m3")));
    }

    #[test]
    fn without_auto_connect_nothing_is_queued() {
        let mut p = T::default();
        assert!(matches!(
            p.route(&n("b@h"), "m", false),
            Route::NotConnected("m")
        ));
        assert!(!p.is_connecting(&n("b@h")));
    }

    #[test]
    fn a_failed_dial_frees_the_slot_and_returns_the_queue() {
        let mut p = T::default();
        let b = n("b@h");
        let Route::Dial(a) = p.route(&b, "m1", true) else {
            panic!()
        };
        assert_eq!(p.failed(&b, a + 100), None, "a stranger cannot fail it");
        assert_eq!(p.failed(&b, a), Some(vec!["m1"]));
        assert!(matches!(p.claim_dial(&b), Claim::Dial(_)));
    }

    #[test]
    fn simultaneous_connect_greater_name_wins() {
        // We are the greater name and dialling: their hello is refused.
        let mut p = T::default();
        let b = n("b@h");
        let Claim::Dial(ours) = p.claim_dial(&b) else {
            panic!()
        };
        assert_eq!(p.hello(&b, true), Hello::Refuse(Status::Nok));
        assert!(p.established(&b, ours, 1).is_ok());

        // We are the lesser: we accept theirs, our dial's late result changes nothing, and
        // what we had queued goes out on their connection.
        let mut p = T::default();
        let Route::Dial(ours) = p.route(&b, "m1", true) else {
            panic!()
        };
        let Hello::Accept { attempt, status } = p.hello(&b, false) else {
            panic!()
        };
        assert_eq!(status, Status::OkSimultaneous);
        assert_eq!(p.failed(&b, ours), None);
        assert_eq!(p.established(&b, ours, 9).err(), Some(9));
        let (queued, _) = p.established(&b, attempt, 2).ok().unwrap();
        assert_eq!(queued, vec!["m1"]);
        assert_eq!(p.up(&b), Some(&2));
    }

    #[test]
    fn a_dial_refused_with_nok_waits_for_the_peers_connection() {
        let mut p = T::default();
        let b = n("b@h");
        let Route::Dial(ours) = p.route(&b, "m1", true) else {
            panic!("dial")
        };
        // The peer (greater name) refused our dial before its own hello reached us.
        assert!(p.await_peer(&b, ours));
        assert!(matches!(p.route(&b, "m2", true), Route::Queued));
        let Hello::Accept { attempt, status } = p.hello(&b, false) else {
            panic!("accept")
        };
        assert_eq!(status, Status::OkSimultaneous);
        let (queued, _) = p.established(&b, attempt, 1).ok().unwrap();
        assert_eq!(queued, vec!["m1", "m2"]);
        // Had it never come, the wait would have failed the original attempt.
        let c = n("c@h");
        let Claim::Dial(a) = p.claim_dial(&c) else {
            panic!("dial")
        };
        assert!(p.await_peer(&c, a));
        assert_eq!(p.failed(&c, a), Some(vec![]));
    }

    #[test]
    fn a_strangers_hello_never_cancels_our_dial() {
        let mut p = T::default();
        let b = n("b@h");
        let Route::Dial(ours) = p.route(&b, "m1", true) else {
            panic!("dial")
        };
        // Someone claiming b's name, which compares greater: accepted beside our dial.
        let Hello::Accept { attempt, status } = p.hello(&b, false) else {
            panic!("accept")
        };
        assert_eq!(status, Status::OkSimultaneous);
        assert!(p.owns(&b, ours), "our dial goes on");
        // It never authenticates; our dial connects and takes the queue.
        assert_eq!(p.failed(&b, attempt), None);
        let (queued, _) = p.established(&b, ours, 3).ok().unwrap();
        assert_eq!(queued, vec!["m1"]);
    }

    #[test]
    fn a_dial_starts_beside_incoming_handshakes_and_the_first_to_finish_wins() {
        let mut p = T::default();
        let b = n("b@h");
        let Hello::Accept {
            attempt: theirs, ..
        } = p.hello(&b, true)
        else {
            panic!("accept")
        };
        assert!(matches!(p.claim_dial(&b), Claim::Accepting));
        assert!(matches!(p.route(&b, "m1", true), Route::QueuedDialSoon));
        assert!(
            matches!(p.route(&b, "m2", true), Route::Queued),
            "asked for once"
        );
        let ours = p.dial_alongside(&b).expect("a dial beside the handshake");
        assert_eq!(p.dial_alongside(&b), None, "one dial at a time");
        assert!(matches!(p.claim_dial(&b), Claim::InProgress));
        let (queued, _) = p.established(&b, ours, 5).ok().unwrap();
        assert_eq!(queued, vec!["m1", "m2"]);
        assert_eq!(p.established(&b, theirs, 6).err(), Some(6));
        assert_eq!(p.dial_alongside(&b), None, "connected");
    }

    #[test]
    fn alive_replacements_run_side_by_side_and_the_first_to_complete_wins() {
        let mut p = T::default();
        let b = n("b@h");
        let Hello::Accept { attempt, .. } = p.hello(&b, false) else {
            panic!("accept")
        };
        p.established(&b, attempt, 1).ok().unwrap();
        let Hello::Alive { attempt: first } = p.hello(&b, false) else {
            panic!("alive")
        };
        let Hello::Alive { attempt: second } = p.hello(&b, false) else {
            panic!("alive")
        };
        assert_eq!(p.up(&b), Some(&1));
        let (_, replaced) = p.established(&b, second, 2).ok().unwrap();
        assert_eq!(replaced, Some(1));
        assert_eq!(p.established(&b, first, 3).err(), Some(3));
        assert!(
            !p.closed(&b, |c| *c == 1),
            "the replaced one is not the live one"
        );
        assert!(p.closed(&b, |c| *c == 2));
        assert!(p.up(&b).is_none());
    }

    #[test]
    fn incoming_handshakes_run_side_by_side_boundedly() {
        let mut p = T::default();
        let b = n("b@h");
        let mut attempts = Vec::new();
        for _ in 0..MAX_ACCEPTS + 1 {
            let Hello::Accept { attempt, status } = p.hello(&b, true) else {
                panic!("accept")
            };
            assert_eq!(status, Status::Ok);
            attempts.push(attempt);
        }
        assert!(!p.owns(&b, attempts[0]), "the oldest was evicted");
        // A later one authenticates first; the others then own nothing.
        assert!(p.established(&b, attempts[2], 2).is_ok());
        for a in [attempts[1], attempts[3]] {
            assert!(!p.owns(&b, a));
        }
    }

    #[test]
    fn a_dial_told_alive_yields_to_the_peers_handshake_in_progress() {
        let mut p = T::default();
        let b = n("b@h");
        let Claim::Dial(ours) = p.claim_dial(&b) else {
            panic!("dial")
        };
        assert!(p.dial_wanted(&b, ours));
        // b's own connection to us is being accepted: that is what b calls alive.
        let Hello::Accept { attempt, .. } = p.hello(&b, false) else {
            panic!("accept")
        };
        assert!(!p.dial_wanted(&b, ours));
        assert!(
            p.owns(&b, ours),
            "the dial still holds its place until it ends"
        );
        assert_eq!(p.failed(&b, ours), None, "the accept goes on");
        assert!(p.established(&b, attempt, 1).is_ok());
    }
}
