//! `cluster_server`, the process every node runs: it owns this node's registrations, keeps
//! the replicated table, serialises creates of the keys it is home to, and re-creates the
//! processes of a dead node that ask for it. The table itself lives in [`Shared`], written
//! only here and read by the library without a message.
//!
//! Nothing here waits on a peer: every message to another server is sent without
//! connecting, every create that another node must finish has a deadline, and a peer that
//! stops answering is dropped by its monitor (its node's tick decides).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::dist::node::{Dest, From};
use crate::dist::process::{unknown_call, Call, Ctx, Flow, Process};
use crate::dist::term::{atom, int, list, map, map_of, tuple, Atom, Pid, Ref, Term};
use crate::dist::{NodeEvent, NodeName};

use super::state::{home, place, Added, Candidate, Entry, Key, Selector, Table};
use super::wire::{Info, Peer, Request};
use super::Factory;

/// The registered name.
pub const NAME: &str = "cluster_server";
/// How long the home of a key waits for the chosen node to create it.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a server tells the others its hosted types and load, when they changed.
const INFO_EVERY: Duration = Duration::from_secs(1);
/// How many times a create may be passed on to another home (views of membership can differ
/// for a moment; past this the server that has it decides).
const MAX_HOPS: u8 = 2;
/// How many times the home tries a create whose chosen node died before answering, or
/// answered with the entry of a node this server has already seen go down.
const MAX_ATTEMPTS: u8 = 3;
/// The pause before such a create is tried again: the chosen node has then noticed what this
/// one had (the same node going down), and a new placement no longer counts a dead node.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

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
}

struct PeerServer {
    pid: Pid,
    monitor: Ref,
    info: Info,
}

/// Who is waiting for a create this node is home to.
struct Pending {
    tag: Ref,
    target: Atom,
    waiters: Vec<From>,
    failover: Option<Atom>,
    selector: Selector,
    attempt: u8,
}

/// Something waiting for its next attempt ([`RETRY_PAUSE`]).
enum Retry {
    /// A create this node is home to.
    Create {
        key: Key,
        selector: Selector,
        waiters: Vec<From>,
        failover: Option<Atom>,
        attempt: u8,
    },
    /// A failover this node asked another home for.
    Ask { key: Key, dead: Atom, attempt: u8 },
}

/// A failover create this node asked the key's home for: the process of `dead` that this node
/// held an entry for.
struct Ask {
    key: Key,
    home: Atom,
    dead: Atom,
    attempt: u8,
}

/// A create passed on to its home: who asked.
struct Relay {
    from: From,
}

struct Batch {
    started: Instant,
    total: u64,
    remaining: u64,
    failed: u64,
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
    retries: HashMap<Ref, Retry>,
    asks: HashMap<Ref, Ask>,
    in_flight: HashMap<Atom, u64>,
    beam_factories: HashMap<Atom, Vec<(Pid, Ref)>>,
    factory_refs: HashMap<Ref, (Atom, Pid)>,
    batches: HashMap<Atom, Batch>,
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
            retries: HashMap::new(),
            asks: HashMap::new(),
            in_flight: HashMap::new(),
            beam_factories: HashMap::new(),
            factory_refs: HashMap::new(),
            batches: HashMap::new(),
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

    fn peer_gone(&mut self, ctx: &Ctx<'_>, node: &Atom) {
        let started = Instant::now();
        let removed = self.table_mut().remove_owner(node.as_str());
        // Creates waiting on that node fail now rather than at their deadline.
        let stuck: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| &p.target == node)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stuck {
            self.finish(
                ctx,
                &k,
                Err(tuple(vec![atom("nodedown"), Term::Atom(node.clone())])),
            );
        }
        // Failovers asked of that node are asked again of the keys' new homes.
        let asked: Vec<Ref> = self
            .asks
            .iter()
            .filter(|(_, a)| &a.home == node)
            .map(|(r, _)| r.clone())
            .collect();
        for r in asked {
            if let Some(a) = self.asks.remove(&r) {
                self.ask_again(ctx, a.key, a.dead, a.attempt);
            }
        }
        let lost: Vec<Entry> = removed.into_iter().filter(|e| e.restart).collect();
        if !lost.is_empty() {
            self.fail_over(ctx, node, lost, started);
        }
    }

    /// Re-creates, elsewhere, the processes of `node` whose entries this node held: those this
    /// node is now home to, itself; the others, by asking their home. Every server that held
    /// an entry asks, and the home serialises the asks like any create: a home that sees the
    /// cluster differently for a moment, or that had not yet heard of the entry (it joined a
    /// moment ago), would otherwise leave the process dead for good.
    fn fail_over(&mut self, ctx: &Ctx<'_>, node: &Atom, lost: Vec<Entry>, started: Instant) {
        let servers = self.servers();
        let (mine, others): (Vec<Entry>, Vec<Entry>) = lost
            .into_iter()
            .partition(|e| home(&e.key, &servers) == Some(&self.me));
        for e in others {
            self.ask_home(ctx, e.key, node.clone(), 0);
        }
        if mine.is_empty() {
            return;
        }
        info!(
            node = %node.as_str(),
            processes = mine.len(),
            "failover: re-creating the processes of a dead node that this node is home to"
        );
        self.fail_over_here(
            ctx,
            node,
            mine.into_iter().map(|e| e.key).collect(),
            started,
        );
    }

    /// Creates `keys` again as their home, counted in the failover batch of `node`.
    fn fail_over_here(&mut self, ctx: &Ctx<'_>, node: &Atom, keys: Vec<Key>, started: Instant) {
        let batch = self.batches.entry(node.clone()).or_insert(Batch {
            started,
            total: 0,
            remaining: 0,
            failed: 0,
        });
        batch.total += keys.len() as u64;
        batch.remaining += keys.len() as u64;
        for key in keys {
            self.create(
                ctx,
                key,
                Selector::LeastLoaded,
                Vec::new(),
                Some(node.clone()),
                0,
            );
        }
    }

    /// Asks the home of `key` (in this node's view) to create it again, as a client would;
    /// creates it here if this node has become its home.
    fn ask_home(&mut self, ctx: &Ctx<'_>, key: Key, dead: Atom, attempt: u8) {
        let servers = self.servers();
        let Some(h) = home(&key, &servers).cloned() else {
            return;
        };
        if h == self.me {
            // The home left before answering, and this node is home now.
            self.fail_over_here(ctx, &dead, vec![key], Instant::now());
            return;
        }
        let Some(peer) = self.peers.get(&h) else {
            return;
        };
        let tag = ctx.node().make_ref();
        let req = Request::Create {
            key: key.clone(),
            selector: Selector::LeastLoaded,
            hops: 0,
        };
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(ctx.pid()), Term::Ref(tag.clone())]),
            req.encode(),
        ]);
        let _ = ctx.send_noconnect(&Dest::Pid(peer.pid.clone()), call);
        ctx.send_after(
            CREATE_TIMEOUT + Duration::from_secs(1),
            tuple(vec![atom("cs_timeout"), Term::Ref(tag.clone())]),
        );
        self.asks.insert(
            tag,
            Ask {
                key,
                home: h,
                dead,
                attempt,
            },
        );
    }

    /// An ask failed: try again after a pause, a bounded number of times.
    fn ask_again(&mut self, ctx: &Ctx<'_>, key: Key, dead: Atom, attempt: u8) {
        if attempt + 1 >= MAX_ATTEMPTS {
            warn!(key = %key, node = %dead.as_str(), "failover: the home did not re-create it");
            return;
        }
        let tag = ctx.node().make_ref();
        ctx.send_after(
            RETRY_PAUSE,
            tuple(vec![atom("cs_retry"), Term::Ref(tag.clone())]),
        );
        self.retries.insert(
            tag,
            Retry::Ask {
                key,
                dead,
                attempt: attempt + 1,
            },
        );
    }

    /// The home answered an ask: done, unless it answered with the dead node's entry (it had
    /// not noticed yet) or with an error.
    fn ask_answered(&mut self, ctx: &Ctx<'_>, ask: Ask, reply: &Term) {
        let done = match reply.as_tuple() {
            Some([ok, rec]) if ok.is_atom("ok") => super::wire::record_from_term(rec)
                .is_ok_and(|(_, pid, _)| self.pid_current(ctx, &pid)),
            _ => false,
        };
        if !done {
            debug!(key = %ask.key, home = %ask.home.as_str(), "failover ask to try again: {reply}");
            self.ask_again(ctx, ask.key, ask.dead, ask.attempt);
        }
    }

    fn batch_step(&mut self, node: &Atom, ok: bool) {
        let Some(b) = self.batches.get_mut(node) else {
            return;
        };
        b.remaining = b.remaining.saturating_sub(1);
        if !ok {
            b.failed += 1;
        }
        if b.remaining == 0 {
            let b = self.batches.remove(node).expect("batch");
            let took = b.started.elapsed();
            info!(
                node = %node.as_str(),
                processes = b.total - b.failed,
                failed = b.failed,
                "failover: re-created {} processes of {} in {} ms",
                b.total - b.failed,
                node.as_str(),
                took.as_millis()
            );
            let mut stats = self.shared.stats.write().expect("stats");
            stats
                .failovers
                .push((node.clone(), b.total - b.failed, b.failed, took));
            if stats.failovers.len() > 16 {
                stats.failovers.remove(0);
            }
        }
    }

    /// Every node running `cluster_server` that this one knows, itself included.
    fn servers(&self) -> Vec<Atom> {
        let mut v: Vec<Atom> = self.peers.keys().cloned().collect();
        v.push(self.me.clone());
        v
    }

    fn candidates(&self, ty: &Atom) -> Vec<Candidate> {
        let t = self.table();
        let load = |node: &Atom, extra: u64| {
            t.hosted_on(node.as_str()) as u64
                + self.in_flight.get(node).copied().unwrap_or(0)
                + extra
        };
        let mut out: Vec<Candidate> = Vec::new();
        let mut push = |node: &Atom, extra: u64| {
            if !out.iter().any(|c| &c.node == node) {
                out.push(Candidate {
                    node: node.clone(),
                    load: load(node, extra),
                });
            }
        };
        let mine = self.info();
        if mine.hosts.contains(ty) {
            push(&self.me, mine.load);
        }
        for (node, p) in &self.peers {
            if p.info.hosts.contains(ty) {
                push(node, p.info.load);
            }
        }
        for (fty, pid) in self
            .beam_factories
            .iter()
            .flat_map(|(t, v)| v.iter().map(move |(p, _)| (t, p)))
            .chain(
                self.peers
                    .values()
                    .flat_map(|p| p.info.factories.iter().map(|(t, p)| (t, p))),
            )
        {
            if fty == ty {
                push(&pid.node, 0);
            }
        }
        out
    }

    fn beam_factory(&self, ty: &Atom, node: &Atom) -> Option<Pid> {
        self.beam_factories
            .get(ty)
            .into_iter()
            .flatten()
            .map(|(p, _)| p)
            .chain(
                self.peers
                    .values()
                    .flat_map(|p| p.info.factories.iter())
                    .filter(|(t, _)| t == ty)
                    .map(|(_, p)| p),
            )
            .find(|p| &p.node == node)
            .cloned()
    }

    /// Creates `key` (this node is its home): now, if this node is chosen; otherwise by asking
    /// the chosen node, with a deadline. `attempt` counts the tries before this one.
    fn create(
        &mut self,
        ctx: &Ctx<'_>,
        key: Key,
        selector: Selector,
        from: Vec<From>,
        failover: Option<Atom>,
        attempt: u8,
    ) {
        let existing = self.table().get(&key).cloned();
        if let Some(e) = existing {
            self.answer(ctx, from, Ok(e), failover.as_ref());
            return;
        }
        if let Some(p) = self.pending.get_mut(&key) {
            p.waiters.extend(from);
            if let Some(f) = failover {
                self.batch_step(&f, true);
            }
            return;
        }
        let cands = self.candidates(&key.ty);
        let Some(target) = place(&key, &selector, &cands, rand::random()).map(|c| c.node.clone())
        else {
            let why = match &selector {
                Selector::Node(n) => tuple(vec![
                    atom("not_hosted"),
                    Term::Atom(key.ty.clone()),
                    Term::Atom(n.clone()),
                ]),
                _ => tuple(vec![atom("no_host"), Term::Atom(key.ty.clone())]),
            };
            self.answer(ctx, from, Err(why), failover.as_ref());
            return;
        };
        if target == self.me {
            let result = self.create_here(ctx, &key);
            self.answer(ctx, from, result, failover.as_ref());
            return;
        }
        let tag = ctx.node().make_ref();
        if self
            .peers
            .get(&target)
            .is_some_and(|p| p.info.hosts.contains(&key.ty))
        {
            Self::to_server(
                ctx,
                &target,
                Peer::Spawn(ctx.pid(), tag.clone(), key.clone()).encode(),
            );
        } else if let Some(factory) = self.beam_factory(&key.ty, &target) {
            // A BEAM factory: `{create, Type, Id}` as a gen_server call whose reply comes to us.
            let call = tuple(vec![
                atom("$gen_call"),
                tuple(vec![Term::Pid(ctx.pid()), Term::Ref(tag.clone())]),
                tuple(vec![
                    atom("create"),
                    Term::Atom(key.ty.clone()),
                    key.id.clone(),
                ]),
            ]);
            let _ = ctx.send(&Dest::Pid(factory), call);
        }
        *self.in_flight.entry(target.clone()).or_default() += 1;
        ctx.send_after(
            CREATE_TIMEOUT,
            tuple(vec![atom("cs_timeout"), Term::Ref(tag.clone())]),
        );
        self.pending_tags.insert(tag.clone(), key.clone());
        self.pending.insert(
            key,
            Pending {
                tag,
                target,
                waiters: from,
                failover,
                selector,
                attempt,
            },
        );
    }

    fn create_here(&mut self, ctx: &Ctx<'_>, key: &Key) -> Result<Entry, Term> {
        let existing = self.table().get(key).cloned();
        if let Some(e) = existing {
            return Ok(e);
        }
        let factory = self
            .shared
            .factories
            .read()
            .expect("factories")
            .get(&key.ty)
            .cloned();
        let Some(factory) = factory else {
            return Err(tuple(vec![atom("no_factory"), Term::Atom(key.ty.clone())]));
        };
        let pid = factory.create(ctx.node(), key)?;
        self.shared.stats.write().expect("stats").created += 1;
        let restart = self.opts.restart.contains(&key.ty);
        Ok(self.add_local(ctx, key.clone(), pid, Term::nil(), restart))
    }

    fn answer(
        &mut self,
        ctx: &Ctx<'_>,
        from: Vec<From>,
        result: Result<Entry, Term>,
        failover: Option<&Atom>,
    ) {
        if let Some(f) = failover {
            if let Err(why) = &result {
                warn!(node = %f.as_str(), "failover create failed: {why}");
            }
            self.batch_step(f, result.is_ok());
        }
        let reply = create_reply(&result);
        for w in from {
            ctx.reply(&w, reply.clone());
        }
    }

    /// Whether `e` is owned by a server this one counts as up, in its current incarnation. A
    /// node that has not yet noticed a peer go down still holds that peer's entries, and
    /// answers a create with one: taking it would bring back into this table an entry it has
    /// dropped, which nobody would remove again (and, in a failover, count as re-created a
    /// process that is dead).
    fn is_current(&self, ctx: &Ctx<'_>, e: &Entry) -> bool {
        (e.stamp.owner == self.me || self.peers.contains_key(&e.stamp.owner))
            && self.pid_current(ctx, &e.pid)
    }

    /// Whether `pid` belongs to the current incarnation of a node this server counts as up
    /// (a server's node; or, for a BEAM factory's process, a node this one is connected to).
    fn pid_current(&self, ctx: &Ctx<'_>, pid: &Pid) -> bool {
        if pid.node == self.me {
            return pid.creation == ctx.node().creation();
        }
        match self.peers.get(&pid.node) {
            Some(p) => p.pid.creation == pid.creation,
            None => ctx
                .node()
                .nodes()
                .iter()
                .any(|n| n.as_str() == pid.node.as_str()),
        }
    }

    /// A create this node is home to has an outcome.
    fn finish(&mut self, ctx: &Ctx<'_>, key: &Key, result: Result<Entry, Term>) {
        let Some(p) = self.pending.remove(key) else {
            return;
        };
        self.pending_tags.remove(&p.tag);
        if let Some(n) = self.in_flight.get_mut(&p.target) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&p.target);
            }
        }
        let result = match result {
            Ok(e) if !self.is_current(ctx, &e) => Err(tuple(vec![
                atom("stale"),
                Term::Atom(e.stamp.owner.clone()),
            ])),
            other => other,
        };
        // The chosen node died before answering, or answered with a dead node's entry: place
        // the create again (the process is not running anywhere this server counts as up).
        if let Err(why) = &result {
            let retryable = why
                .as_tuple()
                .and_then(|t| t.first())
                .is_some_and(|tag| tag.is_atom("stale") || tag.is_atom("nodedown"));
            if retryable && p.attempt + 1 < MAX_ATTEMPTS {
                debug!(key = %key, target = %p.target.as_str(), "create to try again: {why}");
                let tag = ctx.node().make_ref();
                ctx.send_after(
                    RETRY_PAUSE,
                    tuple(vec![atom("cs_retry"), Term::Ref(tag.clone())]),
                );
                self.retries.insert(
                    tag,
                    Retry::Create {
                        key: key.clone(),
                        selector: p.selector,
                        waiters: p.waiters,
                        failover: p.failover,
                        attempt: p.attempt + 1,
                    },
                );
                return;
            }
        }
        if let Ok(e) = &result {
            // The owner's own `cs_reg` may not have reached us yet.
            let added = self.table_mut().add(e.clone());
            self.settle(ctx, added);
        }
        if let Some(f) = &p.failover {
            if let Err(why) = &result {
                warn!(node = %f.as_str(), key = %key, "failover create failed: {why}");
            }
            self.batch_step(f, result.is_ok());
        }
        let reply = create_reply(&result);
        for w in p.waiters {
            ctx.reply(&w, reply.clone());
        }
    }

    fn handle_peer(&mut self, ctx: &Ctx<'_>, msg: Peer) {
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
                    ctx.send_after(
                        CREATE_TIMEOUT + Duration::from_secs(1),
                        tuple(vec![atom("cs_timeout"), Term::Ref(tag.clone())]),
                    );
                    self.relays.insert(tag, Relay { from: from.clone() });
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
            (
                "pending",
                int((self.pending.len() + self.retries.len() + self.asks.len()) as i64),
            ),
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

    /// `{cs_retry, Tag}`: the pause before another attempt is over.
    fn retry(&mut self, ctx: &Ctx<'_>, tag: &Ref) {
        match self.retries.remove(tag) {
            Some(Retry::Create {
                key,
                selector,
                waiters,
                failover,
                attempt,
            }) => self.create(ctx, key, selector, waiters, failover, attempt),
            Some(Retry::Ask { key, dead, attempt }) => self.ask_home(ctx, key, dead, attempt),
            None => {}
        }
    }

    /// `{cs_timeout, Tag}`: a create, a create passed on to its home, or a failover ask got
    /// no answer in time (the tag is gone if it did).
    fn timed_out(&mut self, ctx: &Ctx<'_>, tag: &Ref) {
        if let Some(key) = self.pending_tags.get(tag).cloned() {
            self.finish(ctx, &key, Err(atom("timeout")));
        } else if let Some(relay) = self.relays.remove(tag) {
            ctx.reply(&relay.from, error(atom("timeout")));
        } else if let Some(ask) = self.asks.remove(tag) {
            self.ask_again(ctx, ask.key, ask.dead, ask.attempt);
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
                self.fail_over(ctx, &node, lost, started);
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
        // A restarted server: what this node owned is still in the table; watch it again.
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
        // This server's own timers first: their tags start with `cs_` like the peer messages',
        // which would otherwise take them (and drop them as malformed).
        if let Some([k, Term::Ref(tag)]) = msg.as_tuple() {
            if k.is_atom("cs_retry") {
                let tag = tag.clone();
                self.retry(ctx, &tag);
                return Flow::Continue;
            }
            if k.is_atom("cs_timeout") {
                let tag = tag.clone();
                self.timed_out(ctx, &tag);
                return Flow::Continue;
            }
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
                } else if let Some(ask) = self.asks.remove(tag) {
                    let reply = reply.clone();
                    self.ask_answered(ctx, ask, &reply);
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
