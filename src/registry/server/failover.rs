//! Failover: the processes lost with a node (or with its connection) that ask to be
//! re-created are kept as orphans by every node until they are registered again; the home
//! of each creates it, the others ask the home, and each node reports its share.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::dist::node::Dest;
use crate::dist::process::Ctx;
use crate::dist::term::{atom, tuple, Atom, Term};

use super::super::state::{home, Entry, Key, Selector};
use super::super::wire::Request;
use super::{Retry, Server, MAX_HOPS};

/// How long an orphan is retried before it is given up (and logged).
const ORPHAN_TTL: Duration = Duration::from_secs(300);
/// How often the home of an orphan that is still missing creates it again.
const ORPHAN_RETRY: Duration = Duration::from_secs(5);
/// This node's part of re-creating a dead node's processes: the keys it adopted, until each
/// is registered again.
pub(super) struct Batch {
    started: Instant,
    total: u64,
    waiting: HashSet<Key>,
    failed: u64,
}

/// A process lost with its node (or its node's connection) that asks to be re-created, until
/// it is registered again. Every node keeps these, so that when the node meant to re-create it
/// dies too (a chain of failures, churn) the next home takes it over.
pub(super) struct Orphan {
    from: Atom,
    since: Instant,
    tried: Option<Instant>,
}

impl Server {
    pub(super) fn peer_gone(&mut self, ctx: &Ctx<'_>, node: &Atom) {
        let started = Instant::now();
        let removed = self.table_mut().remove_owner(node.as_str());
        // Creates waiting on that node go elsewhere now rather than fail at their deadline.
        let stuck: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| &p.target == node)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stuck {
            if let Some(p) = self.pending.remove(&k) {
                self.pending_tags.remove(&p.tag);
                self.in_flight.remove(node);
                self.retries.push(Retry {
                    key: k,
                    selector: match p.selector {
                        Selector::Node(n) if &n == node => Selector::LeastLoaded,
                        other => other,
                    },
                    waiters: p.waiters,
                    failover: p.failover,
                    attempts: p.attempts + 1,
                });
            }
        }
        for r in std::mem::take(&mut self.retries) {
            self.create(ctx, r.key, r.selector, r.waiters, r.failover, r.attempts);
        }
        self.orphaned(ctx, node, removed, started);
    }

    /// Notes the processes lost with `node` that ask to be re-created, then creates those
    /// this node is home to.
    pub(super) fn orphaned(
        &mut self,
        ctx: &Ctx<'_>,
        node: &Atom,
        lost: Vec<Entry>,
        started: Instant,
    ) {
        for e in lost.into_iter().filter(|e| e.restart) {
            self.orphans.entry(e.key).or_insert(Orphan {
                from: node.clone(),
                since: started,
                tried: None,
            });
        }
        self.adopt(ctx);
    }

    /// Creates the orphans this node is home to (over the servers it knows now) that are not
    /// registered again yet, each at most every [`ORPHAN_RETRY`]; forgets the ones that are
    /// back, and gives up on those older than [`ORPHAN_TTL`].
    pub(super) fn adopt(&mut self, ctx: &Ctx<'_>) {
        if self.orphans.is_empty() {
            return;
        }
        let servers = self.servers();
        let now = Instant::now();
        let mut todo: Vec<(Key, Atom, Instant)> = Vec::new();
        let mut asks: Vec<(Key, Atom)> = Vec::new();
        {
            let t = self.shared.table.read().expect("registry table");
            let pending = &self.pending;
            let me = &self.me;
            self.orphans.retain(|k, o| {
                if t.get(k).is_some() {
                    return false;
                }
                if now.duration_since(o.since) > ORPHAN_TTL {
                    warn!(key = %k, node = %o.from.as_str(), "failover: given up re-creating a lost process");
                    return false;
                }
                let due = o.tried.is_none_or(|t| now.duration_since(t) >= ORPHAN_RETRY);
                if due && !pending.contains_key(k) {
                    o.tried = Some(now);
                    match home(k, &servers) {
                        Some(h) if h == me => todo.push((k.clone(), o.from.clone(), o.since)),
                        Some(h) => asks.push((k.clone(), h.clone())),
                        None => {}
                    }
                }
                true
            });
        }
        // The home may not have heard of the entry (it joined a moment ago), or may see the
        // cluster differently: ask it as a client would. It serialises the asks like any
        // create, and the reply is not needed (the entry reaches us by its owner's `cs_reg`).
        for (key, h) in asks {
            if let Some(peer) = self.peers.get(&h) {
                let ask = Request::Create {
                    key,
                    selector: Selector::LeastLoaded,
                    hops: MAX_HOPS,
                };
                let call = tuple(vec![
                    atom("$gen_call"),
                    tuple(vec![Term::Pid(ctx.pid()), Term::Ref(ctx.node().make_ref())]),
                    ask.encode(),
                ]);
                let _ = ctx.send_noconnect(&Dest::Pid(peer.pid.clone()), call);
            }
        }
        if todo.is_empty() {
            return;
        }
        info!(
            processes = todo.len(),
            "failover: re-creating lost processes that this node is home to"
        );
        for (key, from, since) in todo {
            let b = self.batches.entry(from.clone()).or_insert(Batch {
                started: since,
                total: 0,
                waiting: HashSet::new(),
                failed: 0,
            });
            if b.waiting.insert(key.clone()) {
                b.total += 1;
            }
            self.create(ctx, key, Selector::LeastLoaded, Vec::new(), Some(from), 0);
        }
    }

    /// A failover create for `key` (of `node`'s processes) has an outcome. A failure leaves
    /// the orphan to be tried again; the batch is reported once all its keys are back.
    pub(super) fn batch_step(&mut self, node: &Atom, key: &Key, ok: bool) {
        if ok {
            self.orphans.remove(key);
        }
        let Some(b) = self.batches.get_mut(node) else {
            return;
        };
        if ok {
            b.waiting.remove(key);
        } else if !self.orphans.contains_key(key) {
            // Given up: it will not be tried again.
            b.waiting.remove(key);
            b.failed += 1;
        }
        if b.waiting.is_empty() {
            self.report_batch(node);
        }
    }

    pub(super) fn report_batch(&mut self, node: &Atom) {
        let Some(b) = self.batches.remove(node) else {
            return;
        };
        let took = b.started.elapsed();
        let done = b.total - b.failed;
        info!(
            node = %node.as_str(),
            processes = done,
            failed = b.failed,
            "failover: re-created {done} processes of {} in {} ms",
            node.as_str(),
            took.as_millis()
        );
        let mut stats = self.shared.stats.write().expect("stats");
        stats.failovers.push((node.clone(), done, b.failed, took));
        if stats.failovers.len() > 16 {
            stats.failovers.remove(0);
        }
    }

    /// Batches whose keys came back by another path (another home's create, a re-sync).
    pub(super) fn settle_batches(&mut self) {
        let done: Vec<Atom> = {
            let t = self.shared.table.read().expect("registry table");
            let mut done = Vec::new();
            for (node, b) in self.batches.iter_mut() {
                b.waiting.retain(|k| t.get(k).is_none());
                if b.waiting.is_empty() {
                    done.push(node.clone());
                }
            }
            done
        };
        for n in done {
            self.report_batch(&n);
        }
    }
}
