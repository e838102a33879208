//! A scope's state, as a plain struct whose methods apply one event each (a local join, a
//! peer's message, a `DOWN`) and do their I/O through [`Effects`], so the whole protocol is
//! testable without a node.
//!
//! It keeps what OTP's `pg` keeps, with the same meaning:
//! - the member [`Table`]: per group, every member and the local ones, in OTP's order (a
//!   join prepends; a pid may be a member twice, and leaving removes one of the two). It is
//!   shared with [`super::Scope`] handles for reads and written only here;
//! - local members, each monitored once, with the groups they joined (repeats kept);
//! - peer scopes, each monitored, with the members each announced, so a peer's `DOWN` drops
//!   exactly its members and a `sync` replaces exactly them;
//! - processes watching the scope or a group (OTP 25.1's `pg:monitor_scope/1` and
//!   `pg:monitor/2`), told `{Ref, join | leave, Group, Pids}`.
//!
//! Where OTP trusts its peers, this refuses (and the scope logs it): a peer message from a
//! scope of our own node, a `join`/`leave` from a scope we do not know (OTP ignores those
//! too), or members of another node (see [`super::wire`]). A refused message changes nothing.
//! A `leave` only removes members the peer announced, and skips groups it never announced
//! (OTP crashes on those).
//!
//! A message a peer's connection refuses (its queue is full) is not lost for good: the peer is
//! marked lagging, skipped meanwhile, and sent a whole `sync` (which replaces everything it
//! knew of us) once it has caught up ([`State::catch_up`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dist::term::{atom, list, map_of, tuple, Pid, Ref, Term};

use super::wire::{self, PidOrPids};

/// What the state needs done.
pub trait Effects {
    /// Monitors `pid`; `None` if it cannot be (a pid of a node that cannot exist).
    fn monitor(&mut self, pid: &Pid) -> Option<Ref>;
    /// Drops a monitor.
    fn demonitor(&mut self, reference: &Ref);
    /// Sends without connecting and without waiting.
    fn send(&mut self, to: &Pid, msg: Term) -> Sent;
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued.
    Done,
    /// Refused: the peer's connection is far behind.
    Busy,
    /// Not sent: no connection, or the destination cannot exist.
    Failed,
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The peer claims to be a scope of our own node.
    #[error("the peer {0} is on our own node")]
    OwnNode(String),
    /// A `join` or `leave` from a scope that has not discovered us (or whose `DOWN` came first).
    #[error("{0} is not a known peer scope")]
    UnknownPeer(String),
    /// The peer could not be monitored.
    #[error("cannot monitor {0}")]
    CannotMonitor(String),
}

/// The members of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Every member, newest first.
    pub all: Vec<Pid>,
    /// The members on this node, newest first.
    pub local: Vec<Pid>,
}

/// Groups and their members; groups without members are not kept.
#[derive(Debug, Default)]
pub struct Table {
    groups: HashMap<Term, Members>,
}

/// The table, shared between a scope process (the only writer) and its handles.
pub type Shared = Arc<RwLock<Table>>;

/// Reads the table; a writer never panics mid-update, so a poisoned lock is still consistent.
pub fn read(t: &Shared) -> RwLockReadGuard<'_, Table> {
    t.read().unwrap_or_else(|e| e.into_inner())
}

fn write(t: &Shared) -> RwLockWriteGuard<'_, Table> {
    t.write().unwrap_or_else(|e| e.into_inner())
}

/// Erlang's `A -- B`: removes the first occurrence in `a` of each element of `b`. Returns
/// what was really removed.
fn subtract(a: &mut Vec<Pid>, b: &[Pid]) -> Vec<Pid> {
    let mut removed = Vec::new();
    for p in b {
        if let Some(i) = a.iter().position(|x| x == p) {
            a.remove(i);
            removed.push(p.clone());
        }
    }
    removed
}

impl Table {
    /// Every member of `group`.
    pub fn members(&self, group: &Term) -> Vec<Pid> {
        self.groups
            .get(group)
            .map(|m| m.all.clone())
            .unwrap_or_default()
    }

    /// The members of `group` on this node.
    pub fn local_members(&self, group: &Term) -> Vec<Pid> {
        self.groups
            .get(group)
            .map(|m| m.local.clone())
            .unwrap_or_default()
    }

    /// Every group with a member.
    pub fn groups(&self) -> Vec<Term> {
        self.groups.keys().cloned().collect()
    }

    /// Every group with a member on this node.
    pub fn local_groups(&self) -> Vec<Term> {
        self.groups
            .iter()
            .filter(|(_, m)| !m.local.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Every group with its members.
    pub fn all(&self) -> impl Iterator<Item = (&Term, &Members)> {
        self.groups.iter()
    }

    fn add(&mut self, group: &Term, pids: &[Pid], local: bool) {
        if pids.is_empty() {
            return;
        }
        let m = self.groups.entry(group.clone()).or_default();
        m.all.splice(0..0, pids.iter().cloned());
        if local {
            m.local.splice(0..0, pids.iter().cloned());
        }
    }

    /// Removes one occurrence of each of `pids` (local members too if `local`).
    fn remove(&mut self, group: &Term, pids: &[Pid], local: bool) {
        let Some(m) = self.groups.get_mut(group) else {
            return;
        };
        subtract(&mut m.all, pids);
        if local {
            subtract(&mut m.local, pids);
        }
        if m.all.is_empty() && m.local.is_empty() {
            self.groups.remove(group);
        }
    }

    fn clear(&mut self) {
        self.groups.clear();
    }
}

struct Joined {
    monitor: Ref,
    /// The groups, in the order joined (a group twice if joined twice).
    groups: Vec<Term>,
}

struct Peer {
    /// The members the peer announced, per group, in the table's order.
    groups: HashMap<Term, Vec<Pid>>,
}

/// One scope's state.
pub struct State {
    me: Pid,
    table: Shared,
    local: HashMap<Pid, Joined>,
    local_refs: HashMap<Ref, Pid>,
    peers: HashMap<Pid, Peer>,
    peer_refs: HashMap<Ref, Pid>,
    lagging: HashSet<Pid>,
    scope_watchers: HashMap<Ref, Pid>,
    group_watchers: HashMap<Ref, (Pid, Term)>,
    watched_groups: HashMap<Term, Vec<(Pid, Ref)>>,
}

/// A notification to a watcher: `{Ref, join | leave, Group, Pids}`.
fn notice(r: &Ref, verb: &str, group: &Term, pids: &[Pid]) -> Term {
    tuple(vec![
        Term::Ref(r.clone()),
        atom(verb),
        group.clone(),
        wire::pid_list(pids),
    ])
}

impl State {
    /// A fresh state for the scope process `me`. The table starts empty: as with OTP's ETS
    /// table, members do not survive the scope process.
    pub fn new(me: Pid, table: Shared) -> State {
        write(&table).clear();
        State {
            me,
            table,
            local: HashMap::new(),
            local_refs: HashMap::new(),
            peers: HashMap::new(),
            peer_refs: HashMap::new(),
            lagging: HashSet::new(),
            scope_watchers: HashMap::new(),
            group_watchers: HashMap::new(),
            watched_groups: HashMap::new(),
        }
    }

    /// The scope process.
    pub fn me(&self) -> &Pid {
        &self.me
    }

    /// The peer scopes we know.
    pub fn peers(&self) -> impl Iterator<Item = &Pid> {
        self.peers.keys()
    }

    /// How many local processes are members.
    pub fn local_count(&self) -> usize {
        self.local.len()
    }

    /// Whether `reference` is one of our monitors, of a process `is` accepts.
    pub fn monitors(&self, reference: &Ref, is: impl Fn(&Pid) -> bool) -> bool {
        self.local_refs
            .get(reference)
            .or_else(|| self.peer_refs.get(reference))
            .or_else(|| self.scope_watchers.get(reference))
            .or_else(|| self.group_watchers.get(reference).map(|(p, _)| p))
            .is_some_and(is)
    }

    /// Whether a peer missed messages and waits for a resync.
    pub fn any_lagging(&self) -> bool {
        !self.lagging.is_empty()
    }

    /// Empties the table (the scope is stopping).
    pub fn clear(&mut self) {
        write(&self.table).clear();
    }

    // ---- local members ----

    /// `{join_local, Group, PidOrPids}`: the pids (local, checked by the caller) join.
    pub fn join_local(&mut self, fx: &mut impl Effects, group: &Term, pids: &PidOrPids) {
        let mut joined = Vec::with_capacity(pids.pids().len());
        for p in pids.pids() {
            if let Some(j) = self.local.get_mut(p) {
                j.groups.push(group.clone());
            } else {
                let Some(monitor) = fx.monitor(p) else {
                    continue;
                };
                self.local_refs.insert(monitor.clone(), p.clone());
                self.local.insert(
                    p.clone(),
                    Joined {
                        monitor,
                        groups: vec![group.clone()],
                    },
                );
            }
            joined.push(p.clone());
        }
        if joined.is_empty() {
            // Nothing to tell (OTP would tell its peers of an empty join, which changes nothing).
            return;
        }
        let said = if joined.len() == pids.pids().len() {
            pids.clone()
        } else {
            PidOrPids::Many(joined.clone())
        };
        write(&self.table).add(group, &joined, true);
        self.notify(fx, "join", group, &joined);
        self.broadcast(fx, wire::join(&self.me, group, &said));
    }

    /// `{leave_local, Group, PidOrPids}`: false if none of them was in the group (OTP's
    /// `not_joined`).
    pub fn leave_local(&mut self, fx: &mut impl Effects, group: &Term, pids: &PidOrPids) -> bool {
        let mut left = Vec::new();
        for p in pids.pids() {
            let Some(j) = self.local.get_mut(p) else {
                continue;
            };
            let Some(i) = j.groups.iter().position(|g| g == group) else {
                continue;
            };
            j.groups.remove(i);
            if j.groups.is_empty() {
                if let Some(j) = self.local.remove(p) {
                    self.local_refs.remove(&j.monitor);
                    fx.demonitor(&j.monitor);
                }
            }
            left.push(p.clone());
        }
        if left.is_empty() {
            return false;
        }
        write(&self.table).remove(group, &left, true);
        self.notify(fx, "leave", group, &left);
        self.broadcast(fx, wire::leave(&self.me, pids, std::slice::from_ref(group)));
        true
    }

    /// Every local membership, per group, as `sync` carries it.
    fn local_groups(&self) -> Vec<(Term, Vec<Pid>)> {
        let mut by_group: HashMap<Term, Vec<Pid>> = HashMap::new();
        for (p, j) in &self.local {
            for g in &j.groups {
                by_group.entry(g.clone()).or_default().push(p.clone());
            }
        }
        by_group.into_iter().collect()
    }

    // ---- peers ----

    fn check_remote(&self, peer: &Pid) -> Result<(), Refused> {
        if peer.node == self.me.node {
            return Err(Refused::OwnNode(Term::Pid(peer.clone()).to_string()));
        }
        Ok(())
    }

    /// Monitors and records `peer` if it is new; true if it was.
    fn know(&mut self, fx: &mut impl Effects, peer: &Pid) -> Result<bool, Refused> {
        self.check_remote(peer)?;
        if self.peers.contains_key(peer) {
            return Ok(false);
        }
        let monitor = fx
            .monitor(peer)
            .ok_or_else(|| Refused::CannotMonitor(Term::Pid(peer.clone()).to_string()))?;
        self.peer_refs.insert(monitor, peer.clone());
        self.peers.insert(
            peer.clone(),
            Peer {
                groups: HashMap::new(),
            },
        );
        Ok(true)
    }

    /// `{discover, Peer}`: send it our members; if it is new, watch it and discover it back.
    pub fn discover(&mut self, fx: &mut impl Effects, peer: &Pid) -> Result<(), Refused> {
        self.check_remote(peer)?;
        // A resync makes up for anything it missed, so it is not lagging any more.
        self.lagging.remove(peer);
        let sync = wire::sync(&self.me, self.local_groups());
        self.send_peer(fx, peer, sync);
        if self.know(fx, peer)? {
            self.send_peer(fx, peer, wire::discover(&self.me));
        }
        Ok(())
    }

    /// `{sync, Peer, Groups}`: the peer's members, replacing what it announced before.
    pub fn sync(
        &mut self,
        fx: &mut impl Effects,
        peer: &Pid,
        groups: Vec<(Term, Vec<Pid>)>,
    ) -> Result<(), Refused> {
        self.know(fx, peer)?;
        let Some(p) = self.peers.get_mut(peer) else {
            return Ok(());
        };
        let mut old = std::mem::take(&mut p.groups);
        let mut changes: Vec<(Term, Vec<Pid>, Vec<Pid>)> = Vec::new();
        {
            let mut table = write(&self.table);
            for (g, pids) in &groups {
                match old.remove(g) {
                    Some(before) if before == *pids => {}
                    Some(before) => {
                        table.remove(g, &before, false);
                        table.add(g, pids, false);
                        let mut gone = before.clone();
                        subtract(&mut gone, pids);
                        let mut came = pids.clone();
                        subtract(&mut came, &before);
                        changes.push((g.clone(), came, gone));
                    }
                    None => {
                        table.add(g, pids, false);
                        changes.push((g.clone(), pids.clone(), Vec::new()));
                    }
                }
            }
            for (g, before) in old {
                table.remove(&g, &before, false);
                changes.push((g, Vec::new(), before));
            }
        }
        if let Some(p) = self.peers.get_mut(peer) {
            p.groups = groups.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        }
        for (g, came, gone) in changes {
            if !gone.is_empty() {
                self.notify(fx, "leave", &g, &gone);
            }
            if !came.is_empty() {
                self.notify(fx, "join", &g, &came);
            }
        }
        Ok(())
    }

    /// `{join, Peer, Group, PidOrPids}`.
    pub fn remote_join(
        &mut self,
        fx: &mut impl Effects,
        peer: &Pid,
        group: &Term,
        pids: &PidOrPids,
    ) -> Result<(), Refused> {
        self.check_remote(peer)?;
        let p = self
            .peers
            .get_mut(peer)
            .ok_or_else(|| Refused::UnknownPeer(Term::Pid(peer.clone()).to_string()))?;
        let pids = pids.pids();
        if pids.is_empty() {
            return Ok(());
        }
        p.groups
            .entry(group.clone())
            .or_default()
            .splice(0..0, pids.iter().cloned());
        write(&self.table).add(group, pids, false);
        self.notify(fx, "join", group, pids);
        Ok(())
    }

    /// `{leave, Peer, PidOrPids, Groups}`: for each group named, one occurrence of each pid
    /// leaves. Only members the peer announced can leave; groups it never announced are
    /// skipped (OTP crashes on them).
    pub fn remote_leave(
        &mut self,
        fx: &mut impl Effects,
        peer: &Pid,
        pids: &PidOrPids,
        groups: &[Term],
    ) -> Result<(), Refused> {
        self.check_remote(peer)?;
        if !self.peers.contains_key(peer) {
            return Err(Refused::UnknownPeer(Term::Pid(peer.clone()).to_string()));
        }
        for g in groups {
            let Some(p) = self.peers.get_mut(peer) else {
                break;
            };
            let Some(members) = p.groups.get_mut(g) else {
                continue;
            };
            let removed = subtract(members, pids.pids());
            if members.is_empty() {
                p.groups.remove(g);
            }
            if !removed.is_empty() {
                write(&self.table).remove(g, &removed, false);
                self.notify(fx, "leave", g, &removed);
            }
        }
        Ok(())
    }

    /// A `DOWN` for `reference`: a local member ended (it leaves everything, and the peers are
    /// told), a peer scope ended or its node went down (its members go), or a watcher ended.
    /// False if the reference is none of ours.
    pub fn down(&mut self, fx: &mut impl Effects, reference: &Ref) -> bool {
        if let Some(pid) = self.local_refs.remove(reference) {
            let Some(j) = self.local.remove(&pid) else {
                return true;
            };
            {
                let mut table = write(&self.table);
                for g in &j.groups {
                    table.remove(g, std::slice::from_ref(&pid), true);
                }
            }
            for g in &j.groups {
                self.notify(fx, "leave", g, std::slice::from_ref(&pid));
            }
            self.broadcast(
                fx,
                wire::leave(&self.me, &PidOrPids::One(pid.clone()), &j.groups),
            );
            return true;
        }
        if let Some(peer) = self.peer_refs.remove(reference) {
            self.lagging.remove(&peer);
            if let Some(p) = self.peers.remove(&peer) {
                {
                    let mut table = write(&self.table);
                    for (g, pids) in &p.groups {
                        table.remove(g, pids, false);
                    }
                }
                for (g, pids) in &p.groups {
                    self.notify(fx, "leave", g, pids);
                }
            }
            return true;
        }
        if self.scope_watchers.remove(reference).is_some() {
            return true;
        }
        if let Some((pid, group)) = self.group_watchers.remove(reference) {
            self.unwatch_group(&pid, reference, &group);
            return true;
        }
        false
    }

    /// Sends a whole `sync` to every lagging peer that `busy` says has caught up.
    pub fn catch_up(&mut self, fx: &mut impl Effects, busy: impl Fn(&Pid) -> bool) {
        let ready: Vec<Pid> = self.lagging.iter().filter(|p| !busy(p)).cloned().collect();
        for peer in ready {
            self.lagging.remove(&peer);
            let sync = wire::sync(&self.me, self.local_groups());
            self.send_peer(fx, &peer, sync);
        }
    }

    fn send_peer(&mut self, fx: &mut impl Effects, peer: &Pid, msg: Term) {
        if self.lagging.contains(peer) {
            return;
        }
        if fx.send(peer, msg) == Sent::Busy {
            self.lagging.insert(peer.clone());
        }
    }

    fn broadcast(&mut self, fx: &mut impl Effects, msg: Term) {
        let peers: Vec<Pid> = self.peers.keys().cloned().collect();
        for p in peers {
            self.send_peer(fx, &p, msg.clone());
        }
    }

    // ---- watchers ----

    /// `monitor` (`pg:monitor_scope/1`): `watcher` hears of every change; the reply is
    /// `{Ref, #{Group => Members}}`.
    pub fn watch_scope(&mut self, fx: &mut impl Effects, watcher: &Pid) -> Option<Term> {
        let r = fx.monitor(watcher)?;
        self.scope_watchers.insert(r.clone(), watcher.clone());
        let groups = read(&self.table)
            .all()
            .map(|(g, m)| (g.clone(), wire::pid_list(&m.all)))
            .collect();
        Some(tuple(vec![Term::Ref(r), map_of(groups)]))
    }

    /// `{monitor, Group}` (`pg:monitor/2`): `watcher` hears of changes to `group`; the reply
    /// is `{Ref, Members}`.
    pub fn watch_group(
        &mut self,
        fx: &mut impl Effects,
        watcher: &Pid,
        group: &Term,
    ) -> Option<Term> {
        let r = fx.monitor(watcher)?;
        self.group_watchers
            .insert(r.clone(), (watcher.clone(), group.clone()));
        self.watched_groups
            .entry(group.clone())
            .or_default()
            .push((watcher.clone(), r.clone()));
        let members = read(&self.table).members(group);
        Some(tuple(vec![Term::Ref(r), wire::pid_list(&members)]))
    }

    /// `{demonitor, Ref}`: `ok`, or `false` if it was not a watch.
    pub fn unwatch(&mut self, fx: &mut impl Effects, reference: &Ref) -> Term {
        if self.scope_watchers.remove(reference).is_some() {
            fx.demonitor(reference);
            return atom("ok");
        }
        if let Some((pid, group)) = self.group_watchers.remove(reference) {
            fx.demonitor(reference);
            self.unwatch_group(&pid, reference, &group);
            return atom("ok");
        }
        atom("false")
    }

    fn unwatch_group(&mut self, pid: &Pid, reference: &Ref, group: &Term) {
        if let Some(v) = self.watched_groups.get_mut(group) {
            v.retain(|(p, r)| !(p == pid && r == reference));
            if v.is_empty() {
                self.watched_groups.remove(group);
            }
        }
    }

    fn notify(&self, fx: &mut impl Effects, verb: &str, group: &Term, pids: &[Pid]) {
        if pids.is_empty() {
            return;
        }
        for (r, p) in &self.scope_watchers {
            fx.send(p, notice(r, verb, group, pids));
        }
        for (p, r) in self.watched_groups.get(group).into_iter().flatten() {
            fx.send(p, notice(r, verb, group, pids));
        }
    }

    /// A summary for `sys:get_state`.
    pub fn summary(&self) -> Term {
        let table = read(&self.table);
        crate::dist::term::map(vec![
            ("groups", Term::from(table.groups.len() as u64)),
            ("local_members", Term::from(self.local_count() as u64)),
            (
                "peers",
                list(self.peers().cloned().map(Term::Pid).collect()),
            ),
            (
                "lagging",
                list(self.lagging.iter().cloned().map(Term::Pid).collect()),
            ),
        ])
    }
}
