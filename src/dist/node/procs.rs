//! The table of local processes: mailboxes, registered names, monitors and links, each indexed
//! so that every operation costs what it touches, not the size of the table (demonitor is a
//! lookup, a nodedown visits only that node's monitors and links). The indexes are B-trees:
//! a hash table that doubles rehashes everything while the table's lock is held, which a
//! flood of 200,000 monitors turned into pauses of a few hundred milliseconds for every
//! message on the node.
//!
//! It is pure: methods change the table and return [`Effect`]s (messages to deliver, control
//! messages to send, processes to end) for the router to carry out. Exit chains (a process
//! dies, its links die, theirs die…) are walked with a work list, never recursion.
//!
//! Semantics follow OTP's (verified against OTP 25, see the node tests):
//! - an exit signal through a link is dropped if the link no longer exists; a trapping
//!   process receives `{'EXIT', From, Reason}`; otherwise `normal` is ignored and any other
//!   reason ends the process with that reason;
//! - `exit(Pid, kill)` ends the process with `killed`, trapping or not;
//! - a monitor on a process that does not exist fires at once with `noproc`;
//! - losing a node gives every monitor and link across it `noconnection`.

use std::collections::{BTreeMap, BTreeSet};

use super::super::proto::term::{atom, tuple, Atom, Pid, Ref, Term};
use super::super::proto::{Control, ProcRef};
use super::mailbox::Queue;
use std::sync::Arc;

/// Something the router must do after a table change.
#[derive(Debug)]
pub enum Effect {
    /// Put a message in a local process's mailbox.
    Deliver {
        /// The process.
        to: u32,
        /// The message.
        msg: Term,
    },
    /// Send a control message to a node.
    Remote {
        /// The node.
        node: Atom,
        /// The message.
        control: Control,
    },
    /// A process ended: wake its mailbox so its owner sees the end.
    Ended {
        /// The process's mailbox.
        queue: Arc<Queue>,
    },
}

/// How an exit signal was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// Through a link (the sender exited).
    Link,
    /// `exit(Pid, Reason)`.
    Exit2,
}

struct Monitored {
    target: u32,
    watcher: Pid,
    named: ProcRef,
}

struct Watch {
    watcher: u32,
    target: ProcRef,
    node: Atom,
}

/// One local process.
pub struct Entry {
    /// Its mailbox.
    pub queue: Arc<Queue>,
    /// Its registered names.
    pub names: Vec<Atom>,
    links: BTreeSet<Pid>,
    monitored_by: BTreeSet<Ref>,
    watching: BTreeSet<Ref>,
    /// Whether exit signals become messages.
    pub trap_exit: bool,
    /// Receives node events.
    pub node_events: bool,
}

/// The process table of one node.
pub struct ProcTable {
    node: Atom,
    creation: u32,
    /// Every creation this node has had in this run (pids of earlier ones still route; pids
    /// of a previous run of the same node name are dead).
    creations: Vec<u32>,
    next_id: u32,
    procs: BTreeMap<u32, Entry>,
    names: BTreeMap<Atom, u32>,
    monitored: BTreeMap<Ref, Monitored>,
    watchers_by_node: BTreeMap<Atom, BTreeSet<Ref>>,
    watches: BTreeMap<Ref, Watch>,
    watches_by_node: BTreeMap<Atom, BTreeSet<Ref>>,
    links_by_node: BTreeMap<Atom, BTreeSet<(u32, Pid)>>,
}

fn down(reference: &Ref, what: Term, reason: Term) -> Term {
    tuple(vec![
        atom("DOWN"),
        Term::Ref(reference.clone()),
        atom("process"),
        what,
        reason,
    ])
}

fn exit_msg(from: &Pid, reason: Term) -> Term {
    tuple(vec![atom("EXIT"), Term::Pid(from.clone()), reason])
}

impl ProcTable {
    /// An empty table for processes of `node`; ids start at `first_id`.
    pub fn new(node: &str, creation: u32, first_id: u32) -> ProcTable {
        ProcTable {
            node: Atom::from(node),
            creation,
            creations: vec![creation],
            next_id: first_id,
            procs: BTreeMap::new(),
            names: BTreeMap::new(),
            monitored: BTreeMap::new(),
            watchers_by_node: BTreeMap::new(),
            watches: BTreeMap::new(),
            watches_by_node: BTreeMap::new(),
            links_by_node: BTreeMap::new(),
        }
    }

    /// The node's creation, as pids minted now carry it.
    pub fn set_creation(&mut self, creation: u32) {
        self.creation = creation;
        if !self.creations.contains(&creation) {
            self.creations.push(creation);
        }
    }

    /// The pid of local process `id`.
    pub fn pid(&self, id: u32) -> Pid {
        Pid {
            node: self.node.clone(),
            id,
            serial: 0,
            creation: self.creation,
        }
    }

    /// Whether `pid` is one of ours: our node name and a creation of this run (pids of our
    /// earlier creations still route; a previous run's pids, same name, are dead processes).
    pub fn is_local(&self, pid: &Pid) -> bool {
        pid.node == self.node && self.creations.contains(&pid.creation)
    }

    /// Adds a process; returns its id.
    pub fn spawn(&mut self, queue: Arc<Queue>) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.procs.insert(
            id,
            Entry {
                queue,
                names: Vec::new(),
                links: BTreeSet::new(),
                monitored_by: BTreeSet::new(),
                watching: BTreeSet::new(),
                trap_exit: false,
                node_events: false,
            },
        );
        id
    }

    /// A process by id.
    pub fn get(&self, id: u32) -> Option<&Entry> {
        self.procs.get(&id)
    }

    /// A process by id, to change flags.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Entry> {
        self.procs.get_mut(&id)
    }

    /// The process registered as `name`.
    pub fn whereis(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// Resolves a monitor or message target to a live local process.
    pub fn resolve(&self, target: &ProcRef) -> Option<u32> {
        match target {
            ProcRef::Name(n) => self.names.get(n).copied(),
            ProcRef::Pid(p) if self.is_local(p) && self.procs.contains_key(&p.id) => Some(p.id),
            ProcRef::Pid(_) => None,
        }
    }

    /// Registers `name` for `id`; false if the name is taken or the process is gone.
    pub fn register(&mut self, id: u32, name: &str) -> bool {
        let name = Atom::from(name);
        if self.names.contains_key(&name) {
            return false;
        }
        let Some(e) = self.procs.get_mut(&id) else {
            return false;
        };
        e.names.push(name.clone());
        self.names.insert(name, id);
        true
    }

    /// Removes a registered name; true if it was there.
    pub fn unregister(&mut self, name: &str) -> bool {
        let name = Atom::from(name);
        let Some(id) = self.names.remove(&name) else {
            return false;
        };
        if let Some(e) = self.procs.get_mut(&id) {
            e.names.retain(|n| *n != name);
        }
        true
    }

    /// Registered names, sorted.
    pub fn registered(&self) -> Vec<(Atom, u32)> {
        let mut v: Vec<(Atom, u32)> = self.names.iter().map(|(n, i)| (n.clone(), *i)).collect();
        v.sort();
        v
    }

    /// Process ids that receive node events.
    pub fn node_event_subscribers(&self) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|(_, e)| e.node_events)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every process id with its entry.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.procs.iter().map(|(id, e)| (*id, e))
    }

    // ---- monitors ----

    /// `watcher` (local or remote) monitors local `target` with `reference`. Returns the
    /// effects: a `noproc` DOWN at once when the target does not exist.
    pub fn monitor_local(&mut self, watcher: Pid, target: ProcRef, reference: Ref) -> Vec<Effect> {
        let Some(id) = self.resolve(&target) else {
            return self.noproc(watcher, target, reference);
        };
        if let Some(e) = self.procs.get_mut(&id) {
            e.monitored_by.insert(reference.clone());
        }
        if self.is_local(&watcher) {
            if let Some(w) = self.procs.get_mut(&watcher.id) {
                w.watching.insert(reference.clone());
            }
        } else {
            self.watchers_by_node
                .entry(watcher.node.clone())
                .or_default()
                .insert(reference.clone());
        }
        self.monitored.insert(
            reference,
            Monitored {
                target: id,
                watcher,
                named: target,
            },
        );
        Vec::new()
    }

    fn noproc(&self, watcher: Pid, target: ProcRef, reference: Ref) -> Vec<Effect> {
        if self.is_local(&watcher) {
            let what = match &target {
                ProcRef::Pid(p) => Term::Pid(p.clone()),
                ProcRef::Name(n) => {
                    tuple(vec![Term::Atom(n.clone()), Term::Atom(self.node.clone())])
                }
            };
            vec![Effect::Deliver {
                to: watcher.id,
                msg: down(&reference, what, atom("noproc")),
            }]
        } else {
            vec![Effect::Remote {
                node: watcher.node.clone(),
                control: Control::MonitorExit {
                    from: target,
                    to: watcher,
                    reference,
                    reason: atom("noproc"),
                },
            }]
        }
    }

    /// Removes a monitor on a local process (DEMONITOR_P, or `demonitor` by a local watcher).
    pub fn demonitor_local(&mut self, reference: &Ref) {
        let Some(m) = self.monitored.remove(reference) else {
            return;
        };
        if let Some(e) = self.procs.get_mut(&m.target) {
            e.monitored_by.remove(reference);
        }
        if self.is_local(&m.watcher) {
            if let Some(w) = self.procs.get_mut(&m.watcher.id) {
                w.watching.remove(reference);
            }
        } else if let Some(set) = self.watchers_by_node.get_mut(&m.watcher.node) {
            set.remove(reference);
        }
    }

    /// Local `watcher` monitors `target` on `node`; the router sends MONITOR_P.
    pub fn watch_remote(&mut self, watcher: u32, node: Atom, target: ProcRef, reference: Ref) {
        if let Some(w) = self.procs.get_mut(&watcher) {
            w.watching.insert(reference.clone());
        }
        self.watches_by_node
            .entry(node.clone())
            .or_default()
            .insert(reference.clone());
        self.watches.insert(
            reference,
            Watch {
                watcher,
                target,
                node,
            },
        );
    }

    /// Local `watcher` stops monitoring (local or remote). Returns the DEMONITOR_P to send
    /// when the target was remote.
    pub fn demonitor(&mut self, watcher: u32, reference: &Ref) -> Option<Effect> {
        if let Some(w) = self.watches.remove(reference) {
            if let Some(set) = self.watches_by_node.get_mut(&w.node) {
                set.remove(reference);
            }
            if let Some(e) = self.procs.get_mut(&w.watcher) {
                e.watching.remove(reference);
            }
            return Some(Effect::Remote {
                node: w.node,
                control: Control::Demonitor {
                    from: self.pid(watcher),
                    to: w.target,
                    reference: reference.clone(),
                },
            });
        }
        self.demonitor_local(reference);
        None
    }

    /// A remote process our `to` monitored went away (MONITOR_P_EXIT).
    pub fn remote_down(
        &mut self,
        reference: &Ref,
        from: ProcRef,
        reason: Term,
        peer: &Atom,
    ) -> Vec<Effect> {
        let Some(w) = self.watches.remove(reference) else {
            return Vec::new();
        };
        if let Some(set) = self.watches_by_node.get_mut(&w.node) {
            set.remove(reference);
        }
        if let Some(e) = self.procs.get_mut(&w.watcher) {
            e.watching.remove(reference);
        }
        let what = match from {
            ProcRef::Pid(p) => Term::Pid(p),
            ProcRef::Name(n) => tuple(vec![Term::Atom(n), Term::Atom(peer.clone())]),
        };
        vec![Effect::Deliver {
            to: w.watcher,
            msg: down(reference, what, reason),
        }]
    }

    // ---- links ----

    /// Links local `id` with `other`. Returns false if `id` is gone.
    pub fn link(&mut self, id: u32, other: &Pid) -> bool {
        let local_other = self.is_local(other);
        let Some(e) = self.procs.get_mut(&id) else {
            return false;
        };
        e.links.insert(other.clone());
        if local_other {
            let me = self.pid(id);
            if let Some(o) = self.procs.get_mut(&other.id) {
                o.links.insert(me);
            }
        } else {
            self.links_by_node
                .entry(other.node.clone())
                .or_default()
                .insert((id, other.clone()));
        }
        true
    }

    /// A remote `from` links to local `to` (LINK). Returns the `noproc` EXIT to send back when
    /// `to` does not exist.
    pub fn remote_link(&mut self, from: &Pid, to: &Pid) -> Vec<Effect> {
        if self.is_local(to) && self.link(to.id, from) {
            return Vec::new();
        }
        vec![Effect::Remote {
            node: from.node.clone(),
            control: Control::Exit {
                from: to.clone(),
                to: from.clone(),
                reason: atom("noproc"),
            },
        }]
    }

    /// Removes the link between local `id` and `other`; true if it existed.
    pub fn unlink(&mut self, id: u32, other: &Pid) -> bool {
        let Some(e) = self.procs.get_mut(&id) else {
            return false;
        };
        let before = e.links.len();
        e.links
            .retain(|p| !(p.node == other.node && p.id == other.id));
        let had = e.links.len() != before;
        if self.is_local(other) {
            let node = self.node.clone();
            if let Some(o) = self.procs.get_mut(&other.id) {
                o.links.retain(|p| !(p.node == node && p.id == id));
            }
        } else if let Some(set) = self.links_by_node.get_mut(&other.node) {
            set.retain(|(i, p)| !(*i == id && p.id == other.id));
        }
        had
    }

    /// Whether local `id` is linked to `other`.
    #[cfg(test)]
    pub fn is_linked(&self, id: u32, other: &Pid) -> bool {
        self.procs.get(&id).is_some_and(|e| {
            e.links
                .iter()
                .any(|p| p.node == other.node && p.id == other.id)
        })
    }

    // ---- exits ----

    /// An exit signal from `from` reaches local `to`. Returns the effects, including the end
    /// of `to` (and whatever that sets off) when the signal kills it.
    pub fn exit_signal(
        &mut self,
        to: u32,
        from: &Pid,
        reason: Term,
        kind: SignalKind,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut work = vec![(to, from.clone(), reason, kind)];
        while let Some((to, from, reason, kind)) = work.pop() {
            let Some(e) = self.procs.get(&to) else {
                continue;
            };
            if kind == SignalKind::Link {
                let linked = e
                    .links
                    .iter()
                    .any(|p| p.node == from.node && p.id == from.id);
                if !linked {
                    continue;
                }
                self.unlink(to, &from);
            }
            let Some(e) = self.procs.get(&to) else {
                continue;
            };
            let kill = kind == SignalKind::Exit2 && reason.is_atom("kill");
            let death = if kill {
                Some(atom("killed"))
            } else if e.trap_exit {
                out.push(Effect::Deliver {
                    to,
                    msg: exit_msg(&from, reason),
                });
                None
            } else if reason.is_atom("normal") {
                None
            } else {
                Some(reason)
            };
            if let Some(reason) = death {
                self.end(to, reason, &mut out, &mut work);
            }
        }
        out
    }

    /// Local process `id` ends with `reason`: its names go, its links get exit signals and its
    /// monitors fire.
    pub fn exit(&mut self, id: u32, reason: Term) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut work = Vec::new();
        self.end(id, reason, &mut out, &mut work);
        while let Some((to, from, reason, kind)) = work.pop() {
            out.extend(self.exit_signal(to, &from, reason, kind));
        }
        out
    }

    fn end(
        &mut self,
        id: u32,
        reason: Term,
        out: &mut Vec<Effect>,
        work: &mut Vec<(u32, Pid, Term, SignalKind)>,
    ) {
        let me = self.pid(id);
        let Some(e) = self.procs.remove(&id) else {
            return;
        };
        for name in &e.names {
            self.names.remove(name);
        }
        for other in &e.links {
            if self.is_local(other) {
                // The other side keeps its half of the link until the signal lands.
                work.push((other.id, me.clone(), reason.clone(), SignalKind::Link));
            } else {
                if let Some(set) = self.links_by_node.get_mut(&other.node) {
                    set.remove(&(id, other.clone()));
                }
                out.push(Effect::Remote {
                    node: other.node.clone(),
                    control: Control::Exit {
                        from: me.clone(),
                        to: other.clone(),
                        reason: reason.clone(),
                    },
                });
            }
        }
        for r in &e.monitored_by {
            let Some(m) = self.monitored.remove(r) else {
                continue;
            };
            if self.is_local(&m.watcher) {
                if let Some(w) = self.procs.get_mut(&m.watcher.id) {
                    w.watching.remove(r);
                }
                let what = match &m.named {
                    ProcRef::Pid(_) => Term::Pid(me.clone()),
                    ProcRef::Name(n) => {
                        tuple(vec![Term::Atom(n.clone()), Term::Atom(self.node.clone())])
                    }
                };
                out.push(Effect::Deliver {
                    to: m.watcher.id,
                    msg: down(r, what, reason.clone()),
                });
            } else {
                if let Some(set) = self.watchers_by_node.get_mut(&m.watcher.node) {
                    set.remove(r);
                }
                let from = match m.named {
                    ProcRef::Name(n) => ProcRef::Name(n),
                    ProcRef::Pid(_) => ProcRef::Pid(me.clone()),
                };
                out.push(Effect::Remote {
                    node: m.watcher.node.clone(),
                    control: Control::MonitorExit {
                        from,
                        to: m.watcher,
                        reference: r.clone(),
                        reason: reason.clone(),
                    },
                });
            }
        }
        for r in &e.watching {
            if let Some(w) = self.watches.remove(r) {
                if let Some(set) = self.watches_by_node.get_mut(&w.node) {
                    set.remove(r);
                }
                out.push(Effect::Remote {
                    node: w.node,
                    control: Control::Demonitor {
                        from: me.clone(),
                        to: w.target,
                        reference: r.clone(),
                    },
                });
            } else if let Some(m) = self.monitored.remove(r) {
                if let Some(t) = self.procs.get_mut(&m.target) {
                    t.monitored_by.remove(r);
                }
            }
        }
        out.push(Effect::Ended { queue: e.queue });
    }

    /// The connection to `node` is gone: every monitor and link across it ends with
    /// `noconnection`.
    pub fn node_down(&mut self, node: &Atom) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(refs) = self.watchers_by_node.remove(node) {
            for r in refs {
                if let Some(m) = self.monitored.remove(&r) {
                    if let Some(e) = self.procs.get_mut(&m.target) {
                        e.monitored_by.remove(&r);
                    }
                }
            }
        }
        if let Some(refs) = self.watches_by_node.remove(node) {
            for r in refs {
                let Some(w) = self.watches.remove(&r) else {
                    continue;
                };
                if let Some(e) = self.procs.get_mut(&w.watcher) {
                    e.watching.remove(&r);
                }
                let what = match w.target {
                    ProcRef::Pid(p) => Term::Pid(p),
                    ProcRef::Name(n) => tuple(vec![Term::Atom(n), Term::Atom(node.clone())]),
                };
                out.push(Effect::Deliver {
                    to: w.watcher,
                    msg: down(&r, what, atom("noconnection")),
                });
            }
        }
        if let Some(links) = self.links_by_node.remove(node) {
            let mut sorted: Vec<(u32, Pid)> = links.into_iter().collect();
            sorted.sort_by_key(|(id, p)| (*id, p.id));
            for (id, remote) in sorted {
                out.extend(self.exit_signal(id, &remote, atom("noconnection"), SignalKind::Link));
            }
        }
        out
    }

    /// Monitors on local processes.
    #[cfg(test)]
    pub fn monitor_count(&self) -> usize {
        self.monitored.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ProcTable {
        ProcTable::new("me@h", 7, 10)
    }

    fn spawn(t: &mut ProcTable) -> u32 {
        t.spawn(Arc::new(Queue::new()))
    }

    fn rpid(id: u32) -> Pid {
        Pid::new("them@h", id, 0, 1)
    }

    fn r(n: u32) -> Ref {
        Ref::new("them@h", 1, &[n])
    }

    fn delivered(effects: &[Effect]) -> Vec<(u32, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Deliver { to, msg } => Some((*to, msg.to_string())),
                _ => None,
            })
            .collect()
    }

    fn remote(effects: &[Effect]) -> Vec<Control> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Remote { control, .. } => Some(control.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn names_register_once_and_go_with_the_process() {
        let mut t = table();
        let a = spawn(&mut t);
        assert!(t.register(a, "beacon"));
        assert!(!t.register(a, "beacon"));
        assert!(t.register(a, "Elixir.BeaconServer.Beacon"));
        assert_eq!(t.whereis("beacon"), Some(a));
        t.exit(a, atom("normal"));
        assert_eq!(t.whereis("beacon"), None);
        assert!(t.registered().is_empty());
    }

    #[test]
    fn remote_monitors_fire_on_exit_and_demonitor_is_indexed() {
        let mut t = table();
        let a = spawn(&mut t);
        for i in 0..200_000 {
            t.monitor_local(rpid(1), ProcRef::Pid(t.pid(a)), r(i));
        }
        for i in 0..3000 {
            t.demonitor_local(&r(i));
        }
        assert_eq!(t.monitor_count(), 197_000);
        let fx = t.exit(a, atom("boom"));
        let exits = remote(&fx);
        assert_eq!(exits.len(), 197_000);
        assert!(matches!(&exits[0], Control::MonitorExit { reason, .. } if reason.is_atom("boom")));
        assert_eq!(t.monitor_count(), 0);
    }

    #[test]
    fn monitoring_a_missing_process_is_noproc_at_once() {
        let mut t = table();
        let w = spawn(&mut t);
        let fx = t.monitor_local(t.pid(w), ProcRef::Name("nosuch".into()), r(1));
        assert_eq!(
            delivered(&fx),
            [(
                w,
                "{'DOWN',#Ref<them@h.1>,process,{nosuch,me@h},noproc}".to_owned()
            )]
        );
        let fx = t.monitor_local(rpid(5), ProcRef::Pid(t.pid(999)), r(2));
        assert!(
            matches!(&remote(&fx)[0], Control::MonitorExit { reason, .. } if reason.is_atom("noproc"))
        );
    }

    #[test]
    fn local_monitors_deliver_down_with_the_name_used() {
        let mut t = table();
        let (w, target) = (spawn(&mut t), spawn(&mut t));
        t.register(target, "svc");
        t.monitor_local(t.pid(w), ProcRef::Name("svc".into()), r(1));
        let fx = t.exit(target, atom("shutdown"));
        assert_eq!(
            delivered(&fx),
            [(
                w,
                "{'DOWN',#Ref<them@h.1>,process,{svc,me@h},shutdown}".to_owned()
            )]
        );
    }

    #[test]
    fn links_propagate_exits_with_trapping_and_kill() {
        let mut t = table();
        let (a, b, c) = (spawn(&mut t), spawn(&mut t), spawn(&mut t));
        t.link(a, &t.pid(b));
        t.link(b, &t.pid(c));
        t.get_mut(c).unwrap().trap_exit = true;
        // a dies abnormally: b dies with the same reason, c traps it.
        let fx = t.exit(a, atom("boom"));
        assert!(t.get(a).is_none() && t.get(b).is_none());
        assert_eq!(
            delivered(&fx),
            [(c, format!("{{'EXIT',#Pid<me@h.{b}.0>,boom}}"))]
        );
        // normal through a link is ignored by a non-trapping process.
        let (d, e) = (spawn(&mut t), spawn(&mut t));
        t.link(d, &t.pid(e));
        t.exit(d, atom("normal"));
        assert!(t.get(e).is_some());
        // kill via exit/2 kills even a trapping process, with reason killed.
        t.link(c, &rpid(3));
        let fx = t.exit_signal(c, &rpid(9), atom("kill"), SignalKind::Exit2);
        assert!(t.get(c).is_none());
        assert!(
            matches!(&remote(&fx)[0], Control::Exit { reason, .. } if reason.is_atom("killed"))
        );
    }

    #[test]
    fn link_exits_need_a_link_and_exit2_does_not() {
        let mut t = table();
        let a = spawn(&mut t);
        // Not linked: a link-exit is dropped.
        assert!(t
            .exit_signal(a, &rpid(1), atom("boom"), SignalKind::Link)
            .is_empty());
        assert!(t.get(a).is_some());
        // exit/2 with an abnormal reason kills.
        t.exit_signal(a, &rpid(1), atom("boom"), SignalKind::Exit2);
        assert!(t.get(a).is_none());
    }

    #[test]
    fn remote_link_to_a_missing_process_answers_noproc() {
        let mut t = table();
        let fx = t.remote_link(&rpid(1), &t.pid(77));
        assert!(
            matches!(&remote(&fx)[0], Control::Exit { reason, to, .. } if reason.is_atom("noproc") && *to == rpid(1))
        );
        let a = spawn(&mut t);
        assert!(t.remote_link(&rpid(1), &t.pid(a)).is_empty());
        assert!(t.is_linked(a, &rpid(1)));
    }

    #[test]
    fn node_down_is_noconnection_for_monitors_and_links_across_it() {
        let mut t = table();
        let (a, b) = (spawn(&mut t), spawn(&mut t));
        t.watch_remote(a, "them@h".into(), ProcRef::Name("svc".into()), r(1));
        t.link(b, &rpid(4));
        t.get_mut(b).unwrap().trap_exit = true;
        t.monitor_local(rpid(8), ProcRef::Pid(t.pid(a)), r(2));
        let fx = t.node_down(&"them@h".into());
        let d = delivered(&fx);
        assert!(d.contains(&(
            a,
            "{'DOWN',#Ref<them@h.1>,process,{svc,them@h},noconnection}".to_owned()
        )));
        assert!(d.contains(&(b, "{'EXIT',#Pid<them@h.4.0>,noconnection}".to_owned())));
        assert_eq!(t.monitor_count(), 0);
        assert!(!t.is_linked(b, &rpid(4)));
        // A later exit sends nothing to the lost node.
        assert!(remote(&t.exit(a, atom("x"))).is_empty());
    }

    #[test]
    fn a_dying_watcher_demonitors_remote_targets() {
        let mut t = table();
        let a = spawn(&mut t);
        t.watch_remote(a, "them@h".into(), ProcRef::Pid(rpid(2)), r(1));
        let fx = t.exit(a, atom("normal"));
        assert!(matches!(&remote(&fx)[0], Control::Demonitor { .. }));
        let fx = t.remote_down(&r(1), ProcRef::Pid(rpid(2)), atom("x"), &"them@h".into());
        assert!(fx.is_empty());
    }
}
