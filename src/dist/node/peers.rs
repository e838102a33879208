//! The table of connection slots, one per peer node, as a pure state machine (generic over the
//! connection handle `C` and the queued-message type `Q`, so tests use plain numbers).
//!
//! A slot is either **connecting** (our dial, or a handshake we are accepting, with the
//! messages sent meanwhile queued in order, as erts queues them on a pending connection) or
//! **up**. The rules follow `net_kernel`/`dist_util`:
//! - a send to an unknown peer starts a dial (auto-connect) and queues the message;
//! - simultaneous connect: when a peer's hello arrives while we dial it, the node whose name
//!   compares greater keeps its own attempt (`nok` to the other); the lesser abandons its dial
//!   and accepts (`ok_simultaneous`), keeping what it had queued;
//! - a hello from a peer we think is up is answered `alive`; if the peer confirms, the new
//!   connection replaces the old one;
//! - only the attempt that owns a slot may complete or fail it, so a late result of a
//!   superseded attempt changes nothing.

use std::collections::HashMap;

use super::super::proto::handshake::Status;
use super::super::NodeName;

/// One peer's slot.
pub enum Slot<C, Q> {
    /// A connection is being set up; messages wait in `queue`.
    Connecting {
        /// Which attempt owns the slot.
        attempt: u64,
        /// Whether we dialled (rather than accepted).
        dialing: bool,
        /// Messages sent meanwhile, in order.
        queue: Vec<Q>,
    },
    /// Connected.
    Up {
        /// The connection.
        conn: C,
        /// A replacement handshake (after `alive`) in progress.
        replacing: Option<u64>,
    },
}

/// Where a send goes.
pub enum Route<C, Q> {
    /// Connected: send on this connection.
    Up(C, Q),
    /// Queued on a connection being set up.
    Queued,
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
    /// Someone is connecting already.
    InProgress,
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

impl<C: Clone, Q> Peers<C, Q> {
    fn attempt(&mut self) -> u64 {
        let a = self.next_attempt;
        self.next_attempt += 1;
        a
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
            Some(Slot::Connecting { queue, .. }) => {
                queue.push(item);
                Route::Queued
            }
            None if !auto_connect => Route::NotConnected(item),
            None => {
                let attempt = self.attempt();
                self.slots.insert(
                    peer.clone(),
                    Slot::Connecting {
                        attempt,
                        dialing: true,
                        queue: vec![item],
                    },
                );
                Route::Dial(attempt)
            }
        }
    }

    /// Claims the slot for an explicit connect.
    pub fn claim_dial(&mut self, peer: &NodeName) -> Claim<C> {
        match self.slots.get(peer) {
            Some(Slot::Up { conn, .. }) => Claim::Up(conn.clone()),
            Some(Slot::Connecting { .. }) => Claim::InProgress,
            None => {
                let attempt = self.attempt();
                self.slots.insert(
                    peer.clone(),
                    Slot::Connecting {
                        attempt,
                        dialing: true,
                        queue: Vec::new(),
                    },
                );
                Claim::Dial(attempt)
            }
        }
    }

    /// Decides on a hello from `peer`; `we_win` says our name compares greater.
    pub fn hello(&mut self, peer: &NodeName, we_win: bool) -> Hello {
        let fresh = self.next_attempt;
        match self.slots.get_mut(peer) {
            Some(Slot::Up { replacing, .. }) => {
                if replacing.is_some() {
                    return Hello::Refuse(Status::Nok);
                }
                *replacing = Some(fresh);
                self.next_attempt += 1;
                Hello::Alive { attempt: fresh }
            }
            Some(Slot::Connecting {
                attempt,
                dialing: false,
                ..
            }) => {
                // A peer has one attempt at a time, so an older handshake still pending from
                // it is stale (it timed out and retried, say after being stopped): the newer
                // one takes over.
                *attempt = fresh;
                self.next_attempt += 1;
                Hello::Accept {
                    attempt: fresh,
                    status: Status::Ok,
                }
            }
            Some(Slot::Connecting { dialing: true, .. }) if we_win => Hello::Refuse(Status::Nok),
            Some(Slot::Connecting {
                attempt, dialing, ..
            }) => {
                // Give up our dial in favour of theirs; the queue stays.
                *attempt = fresh;
                *dialing = false;
                self.next_attempt += 1;
                Hello::Accept {
                    attempt: fresh,
                    status: Status::OkSimultaneous,
                }
            }
            None => {
                let attempt = self.attempt();
                self.slots.insert(
                    peer.clone(),
                    Slot::Connecting {
                        attempt,
                        dialing: false,
                        queue: Vec::new(),
                    },
                );
                Hello::Accept {
                    attempt,
                    status: Status::Ok,
                }
            }
        }
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
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting {
                attempt: a, queue, ..
            }) if *a == attempt => {
                let queue = std::mem::take(queue);
                self.slots.insert(
                    peer.clone(),
                    Slot::Up {
                        conn,
                        replacing: None,
                    },
                );
                Ok((queue, None))
            }
            Some(Slot::Up {
                conn: old,
                replacing,
            }) if *replacing == Some(attempt) => {
                let old = std::mem::replace(old, conn);
                *replacing = None;
                Ok((Vec::new(), Some(old)))
            }
            _ => Err(conn),
        }
    }

    /// Whether `attempt` still owns `peer`'s slot (a dial superseded by the peer's own
    /// connection must stop rather than replace it).
    pub fn owns(&self, peer: &NodeName, attempt: u64) -> bool {
        matches!(self.slots.get(peer), Some(Slot::Connecting { attempt: a, .. }) if *a == attempt)
    }

    /// Our dial `attempt` was answered `nok`: the peer is connecting to us and its attempt
    /// wins. The slot (and its queue) waits for that connection instead of failing. Returns
    /// whether the attempt still owned the slot.
    pub fn await_peer(&mut self, peer: &NodeName, attempt: u64) -> bool {
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting {
                attempt: a,
                dialing,
                ..
            }) if *a == attempt => {
                *dialing = false;
                true
            }
            _ => false,
        }
    }

    /// Attempt `attempt` failed. Returns its queued messages if it owned the slot (which is
    /// then free).
    pub fn failed(&mut self, peer: &NodeName, attempt: u64) -> Option<Vec<Q>> {
        match self.slots.get_mut(peer) {
            Some(Slot::Connecting { attempt: a, .. }) if *a == attempt => {
                match self.slots.remove(peer) {
                    Some(Slot::Connecting { queue, .. }) => Some(queue),
                    _ => Some(Vec::new()),
                }
            }
            Some(Slot::Up { replacing, .. }) if *replacing == Some(attempt) => {
                *replacing = None;
                None
            }
            _ => None,
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
            panic!()
        };
        // The peer (greater name) refused our dial before its own hello reached us.
        assert!(p.await_peer(&b, ours));
        assert!(matches!(p.route(&b, "m2", true), Route::Queued));
        let Hello::Accept { attempt, status } = p.hello(&b, false) else {
            panic!()
        };
        assert_eq!(status, Status::Ok);
        let (queued, _) = p.established(&b, attempt, 1).ok().unwrap();
        assert_eq!(queued, vec!["m1", "m2"]);
        // Had it never come, the wait would have failed the original attempt.
        let c = n("c@h");
        let Claim::Dial(a) = p.claim_dial(&c) else {
            panic!()
        };
        assert!(p.await_peer(&c, a));
        assert_eq!(p.failed(&c, a), Some(vec![]));
    }

    #[test]
    fn alive_replaces_only_when_the_replacement_completes() {
        let mut p = T::default();
        let b = n("b@h");
        let Hello::Accept { attempt, .. } = p.hello(&b, false) else {
            panic!()
        };
        p.established(&b, attempt, 1).ok().unwrap();
        let Hello::Alive { attempt } = p.hello(&b, false) else {
            panic!()
        };
        assert_eq!(
            p.hello(&b, false),
            Hello::Refuse(Status::Nok),
            "one at a time"
        );
        assert_eq!(p.up(&b), Some(&1));
        let (_, replaced) = p.established(&b, attempt, 2).ok().unwrap();
        assert_eq!(replaced, Some(1));
        assert!(
            !p.closed(&b, |c| *c == 1),
            "the replaced one is not the live one"
        );
        assert!(p.closed(&b, |c| *c == 2));
        assert!(p.up(&b).is_none());
    }

    #[test]
    fn a_newer_hello_while_accepting_takes_over_from_the_stale_one() {
        let mut p = T::default();
        let b = n("b@h");
        let Hello::Accept { attempt: old, .. } = p.hello(&b, true) else {
            panic!()
        };
        let Hello::Accept {
            attempt: new,
            status,
        } = p.hello(&b, true)
        else {
            panic!()
        };
        assert_eq!(status, Status::Ok);
        assert_eq!(p.established(&b, old, 1).err(), Some(1));
        assert!(p.established(&b, new, 2).is_ok());
    }
}
