//! The guard in front of a listener: connections that have not authenticated yet.
//!
//! Anyone who can reach a port can open connections and say nothing. Refusing newcomers at a
//! cap lets such a flood lock every real peer out (a cap of 256 fell to 256 idle sockets).
//! Instead, a newcomer is always admitted, and when a limit is reached the **oldest
//! connection that has not sent a byte yet** is evicted (the oldest unauthenticated one when
//! all have spoken). A real peer sends its first handshake message at once, so it is never the
//! idle one; the flood evicts itself. A per-source limit keeps one host from filling the table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::PeerSource;

/// Default cap on handshakes in progress.
pub const DEFAULT_CAP: usize = 256;
/// Default cap on handshakes in progress from one source host.
pub const DEFAULT_PER_SOURCE: usize = 128;

struct Pending {
    source: PeerSource,
    idle: bool,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    next: u64,
    pending: BTreeMap<u64, Pending>,
    per_source: HashMap<PeerSource, usize>,
}

impl State {
    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        if let Some(n) = self.per_source.get_mut(&p.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&p.source);
            }
        }
        Some(p)
    }

    /// The oldest connection to evict among those `pick` accepts: idle ones first.
    fn victim(&self, pick: impl Fn(&Pending) -> bool) -> Option<u64> {
        self.pending
            .iter()
            .find(|(_, p)| p.idle && pick(p))
            .or_else(|| self.pending.iter().find(|(_, p)| pick(p)))
            .map(|(seq, _)| *seq)
    }
}

/// The handshake gate of one listener.
#[derive(Clone)]
pub struct Gate {
    state: Arc<Mutex<State>>,
    cap: usize,
    per_source: usize,
}

/// What admitting a connection did.
pub struct Admission {
    /// The newcomer's place; dropping it frees the place.
    pub ticket: Ticket,
    /// How many older connections were evicted to make room.
    pub evicted: usize,
}

/// A connection's place at the gate. Cancelled when it is evicted.
pub struct Ticket {
    state: Arc<Mutex<State>>,
    seq: u64,
    /// Cancelled when the connection is evicted.
    pub cancel: CancellationToken,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    /// A gate with the given caps (each at least 1).
    pub fn new(cap: usize, per_source: usize) -> Gate {
        Gate {
            state: Arc::new(Mutex::new(State::default())),
            cap: cap.max(1),
            per_source: per_source.max(1),
        }
    }

    /// Admits a connection from `source`, evicting older ones over the limits.
    pub fn admit(&self, source: PeerSource) -> Admission {
        let mut st = lock(&self.state);
        let mut evicted = 0;
        while st.per_source.get(&source).copied().unwrap_or(0) >= self.per_source {
            let Some(seq) = st.victim(|p| p.source == source) else {
                break;
            };
            if let Some(p) = st.remove(seq) {
                p.cancel.cancel();
                evicted += 1;
            }
        }
        while st.pending.len() >= self.cap {
            let Some(seq) = st.victim(|_| true) else {
                break;
            };
            if let Some(p) = st.remove(seq) {
                p.cancel.cancel();
                evicted += 1;
            }
        }
        let seq = st.next;
        st.next += 1;
        let cancel = CancellationToken::new();
        st.pending.insert(
            seq,
            Pending {
                source,
                idle: true,
                cancel: cancel.clone(),
            },
        );
        *st.per_source.entry(source).or_default() += 1;
        Admission {
            ticket: Ticket {
                state: self.state.clone(),
                seq,
                cancel,
            },
            evicted,
        }
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }
}

impl Ticket {
    /// The peer has sent its first message: it is no longer the first to be evicted.
    pub fn spoke(&self) {
        if let Some(p) = lock(&self.state).pending.get_mut(&self.seq) {
            p.idle = false;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.state).remove(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: u8) -> PeerSource {
        PeerSource::Ip(std::net::IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let gate = Gate::new(3, 3);
        let a = gate.admit(src(1));
        let b = gate.admit(src(2));
        let c = gate.admit(src(3));
        a.ticket.spoke();
        let d = gate.admit(src(4));
        // a has spoken, so b (the oldest idle) goes.
        assert_eq!(d.evicted, 1);
        assert!(!a.ticket.cancel.is_cancelled());
        assert!(b.ticket.cancel.is_cancelled());
        assert!(!c.ticket.cancel.is_cancelled());
        assert_eq!(gate.pending(), 3);
        // With everyone speaking, the oldest overall goes.
        c.ticket.spoke();
        d.ticket.spoke();
        let e = gate.admit(src(5));
        assert!(a.ticket.cancel.is_cancelled());
        drop(e);
        assert_eq!(gate.pending(), 2);
    }

    #[test]
    fn one_source_cannot_fill_the_gate() {
        let gate = Gate::new(100, 2);
        let x1 = gate.admit(src(1));
        let x2 = gate.admit(src(1));
        let y = gate.admit(src(2));
        let x3 = gate.admit(src(1));
        assert_eq!(x3.evicted, 1);
        assert!(x1.ticket.cancel.is_cancelled());
        assert!(!x2.ticket.cancel.is_cancelled());
        assert!(!y.ticket.cancel.is_cancelled());
        assert_eq!(gate.pending(), 3);
    }

    #[test]
    fn a_flood_of_idle_connections_never_evicts_a_peer_that_spoke() {
        let gate = Gate::new(256, 256);
        let mut flood: Vec<Admission> = (0..256).map(|_| gate.admit(src(9))).collect();
        let real = gate.admit(src(9));
        real.ticket.spoke();
        for _ in 0..10_000 {
            flood.push(gate.admit(src(9)));
            if flood.len() > 512 {
                flood.drain(..256);
            }
        }
        assert!(!real.ticket.cancel.is_cancelled());
        assert!(gate.pending() <= 256);
    }
}
