//! The port mapper's table of registered nodes, as a plain state machine: the daemon calls it
//! under a lock and never across an `.await`, and tests drive it without sockets.
//!
//! It reproduces what OTP's epmd does with names (verified against OTP 25's epmd here):
//! - a live name cannot be registered twice;
//! - a name that unregistered is remembered (up to [`MAX_REMEMBERED`]) so that its next
//!   registration gets a different creation, which lets peers tell an old incarnation's pids
//!   from the new one's;
//! - a new name's creation is the current Unix time in seconds for distribution version 6,
//!   and each re-registration adds one; version-5 nodes cycle through 1..=3.

use std::collections::{HashMap, VecDeque};

use super::proto::{NameLine, NodeEntry};

/// How many unregistered names are remembered for creation numbering, as epmd.
pub const MAX_REMEMBERED: usize = 1000;

/// Identifies the connection that owns a registration.
pub type ConnId = u64;

/// A live registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// What the node sent in ALIVE2_REQ.
    pub entry: NodeEntry,
    /// The creation handed out.
    pub creation: u32,
    /// The connection whose closing unregisters the node.
    pub conn: ConnId,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is held by a live connection.
    #[error("name {0:?} is already registered")]
    Duplicate(String),
}

/// What is kept of a name after it unregistered: its last creation, so that its next
/// registration gets another, and where it was, for DUMP (epmd lists old names with their
/// last port and descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// The creation its last registration had.
    pub creation: u32,
    /// The port its last registration had.
    pub port: u16,
    /// The connection its last registration had.
    pub conn: ConnId,
}

/// The registry: live nodes, newest first when listed (as epmd lists them), plus what is
/// remembered of each recently unregistered name.
#[derive(Debug, Default)]
pub struct Registry {
    live: Vec<Registered>,
    remembered: HashMap<String, Remembered>,
    remembered_order: VecDeque<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `entry` for connection `conn`, handing out a creation. `now_secs` is the
    /// Unix time, passed in so tests are deterministic.
    pub fn register(
        &mut self,
        entry: NodeEntry,
        conn: ConnId,
        now_secs: u64,
    ) -> Result<u32, RegisterError> {
        if self.live.iter().any(|r| r.entry.name == entry.name) {
            return Err(RegisterError::Duplicate(entry.name));
        }
        let previous = self.remembered.remove(&entry.name);
        if previous.is_some() {
            self.remembered_order.retain(|n| n != &entry.name);
        }
        let creation = next_creation(previous.map(|r| r.creation), entry.highest, now_secs);
        self.live.push(Registered {
            entry,
            creation,
            conn,
        });
        Ok(creation)
    }

    /// Removes the registration owned by `conn`, if any, and returns it.
    pub fn unregister_conn(&mut self, conn: ConnId) -> Option<Registered> {
        let idx = self.live.iter().position(|r| r.conn == conn)?;
        Some(self.forget(idx))
    }

    /// Removes the registration of `name`, if any, and returns it (STOP_REQ).
    pub fn unregister_name(&mut self, name: &str) -> Option<Registered> {
        let idx = self.live.iter().position(|r| r.entry.name == name)?;
        Some(self.forget(idx))
    }

    fn forget(&mut self, idx: usize) -> Registered {
        let gone = self.live.remove(idx);
        if self.remembered_order.len() >= MAX_REMEMBERED {
            if let Some(oldest) = self.remembered_order.pop_front() {
                self.remembered.remove(&oldest);
            }
        }
        self.remembered.insert(
            gone.entry.name.clone(),
            Remembered {
                creation: gone.creation,
                port: gone.entry.port,
                conn: gone.conn,
            },
        );
        self.remembered_order.push_back(gone.entry.name.clone());
        gone
    }

    /// Looks a live name up.
    pub fn lookup(&self, name: &str) -> Option<&Registered> {
        self.live.iter().find(|r| r.entry.name == name)
    }

    /// Live names and ports, newest first.
    pub fn names(&self) -> Vec<NameLine> {
        self.live
            .iter()
            .rev()
            .map(|r| NameLine {
                name: r.entry.name.clone(),
                port: r.entry.port,
            })
            .collect()
    }

    /// Live registrations, newest first.
    pub fn live(&self) -> impl Iterator<Item = &Registered> {
        self.live.iter().rev()
    }

    /// Remembered (unregistered) names in the order they unregistered, oldest first, as
    /// epmd lists them.
    pub fn remembered(&self) -> impl Iterator<Item = (&str, &Remembered)> {
        self.remembered_order
            .iter()
            .filter_map(|n| self.remembered.get(n).map(|r| (n.as_str(), r)))
    }

    /// True when no node is registered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

fn next_creation(previous: Option<u32>, highest: u16, now_secs: u64) -> u32 {
    if highest < 6 {
        // Distribution version 5 only has room for creations 1..=3.
        return match previous {
            Some(prev) => prev % 3 + 1,
            None => (now_secs % 3) as u32 + 1,
        };
    }
    let next = match previous {
        Some(prev) => prev.wrapping_add(1),
        None => now_secs as u32,
    };
    // Zero means "unknown creation" in the distribution protocol; never hand it out.
    next.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_lookup_and_list_newest_first() {
        let mut reg = Registry::new();
        assert_eq!(reg.register(NodeEntry::new("a", 1), 1, 1000), Ok(1000));
        assert_eq!(reg.register(NodeEntry::new("b", 2), 2, 1000), Ok(1000));
        assert_eq!(reg.lookup("a").map(|r| r.entry.port), Some(1));
        let names: Vec<_> = reg.names().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn duplicate_live_name_is_refused_and_original_kept() {
        let mut reg = Registry::new();
        reg.register(NodeEntry::new("a", 1), 1, 7).unwrap();
        assert_eq!(
            reg.register(NodeEntry::new("a", 9), 2, 7),
            Err(RegisterError::Duplicate("a".into()))
        );
        assert_eq!(
            reg.lookup("a").map(|r| (r.entry.port, r.conn)),
            Some((1, 1))
        );
    }

    #[test]
    fn reregistration_bumps_creation() {
        let mut reg = Registry::new();
        let first = reg.register(NodeEntry::new("a", 1), 1, 500).unwrap();
        assert!(reg.unregister_conn(1).is_some());
        assert!(reg.lookup("a").is_none());
        let second = reg.register(NodeEntry::new("a", 1), 2, 9_999).unwrap();
        assert_eq!(second, first + 1);
        assert_eq!(reg.remembered().count(), 0);
    }

    #[test]
    fn remembered_names_keep_their_last_place_in_unregistration_order() {
        let mut reg = Registry::new();
        for (conn, name) in [(1, "a1"), (2, "a2"), (3, "a3")] {
            reg.register(NodeEntry::new(name, 5000 + conn as u16), conn, 9)
                .unwrap();
        }
        reg.unregister_conn(1);
        reg.unregister_conn(3);
        let old: Vec<_> = reg.remembered().map(|(n, r)| (n, r.port, r.conn)).collect();
        assert_eq!(old, [("a1", 5001, 1), ("a3", 5003, 3)]);
        // Registered again and gone again: it moves to the end with its new place.
        reg.register(NodeEntry::new("a1", 6001), 4, 9).unwrap();
        reg.unregister_conn(4);
        let old: Vec<_> = reg.remembered().map(|(n, r)| (n, r.port, r.conn)).collect();
        assert_eq!(old, [("a3", 5003, 3), ("a1", 6001, 4)]);
    }

    #[test]
    fn version5_creations_cycle_one_to_three() {
        let mut reg = Registry::new();
        let mut old = NodeEntry::new("old", 1);
        old.highest = 5;
        let mut seen = vec![];
        for conn in 0..4 {
            seen.push(reg.register(old.clone(), conn, 4).unwrap());
            reg.unregister_conn(conn);
        }
        assert_eq!(seen, [2, 3, 1, 2]);
    }

    #[test]
    fn unregister_by_name_and_unknown_conn() {
        let mut reg = Registry::new();
        reg.register(NodeEntry::new("a", 1), 1, 1).unwrap();
        assert!(reg.unregister_conn(42).is_none());
        assert!(reg.unregister_name("nope").is_none());
        assert_eq!(reg.unregister_name("a").map(|r| r.conn), Some(1));
        assert!(reg.is_empty());
    }

    #[test]
    fn memory_of_old_names_is_bounded() {
        let mut reg = Registry::new();
        for i in 0..(MAX_REMEMBERED as u64 + 10) {
            reg.register(NodeEntry::new(format!("n{i}"), 1), i, 1)
                .unwrap();
            reg.unregister_conn(i);
        }
        assert_eq!(reg.remembered().count(), MAX_REMEMBERED);
        assert_eq!(reg.remembered().next().map(|(n, _)| n), Some("n10"));
    }

    #[test]
    fn creation_is_never_zero() {
        assert_eq!(next_creation(None, 6, 0), 1);
        assert_eq!(next_creation(Some(u32::MAX), 6, 0), 1);
    }
}
