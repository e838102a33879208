//! `cluster_server`, the process every node runs: it owns this node's registrations, keeps
//! the replicated table, serialises creates of the keys it is home to, and re-creates the
//! processes of a dead node that ask for it. The table itself lives in [`Shared`], written
//! only here and read by the library without a message. Creates and placement are in
//! `create.rs`, failover in `failover.rs`.
//!
//! Nothing here waits on a peer: every message to another server is sent without
//! connecting, every create that another node must finish has a deadline, and a peer that
//! stops answering is dropped by its monitor (its node's tick decides).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use tracing::{debug, info};

use crate::dist::node::{Dest, From};
use crate::dist::process::{unknown_call, Call, Ctx, Flow, Process};
use crate::dist::term::{atom, int, list, map, map_of, tuple, Atom, Pid, Ref, Term};
use crate::dist::{NodeEvent, NodeName};

use super::state::{home, Added, Entry, Key, Selector, Table};
use super::wire::{Info, Peer, Request};
use super::Factory;

mod create;
mod failover;

use failover::{Batch, Orphan};

/// The registered name.
pub const NAME: &str = "cluster_server";
/// How long the home of a key waits for the chosen node to create it.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a server tells the others its hosted types and load, when they changed.
const INFO_EVERY: Duration = Duration::from_secs(1);
/// How many times a create is tried again when the chosen node answers with the entry of a
/// node this one knows is down (its view lags ours; it soon catches up).
const MAX_ATTEMPTS: u8 = 30;
/// How many times a create may be passed on to another home (views of membership can differ
/// for a moment; past this the server that has it decides).
const MAX_HOPS: u8 = 2;
/// The most creates a server keeps waiting (its own and those it passed on); past this a
/// create is refused with `{error, overloaded}` rather than queued without bound.
pub const MAX_WAITING: usize = 100_000;

/// What the library reads without a message: the table, the Rust factories, the role's load.
#[derive(Default)]
pub struct Shared {
    /// The replicated table.
    pub table: RwLock<Table>,
    /// Rust factories on this node, by type.
    pub factories: RwLock<HashMap<Atom, Arc<dyn Factory>>>,
    /// The role's own load figure (a gate's sessions…), reported with the process count.
    pub load: AtomicU64,
    /// Counters for `status`.
    pub stats: RwLock<Stats>,
    /// Live `echo` processes on this node (counted by the processes themselves, so that a
    /// test can compare the table with what really runs).
    pub echo_live: Arc<AtomicU64>,
}

/// Counters a server keeps.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Processes this node created through a factory.
    pub created: u64,
    /// Conflicts in which this node's entry lost.
    pub conflicts_lost: u64,
    /// Failover batches finished: the dead node, processes re-created, failures, time taken.
    pub failovers: Vec<(Atom, u64, u64, Duration)>,
}

/// What the role decides about the registry on this node.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The types the role is for (its `hosts`). Only `echo` has a built-in factory; other
    /// types are offered once a factory is registered ([`super::Registry::host`], or
    /// `register_factory` from BEAM).
    pub hosts: Vec<Atom>,
    /// Types whose processes are created again elsewhere when their node dies.
    pub restart: HashSet<Atom>,
    /// The node holding the shared config (the beacon); this node then keeps a local copy.
    pub config_holder: Option<crate::dist::NodeName>,
}

struct PeerServer {
    pid: Pid,
    monitor: Ref,
    info: Info,
}

/// Who is waiting for a create this node is home to.
struct Pending {
    tag: Ref,
    deadline: Instant,
    target: Atom,
    waiters: Vec<From>,
    failover: Option<Atom>,
    selector: Selector,
    attempts: u8,
}

/// A create to try again on the next tick.
struct Retry {
    key: Key,
    selector: Selector,
    waiters: Vec<From>,
    failover: Option<Atom>,
    attempts: u8,
}

/// A create passed on to its home: who asked.
struct Relay {
    from: From,
    deadline: Instant,
}

/// The process.
pub struct Server {
    shared: Arc<Shared>,
    opts: Options,
    me: Atom,
    peers: HashMap<Atom, PeerServer>,
    peer_refs: HashMap<Ref, Atom>,
    watched: HashMap<Pid, Ref>,
    watch_refs: HashMap<Ref, Pid>,
    pending: HashMap<Key, Pending>,
    pending_tags: HashMap<Ref, Key>,
    relays: HashMap<Ref, Relay>,
    in_flight: HashMap<Atom, u64>,
    beam_factories: HashMap<Atom, Vec<(Pid, Ref)>>,
    factory_refs: HashMap<Ref, (Atom, Pid)>,
    batches: HashMap<Atom, Batch>,
    orphans: HashMap<Key, Orphan>,
    retries: Vec<Retry>,
    last_info: Option<Info>,
}

impl Server {
    /// A server over `shared`, which outlives it: a restarted server finds its table and
    /// re-monitors what it owns.
    pub fn new(shared: Arc<Shared>, opts: Options) -> Server {
        Server {
            shared,
            opts,
            me: Atom::from(""),
            peers: HashMap::new(),
            peer_refs: HashMap::new(),
            watched: HashMap::new(),
            watch_refs: HashMap::new(),
            pending: HashMap::new(),
            pending_tags: HashMap::new(),
            relays: HashMap::new(),
            in_flight: HashMap::new(),
            beam_factories: HashMap::new(),
            factory_refs: HashMap::new(),
            batches: HashMap::new(),
            orphans: HashMap::new(),
            retries: Vec::new(),
            last_info: None,
        }
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.shared.table.read().expect("registry table")
    }

    fn table_mut(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.shared.table.write().expect("registry table")
    }

    /// What this server tells the others. A type is advertised once a factory makes it here:
    /// a node never offers what it cannot create.
    fn info(&self) -> Info {
        let mut hosts: Vec<Atom> = self
            .shared
            .factories
            .read()
            .expect("factories")
            .keys()
            .cloned()
            .collect();
        hosts.sort();
        let mut factories: Vec<(Atom, Pid)> = self
            .beam_factories
            .iter()
            .flat_map(|(t, v)| v.iter().map(move |(p, _)| (t.clone(), p.clone())))
            .collect();
        factories.sort();
        Info {
            hosts,
            load: self.shared.load.load(Ordering::Relaxed),
            factories,
        }
    }

    fn to_server(ctx: &Ctx<'_>, node: &Atom, msg: Term) {
        if let Ok(n) = NodeName::parse(node.as_str()) {
            let _ = ctx.send_noconnect(&Dest::name(NAME, &n), msg);
        }
    }

    fn broadcast(&self, ctx: &Ctx<'_>, msg: &Peer) {
        if self.peers.is_empty() {
            return;
        }
        let t = msg.encode();
        for p in self.peers.values() {
            let _ = ctx.send_noconnect(&Dest::Pid(p.pid.clone()), t.clone());
        }
    }

    fn discover(&self, ctx: &Ctx<'_>, node: &Atom) {
        Self::to_server(ctx, node, Peer::Discover(ctx.pid(), self.info()).encode());
    }

    /// Learns of (or refreshes) the server on `node`; true when it is new.
    fn know(&mut self, ctx: &Ctx<'_>, pid: &Pid, info: Info) -> bool {
        let node = pid.node.clone();
        if node == self.me {
            return false;
        }
        if let Some(p) = self.peers.get_mut(&node) {
            if &p.pid == pid {
                p.info = info;
                return false;
            }
            // A restarted server: forget the old one's monitor and entries.
            let old = p.monitor.clone();
            ctx.demonitor(&old);
            self.peer_refs.remove(&old);
            self.peers.remove(&node);
            self.peer_gone(ctx, &node);
        }
        let Ok(monitor) = ctx.monitor(&Dest::Pid(pid.clone())) else {
            return false;
        };
        self.peer_refs.insert(monitor.clone(), node.clone());
        self.peers.insert(
            node,
            PeerServer {
                pid: pid.clone(),
                monitor,
                info,
            },
        );
        true
    }

    fn sync_to(&self, ctx: &Ctx<'_>, to: &Pid) {
        let mine = self.table().owned_by(self.me.as_str());
        let msg = Peer::Sync(ctx.pid(), self.info(), mine).encode();
        let _ = ctx.send_noconnect(&Dest::Pid(to.clone()), msg);
    }

    fn watch(&mut self, ctx: &Ctx<'_>, pid: &Pid) {
        if self.watched.contains_key(pid) {
            return;
        }
        match ctx.monitor(&Dest::Pid(pid.clone())) {
            Ok(r) => {
                self.watch_refs.insert(r.clone(), pid.clone());
                self.watched.insert(pid.clone(), r);
            }
            Err(e) => debug!("cannot monitor {pid:?}: {e}"),
        }
    }

    fn unwatch_if_unused(&mut self, ctx: &Ctx<'_>, pid: &Pid) {
        let still = self.table().keys_of(pid).iter().any(|k| self.owns(k, pid));
        if !still {
            if let Some(r) = self.watched.remove(pid) {
                self.watch_refs.remove(&r);
                ctx.demonitor(&r);
            }
        }
    }

    fn owns(&self, key: &Key, pid: &Pid) -> bool {
        self.table()
            .claims(key)
            .iter()
            .any(|e| &e.pid == pid && e.stamp.owner == self.me)
    }

    /// Registers `pid` under `key`, owned by this node, and tells everyone.
    fn add_local(&mut self, ctx: &Ctx<'_>, key: Key, pid: Pid, meta: Term, restart: bool) -> Entry {
        let entry = {
            let mut t = self.table_mut();
            let stamp = t.next_stamp(&self.me);
            let entry = Entry {
                key,
                pid: pid.clone(),
                meta,
                stamp,
                restart,
            };
            t.add(entry.clone());
            entry
        };
        self.watch(ctx, &pid);
        self.broadcast(ctx, &Peer::Reg(ctx.pid(), entry.clone()));
        entry
    }

    /// Removes this node's claim and tells everyone.
    fn remove_local(&mut self, ctx: &Ctx<'_>, key: &Key, pid: &Pid) -> Option<Entry> {
        if !self.owns(key, pid) {
            return None;
        }
        let gone = self.table_mut().remove(key, pid);
        self.unwatch_if_unused(ctx, pid);
        self.broadcast(ctx, &Peer::Unreg(ctx.pid(), key.clone(), pid.clone()));
        gone
    }

    /// Applies what adding a remote claim did: if this node's entry lost, it is retired and
    /// its process told.
    fn settle(&mut self, ctx: &Ctx<'_>, added: Added) {
        let Added::Conflict { winner, loser } = added else {
            return;
        };
        if loser.stamp.owner != self.me {
            return;
        }
        info!(
            key = %loser.key,
            loser = ?loser.pid,
            winner = ?winner.pid,
            winner_owner = %winner.stamp.owner.as_str(),
            "name conflict: the lower stamp (clock {}, owner {}) beats ours (clock {}), our process is told",
            winner.stamp.clock,
            winner.stamp.owner.as_str(),
            loser.stamp.clock,
        );
        self.remove_local(ctx, &loser.key, &loser.pid);
        let notice = tuple(vec![
            atom("cluster_name_conflict"),
            loser.key.to_term(),
            Term::Pid(winner.pid.clone()),
        ]);
        let _ = ctx.send_noconnect(&Dest::Pid(loser.pid.clone()), notice);
        self.shared.stats.write().expect("stats").conflicts_lost += 1;
    }

    fn handle_peer(&mut self, ctx: &Ctx<'_>, msg: Peer) {
        // Server messages come from other nodes; one claiming to be a server of ours is a
        // lie (it would make this node drop its own entries).
        let sender = match &msg {
            Peer::Discover(p, _)
            | Peer::Sync(p, _, _)
            | Peer::Reg(p, _)
            | Peer::Unreg(p, _, _)
            | Peer::Info(p, _)
            | Peer::Spawn(p, _, _)
            | Peer::Del(p, _, _) => Some(p),
            Peer::Spawned(..) => None,
        };
        if sender.is_some_and(|p| p.node == self.me) {
            debug!("a cluster_server message from a process of our own node: ignored");
            return;
        }
        match msg {
            Peer::Discover(pid, info) => {
                let new = self.know(ctx, &pid, info);
                self.sync_to(ctx, &pid);
                if new {
                    let _ = ctx.send_noconnect(
                        &Dest::Pid(pid),
                        Peer::Discover(ctx.pid(), self.info()).encode(),
                    );
                }
            }
            Peer::Sync(pid, info, entries) => {
                self.know(ctx, &pid, info);
                if !self.is_peer(&pid) {
                    return;
                }
                let owner = pid.node.clone();
                let mut outcomes = Vec::new();
                {
                    let mut t = self.table_mut();
                    t.remove_owner(owner.as_str());
                    for e in entries {
                        if e.stamp.owner == owner {
                            outcomes.push(t.add(e));
                        }
                    }
                }
                for o in outcomes {
                    self.settle(ctx, o);
                }
            }
            Peer::Reg(pid, e) => {
                if !self.is_peer(&pid) || e.stamp.owner != pid.node {
                    debug!("cs_reg from a server we do not know, or for another owner: ignored");
                    return;
                }
                let added = self.table_mut().add(e);
                self.settle(ctx, added);
            }
            Peer::Unreg(pid, key, epid) => {
                if !self.is_peer(&pid) {
                    return;
                }
                let mut t = self.table_mut();
                if t.claims(&key)
                    .iter()
                    .any(|e| e.pid == epid && e.stamp.owner == pid.node)
                {
                    t.remove(&key, &epid);
                }
            }
            Peer::Info(pid, info) => {
                if let Some(p) = self.peers.get_mut(&pid.node) {
                    if p.pid == pid {
                        p.info = info;
                    }
                }
            }
            Peer::Spawn(home_pid, tag, key) => {
                let result = self.create_here(ctx, &key);
                let _ =
                    ctx.send_noconnect(&Dest::Pid(home_pid), Peer::Spawned(tag, result).encode());
            }
            Peer::Spawned(tag, result) => {
                if let Some(key) = self.pending_tags.get(&tag).cloned() {
                    self.finish(ctx, &key, result);
                }
            }
            Peer::Del(_, key, epid) => {
                self.remove_local(ctx, &key, &epid);
            }
        }
    }

    fn is_peer(&self, pid: &Pid) -> bool {
        self.peers.get(&pid.node).is_some_and(|p| &p.pid == pid)
    }

    fn handle_request(&mut self, ctx: &Ctx<'_>, from: &From, req: Request) -> Call {
        match req {
            Request::Create {
                key,
                selector,
                hops,
            } => {
                if let Some(e) = self.table().get(&key) {
                    return Call::Reply(create_reply(&Ok(e.clone())));
                }
                if self.pending.len() + self.relays.len() >= MAX_WAITING
                    && !self.pending.contains_key(&key)
                {
                    return Call::Reply(error(atom("overloaded")));
                }
                let servers = self.servers();
                let home_node = home(&key, &servers).cloned().unwrap_or(self.me.clone());
                if home_node != self.me && hops < MAX_HOPS {
                    let Some(peer) = self.peers.get(&home_node) else {
                        return Call::Reply(error(atom("no_home")));
                    };
                    let tag = ctx.node().make_ref();
                    let fwd = Request::Create {
                        key,
                        selector,
                        hops: hops + 1,
                    };
                    let call = tuple(vec![
                        atom("$gen_call"),
                        tuple(vec![Term::Pid(ctx.pid()), Term::Ref(tag.clone())]),
                        fwd.encode(),
                    ]);
                    let _ = ctx.send_noconnect(&Dest::Pid(peer.pid.clone()), call);
                    self.relays.insert(
                        tag,
                        Relay {
                            from: from.clone(),
                            deadline: Instant::now() + CREATE_TIMEOUT + INFO_EVERY,
                        },
                    );
                    return Call::NoReply;
                }
                self.create(ctx, key, selector, vec![from.clone()], None, 0);
                Call::NoReply
            }
            Request::Get(key) => Call::Reply(match self.table().get(&key) {
                Some(e) => tuple(vec![atom("ok"), e.record()]),
                None => error(atom("not_find")),
            }),
            Request::Set(key, pid, meta) => {
                let existing = self.table().get(&key).cloned();
                match existing {
                    Some(e) if e.pid != pid => {
                        Call::Reply(error(tuple(vec![atom("already_registered"), e.record()])))
                    }
                    _ => {
                        let restart = self.opts.restart.contains(&key.ty);
                        self.add_local(ctx, key, pid, meta, restart);
                        Call::Reply(atom("ok"))
                    }
                }
            }
            Request::Del(key) => {
                let claims: Vec<Entry> = self.table().claims(&key).to_vec();
                for e in claims {
                    if e.stamp.owner == self.me {
                        self.remove_local(ctx, &key, &e.pid);
                    } else {
                        // Gone from here at once (the caller reads its own delete); the owner
                        // removes it everywhere.
                        self.table_mut().remove(&key, &e.pid);
                        Self::to_server(
                            ctx,
                            &e.stamp.owner,
                            Peer::Del(ctx.pid(), key.clone(), e.pid.clone()).encode(),
                        );
                    }
                }
                Call::Reply(atom("ok"))
            }
            Request::RegisterFactory(ty, pid) => {
                let known = self
                    .beam_factories
                    .get(&ty)
                    .is_some_and(|v| v.iter().any(|(p, _)| p == &pid));
                if !known {
                    match ctx.monitor(&Dest::Pid(pid.clone())) {
                        Ok(r) => {
                            self.factory_refs
                                .insert(r.clone(), (ty.clone(), pid.clone()));
                            self.beam_factories.entry(ty).or_default().push((pid, r));
                        }
                        Err(e) => return Call::Reply(error(binary_text(&e.to_string()))),
                    }
                    self.tell_info(ctx);
                }
                Call::Reply(atom("ok"))
            }
            Request::Procs(ty, node) => {
                let t = self.table();
                let records: Vec<Term> = t
                    .visible()
                    .into_iter()
                    .filter(|e| ty.as_ref().is_none_or(|ty| &e.key.ty == ty))
                    .filter(|e| node.as_ref().is_none_or(|n| &e.pid.node == n))
                    .map(Entry::record)
                    .collect();
                Call::Reply(list(records))
            }
            Request::Loads => Call::Reply(self.loads()),
            Request::Status => Call::Reply(self.status()),
            Request::Claims(key) => Call::Reply(list(
                self.table()
                    .claims(&key)
                    .iter()
                    .map(super::wire::entry_to_term)
                    .collect(),
            )),
        }
    }

    fn loads(&self) -> Term {
        let t = self.table();
        let mut nodes: Vec<(Atom, Info)> = vec![(self.me.clone(), self.info())];
        nodes.extend(self.peers.iter().map(|(n, p)| (n.clone(), p.info.clone())));
        // BEAM nodes that host types through a factory, as any other host.
        let factories: Vec<(Atom, Pid)> = nodes
            .iter()
            .flat_map(|(_, i)| i.factories.iter().cloned())
            .collect();
        for (ty, pid) in factories {
            match nodes.iter_mut().find(|(n, _)| *n == pid.node) {
                Some((_, info)) => {
                    if !info.hosts.contains(&ty) {
                        info.hosts.push(ty);
                    }
                }
                None => nodes.push((
                    pid.node.clone(),
                    Info {
                        hosts: vec![ty],
                        ..Info::default()
                    },
                )),
            }
        }
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        list(
            nodes
                .into_iter()
                .map(|(n, info)| {
                    let types = map_of(
                        t.types_on(n.as_str())
                            .into_iter()
                            .map(|(ty, c)| (Term::Atom(ty), int(c as i64)))
                            .collect(),
                    );
                    tuple(vec![
                        Term::Atom(n.clone()),
                        map(vec![
                            ("procs", int(t.hosted_on(n.as_str()) as i64)),
                            ("types", types),
                            ("load", int(info.load as i64)),
                            (
                                "hosts",
                                list(info.hosts.into_iter().map(Term::Atom).collect()),
                            ),
                        ]),
                    ])
                })
                .collect(),
        )
    }

    fn status(&self) -> Term {
        let t = self.table();
        let s = self.shared.stats.read().expect("stats");
        let failovers = list(
            s.failovers
                .iter()
                .map(|(n, ok, failed, took)| {
                    map(vec![
                        ("node", Term::Atom(n.clone())),
                        ("processes", int(*ok as i64)),
                        ("failed", int(*failed as i64)),
                        ("ms", int(took.as_millis() as i64)),
                    ])
                })
                .collect(),
        );
        map(vec![
            ("entries", int(t.len() as i64)),
            ("owned", int(t.owned_by(self.me.as_str()).len() as i64)),
            ("clock", int(t.clock() as i64)),
            (
                "servers",
                list(self.servers().into_iter().map(Term::Atom).collect()),
            ),
            ("pending", int(self.pending.len() as i64)),
            ("created", int(s.created as i64)),
            (
                "echo_live",
                int(self.shared.echo_live.load(Ordering::Relaxed) as i64),
            ),
            ("conflicts_lost", int(s.conflicts_lost as i64)),
            ("failovers", failovers),
        ])
    }

    fn tell_info(&mut self, ctx: &Ctx<'_>) {
        let info = self.info();
        if self.last_info.as_ref() != Some(&info) {
            self.broadcast(ctx, &Peer::Info(ctx.pid(), info.clone()));
            self.last_info = Some(info);
        }
    }

    fn down(&mut self, ctx: &Ctx<'_>, r: &Ref, reason: &Term) {
        if let Some(node) = self.peer_refs.remove(r) {
            if self.peers.get(&node).is_some_and(|p| &p.monitor == r) {
                self.peers.remove(&node);
                debug!(node = %node.as_str(), "cluster_server peer gone");
                self.peer_gone(ctx, &node);
            }
            return;
        }
        if let Some((ty, pid)) = self.factory_refs.remove(r) {
            if let Some(v) = self.beam_factories.get_mut(&ty) {
                v.retain(|(p, _)| p != &pid);
                if v.is_empty() {
                    self.beam_factories.remove(&ty);
                }
            }
            self.tell_info(ctx);
            return;
        }
        let Some(pid) = self.watch_refs.remove(r) else {
            return;
        };
        self.watched.remove(&pid);
        let keys = self.table().keys_of(&pid);
        let started = Instant::now();
        let mut lost = Vec::new();
        for k in keys {
            if self.owns(&k, &pid) {
                let gone = self.table_mut().remove(&k, &pid);
                self.broadcast(ctx, &Peer::Unreg(ctx.pid(), k.clone(), pid.clone()));
                if let Some(e) = gone {
                    lost.push(e);
                }
            }
        }
        // A process on another node (a BEAM factory's) whose node went away: re-create the
        // ones that ask for it.
        if reason.is_atom("noconnection") {
            let lost: Vec<Entry> = lost.into_iter().filter(|e| e.restart).collect();
            if !lost.is_empty() {
                let node = pid.node.clone();
                self.orphaned(ctx, &node, lost, started);
            }
        }
    }
}

fn error(why: Term) -> Term {
    tuple(vec![atom("error"), why])
}

fn binary_text(s: &str) -> Term {
    crate::dist::term::binary(s.to_owned())
}

fn create_reply(result: &Result<Entry, Term>) -> Term {
    match result {
        Ok(e) => tuple(vec![atom("ok"), e.record()]),
        Err(why) => error(why.clone()),
    }
}

impl Process for Server {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        self.me = Atom::from(ctx.node().name().as_str());
        ctx.monitor_nodes(true);
        // A restarted server: what other nodes own is dropped (a node that died meanwhile
        // would otherwise leave its entries behind; the live ones send theirs again when we
        // discover them); what this node owns is still in the table: watch it again.
        let others: Vec<Atom> = {
            let t = self.table();
            t.owners().into_iter().filter(|o| *o != self.me).collect()
        };
        for o in others {
            self.table_mut().remove_owner(o.as_str());
        }
        let mine: Vec<Pid> = self
            .table()
            .owned_by(self.me.as_str())
            .into_iter()
            .map(|e| e.pid)
            .collect();
        for p in mine {
            self.watch(ctx, &p);
        }
        for n in ctx.node().nodes() {
            self.discover(ctx, &Atom::from(n.as_str()));
        }
        ctx.send_after(INFO_EVERY, atom("cs_tick"));
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, from: &From, request: Term) -> Call {
        match Request::decode(&request) {
            Ok(Some(req)) => self.handle_request(ctx, from, req),
            Ok(None) => unknown_call(request),
            Err(e) => Call::Reply(error(tuple(vec![atom("badarg"), binary_text(&e.0)]))),
        }
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some(ev) = NodeEvent::from_term(&msg) {
            match ev {
                NodeEvent::Up { node, .. } => self.discover(ctx, &Atom::from(node.as_str())),
                NodeEvent::Down { node, .. } => {
                    let node = Atom::from(node.as_str());
                    if let Some(p) = self.peers.remove(&node) {
                        self.peer_refs.remove(&p.monitor);
                        ctx.demonitor(&p.monitor);
                        self.peer_gone(ctx, &node);
                    }
                }
            }
            return Flow::Continue;
        }
        if Peer::is_peer_message(&msg) {
            match Peer::decode(&msg) {
                Ok(p) => self.handle_peer(ctx, p),
                Err(e) => debug!("{e}"),
            }
            return Flow::Continue;
        }
        if msg.is_atom("cs_tick") {
            self.tell_info(ctx);
            self.expire(ctx);
            self.adopt(ctx);
            self.settle_batches();
            ctx.send_after(INFO_EVERY, atom("cs_tick"));
            return Flow::Continue;
        }
        match msg.as_tuple() {
            Some([k, Term::Ref(r), _, _, reason]) if k.is_atom("DOWN") => {
                let (r, reason) = (r.clone(), reason.clone());
                self.down(ctx, &r, &reason);
            }
            // A reply: from a home we passed a create on to, or from a BEAM factory.
            Some([Term::Ref(tag), reply]) => {
                if let Some(relay) = self.relays.remove(tag) {
                    ctx.reply(&relay.from, reply.clone());
                } else if let Some(key) = self.pending_tags.get(tag).cloned() {
                    let result = match reply.as_tuple() {
                        Some([ok, Term::Pid(pid)]) if ok.is_atom("ok") => Ok(pid.clone()),
                        Some([err, why]) if err.is_atom("error") => Err(why.clone()),
                        _ => Err(tuple(vec![atom("bad_factory_reply"), reply.clone()])),
                    };
                    let result = result.map(|pid| {
                        let restart = self.opts.restart.contains(&key.ty);
                        self.add_local(ctx, key.clone(), pid, Term::nil(), restart)
                    });
                    self.finish(ctx, &key, result);
                }
            }
            _ => debug!("cluster_server: unexpected message {msg}"),
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        self.status()
    }
}
