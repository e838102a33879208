//! The `data` process every data node runs: the gen_server contract that Erlang and Elixir
//! call unchanged (`GenServer.call({:data, node}, request)`).
//!
//! | request | reply |
//! |---|---|
//! | `{get, Bucket, Key}` | `{ok, Value, Version}` or `not_found` |
//! | `{get, Bucket, Key, MinVersion}` | the same, once this node has applied MinVersion (waits up to 4 s, then `{error, {timeout, Applied}}`) |
//! | `{put, Bucket, Key, Value}` | `{ok, Version}` once durable |
//! | `{put, Bucket, Key, Value, Expected}` | `{ok, Version}`, or `{error, {conflict, Current}}` (0: absent) |
//! | `{delete, Bucket, Key}` | `ok` |
//! | `{create, Bucket}` | `ok` |
//! | `{list, Bucket, Prefix, Limit[, StartAfter]}` | `{ok, [{Key, Value, Version}]}` in key order, at most Limit (≤ 10000) entries and about 16 MiB; `StartAfter` pages |
//! | `buckets` | `{ok, [Bucket]}` |
//! | `status` | `{ok, #{role, version, head, lag_versions, lag_ms, stale, phase, contact, …}}` |
//!
//! Buckets are binaries (or atoms), keys binaries, values any term (kept as ETF). A replica
//! that is cut off from its data_contact still answers reads, wrapped as
//! `{stale, #{versions => V, ms => M}, Reply}`, so a caller cannot take stale data for fresh by
//! accident; it never applies a write itself, and forwards every write to its data_contact.
//!
//! Routing (seed 001): a request for a bucket this node does not own (per its own table) goes
//! to the owner as `{forward, [Visited], Request}`; a node that finds itself among the
//! visited refuses it as a loop. Errors: `{error, {no_route, Bucket}}`,
//! `{error, {routing_loop, [Node]}}`, `{error, {unavailable, Node}}`, `{error, overloaded}`,
//! `{error, {badarg, Why}}`, `{error, {too_large, Size, Max}}`.
//!
//! The process never waits: reads are local and short, writes go to the commit thread and
//! are answered from there, forwards and the writes a replica passes on run in tasks with a
//! bound on how many are in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::commit::Committer;
use super::replica::{Lag, Status};
use super::routing::{Decision, Routes, MAX_HOPS};
use super::store::{check_names, Outcome, Store, Write};
use crate::dist::term::{atom, binary, int, list, map, tuple, Term};
use crate::dist::{Call, CallError, Ctx, Dest, Flow, From, Node, NodeName, Process};

/// The registered name.
pub const NAME: &str = "data";
/// The longest a read may wait for a version.
pub const MIN_VERSION_WAIT: Duration = Duration::from_secs(4);
/// The most entries one `list` returns.
pub const MAX_LIST: usize = 10_000;
/// About the most bytes of keys and values one `list` returns (at least one entry): a reply is
/// one message, and a node must not build gigabytes of it. Page with `StartAfter`.
pub const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;
/// Requests being forwarded at once.
const MAX_IN_FLIGHT: usize = 4096;
/// Reads waiting for a version at once.
const MAX_WAITERS: usize = 10_000;
/// Time allowed for a forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of data node this is.
#[derive(Clone)]
pub enum Mode {
    /// A data_contact: it writes.
    Writer {
        /// The commit thread.
        committer: Committer,
        /// Where replicas connect for the bulk channel.
        bulk_port: u16,
    },
    /// A data_service.
    Replica {
        /// Its state.
        status: Arc<Mutex<Status>>,
        /// Reads are stale after this long without word from the writer.
        ticktime: Duration,
    },
}

/// The `data` process.
pub struct DataServer {
    store: Arc<Store>,
    mode: Mode,
    routes: Routes,
    me: NodeName,
    max_value: usize,
    in_flight: Arc<AtomicUsize>,
    waiters: BTreeMap<u64, Vec<(From, Term, Instant)>>,
    waiting: usize,
    expiry_armed: bool,
}

impl DataServer {
    /// A data process over `store`.
    pub fn new(
        store: Arc<Store>,
        mode: Mode,
        routes: Routes,
        me: NodeName,
        max_value: usize,
    ) -> Self {
        DataServer {
            store,
            mode,
            routes,
            me,
            max_value,
            in_flight: Arc::new(AtomicUsize::new(0)),
            waiters: BTreeMap::new(),
            waiting: 0,
            expiry_armed: false,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `{get, B, K}` / `{get, B, K, MinVersion}`.
    Get {
        /// Bucket.
        bucket: String,
        /// Key.
        key: Bytes,
        /// The version this node must have applied first.
        min: Option<u64>,
    },
    /// `{put, B, K, V}` / `{put, B, K, V, Expected}`.
    Put {
        /// Bucket.
        bucket: String,
        /// Key.
        key: Bytes,
        /// Value.
        value: Term,
        /// Compare-and-set.
        expected: Option<u64>,
    },
    /// `{delete, B, K}`.
    Delete {
        /// Bucket.
        bucket: String,
        /// Key.
        key: Bytes,
    },
    /// `{create, B}`.
    Create {
        /// Bucket.
        bucket: String,
    },
    /// `{list, B, Prefix, Limit}` / `{list, B, Prefix, Limit, StartAfter}`.
    List {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: Bytes,
        /// At most this many.
        limit: usize,
        /// Keys after this one only (paging).
        after: Option<Bytes>,
    },
    /// `buckets`.
    Buckets,
    /// `status`.
    Status,
    /// `bulk_endpoint`: where replicas connect.
    BulkEndpoint,
}

impl Request {
    /// The bucket the request is about, if one.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Request::Get { bucket, .. }
            | Request::Put { bucket, .. }
            | Request::Delete { bucket, .. }
            | Request::Create { bucket }
            | Request::List { bucket, .. } => Some(bucket),
            _ => None,
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Put { .. } | Request::Delete { .. } | Request::Create { .. }
        )
    }
}

fn bucket_of(t: &Term) -> Result<String, String> {
    let name = match t {
        Term::Binary(b) => std::str::from_utf8(b)
            .map_err(|_| "the bucket name is not UTF-8".to_owned())?
            .to_owned(),
        Term::Atom(a) => a.as_str().to_owned(),
        _ => return Err(format!("the bucket must be a binary, not {t}")),
    };
    check_names(&name, None).map_err(|e| e.to_string())?;
    Ok(name)
}

fn key_of(t: &Term) -> Result<Bytes, String> {
    match t {
        Term::Binary(b) => {
            check_names("b", Some(b)).map_err(|e| e.to_string())?;
            Ok(b.clone())
        }
        _ => Err(format!("the key must be a binary, not {t}")),
    }
}

fn version_of(t: &Term, what: &str) -> Result<u64, String> {
    t.as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| format!("{what} must be a non-negative integer, not {t}"))
}

/// Reads a request term.
pub fn parse_request(t: &Term) -> Result<Request, String> {
    if t.is_atom("buckets") {
        return Ok(Request::Buckets);
    }
    if t.is_atom("status") {
        return Ok(Request::Status);
    }
    if t.is_atom("bulk_endpoint") {
        return Ok(Request::BulkEndpoint);
    }
    let Some(items) = t.as_tuple() else {
        return Err(format!("unknown request {t}"));
    };
    let Some(verb) = items.first().and_then(Term::as_atom) else {
        return Err(format!("unknown request {t}"));
    };
    match (verb, &items[1..]) {
        ("get", [b, k]) => Ok(Request::Get {
            bucket: bucket_of(b)?,
            key: key_of(k)?,
            min: None,
        }),
        ("get", [b, k, v]) => Ok(Request::Get {
            bucket: bucket_of(b)?,
            key: key_of(k)?,
            min: Some(version_of(v, "MinVersion")?),
        }),
        ("put", [b, k, v]) => Ok(Request::Put {
            bucket: bucket_of(b)?,
            key: key_of(k)?,
            value: v.clone(),
            expected: None,
        }),
        ("put", [b, k, v, e]) => Ok(Request::Put {
            bucket: bucket_of(b)?,
            key: key_of(k)?,
            value: v.clone(),
            expected: Some(version_of(e, "ExpectedVersion")?),
        }),
        ("delete", [b, k]) => Ok(Request::Delete {
            bucket: bucket_of(b)?,
            key: key_of(k)?,
        }),
        ("create", [b]) => Ok(Request::Create {
            bucket: bucket_of(b)?,
        }),
        ("list", [b, p, l, rest @ ..]) if rest.len() <= 1 => {
            let prefix = match p {
                Term::Binary(b) => b.clone(),
                _ => return Err(format!("the prefix must be a binary, not {p}")),
            };
            let limit = version_of(l, "Limit")?.min(MAX_LIST as u64) as usize;
            let after = match rest.first() {
                None => None,
                Some(Term::Binary(a)) => Some(a.clone()),
                Some(a) => return Err(format!("StartAfter must be a binary key, not {a}")),
            };
            Ok(Request::List {
                bucket: bucket_of(b)?,
                prefix,
                limit,
                after,
            })
        }
        _ => Err(format!("unknown request {t}")),
    }
}

fn error(reason: Term) -> Term {
    tuple(vec![atom("error"), reason])
}

fn badarg(why: &str) -> Term {
    error(tuple(vec![atom("badarg"), binary(why.to_owned())]))
}

fn lag_term(lag: &Lag) -> Term {
    map(vec![
        ("versions", int(lag.versions as i64)),
        ("ms", int(lag.ms as i64)),
    ])
}

/// The reply for a failed call to another data node.
pub fn unavailable(node: &NodeName, e: &CallError) -> Term {
    match e {
        CallError::Timeout => error(tuple(vec![atom("timeout"), atom(node.as_str())])),
        _ => error(tuple(vec![atom("unavailable"), atom(node.as_str())])),
    }
}

impl DataServer {
    fn replica_lag(&self) -> Option<Lag> {
        match &self.mode {
            Mode::Replica { status, ticktime } => Some(status.lock().expect("lock").lag(*ticktime)),
            Mode::Writer { .. } => None,
        }
    }

    fn applied(&self) -> u64 {
        match &self.mode {
            Mode::Writer { committer, .. } => committer.head().version,
            Mode::Replica { status, .. } => status.lock().expect("lock").applied,
        }
    }

    fn contact(&self) -> Option<NodeName> {
        match &self.mode {
            Mode::Writer { .. } => None,
            Mode::Replica { status, .. } => status
                .lock()
                .expect("lock")
                .contact
                .as_deref()
                .and_then(|c| NodeName::parse(c).ok()),
        }
    }

    /// A read answered from the local store; marked stale on a cut-off replica.
    fn read(&self, req: &Request) -> Term {
        let reply = match req {
            Request::Get { bucket, key, .. } => match self.store.get(bucket, key) {
                Ok(Some((value, version))) => {
                    match crate::dist::term::decode_exact(&Bytes::from(value)) {
                        Ok(v) => tuple(vec![atom("ok"), v, int(version as i64)]),
                        Err(e) => error(tuple(vec![
                            atom("store"),
                            binary(format!("undecodable value: {e}")),
                        ])),
                    }
                }
                Ok(None) => atom("not_found"),
                Err(e) => error(tuple(vec![atom("store"), binary(e.to_string())])),
            },
            Request::List {
                bucket,
                prefix,
                limit,
                after,
            } => match self
                .store
                .list(bucket, prefix, *limit, MAX_LIST_BYTES, after.as_deref())
            {
                Ok(entries) => {
                    let mut items = Vec::with_capacity(entries.len());
                    for e in entries {
                        let v = crate::dist::term::decode_exact(&Bytes::from(e.value))
                            .unwrap_or_else(|_| atom("undefined"));
                        items.push(tuple(vec![binary(e.key), v, int(e.version as i64)]));
                    }
                    tuple(vec![atom("ok"), list(items)])
                }
                Err(e) => error(tuple(vec![atom("store"), binary(e.to_string())])),
            },
            Request::Buckets => match self.store.buckets() {
                Ok(b) => tuple(vec![atom("ok"), list(b.into_iter().map(binary).collect())]),
                Err(e) => error(tuple(vec![atom("store"), binary(e.to_string())])),
            },
            _ => return badarg("not a read"),
        };
        match self.replica_lag() {
            Some(lag) if lag.stale => tuple(vec![atom("stale"), lag_term(&lag), reply]),
            _ => reply,
        }
    }

    fn status(&self) -> Term {
        let meta = self.store.meta().ok();
        let entries = self.store.len().unwrap_or(0);
        match &self.mode {
            Mode::Writer {
                committer,
                bulk_port,
            } => {
                let head = committer.head();
                tuple(vec![
                    atom("ok"),
                    map(vec![
                        ("role", atom("writer")),
                        ("version", int(head.version as i64)),
                        ("head", int(head.version as i64)),
                        ("entries", int(entries as i64)),
                        ("log_floor", int(meta.map_or(0, |m| m.log_floor) as i64)),
                        ("lag_versions", int(0)),
                        ("lag_ms", int(0)),
                        ("stale", atom("false")),
                        ("bulk_port", int(*bulk_port as i64)),
                        ("store", binary(self.store.path().display().to_string())),
                    ]),
                ])
            }
            Mode::Replica { status, ticktime } => {
                let s = status.lock().expect("lock").clone();
                let lag = s.lag(*ticktime);
                tuple(vec![
                    atom("ok"),
                    map(vec![
                        ("role", atom("replica")),
                        ("version", int(s.applied as i64)),
                        ("head", int(s.head as i64)),
                        ("entries", int(entries as i64)),
                        ("lag_versions", int(lag.versions as i64)),
                        ("lag_ms", int(lag.ms as i64)),
                        ("stale", atom(if lag.stale { "true" } else { "false" })),
                        ("phase", atom(s.phase.as_str())),
                        ("waiting", int(self.waiting as i64)),
                        (
                            "contact",
                            s.contact.as_deref().map_or(atom("undefined"), atom),
                        ),
                        ("snapshots", int(s.snapshots as i64)),
                        ("resumes", int(s.resumes as i64)),
                        ("resyncs", int(s.resyncs as i64)),
                        ("last_error", s.last_error.map_or(atom("undefined"), binary)),
                        ("store", binary(self.store.path().display().to_string())),
                    ]),
                ])
            }
        }
    }

    /// Sends `request` to `to`'s data process in a task and replies with its answer.
    fn forward(&self, ctx: &Ctx<'_>, from: &From, to: NodeName, request: Term) -> Call {
        if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            return Call::Reply(error(atom("overloaded")));
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let node = ctx.node().clone();
        let from = from.clone();
        let in_flight = self.in_flight.clone();
        ctx.spawn(async move {
            let reply = match node
                .call(&Dest::name(NAME, &to), request, FORWARD_TIMEOUT)
                .await
            {
                Ok(r) => r,
                Err(e) => unavailable(&to, &e),
            };
            let _ = node.reply(&from, reply);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        Call::NoReply
    }

    fn write_locally(&self, ctx: &Ctx<'_>, from: &From, req: Request) -> Call {
        let Mode::Writer { committer, .. } = &self.mode else {
            return Call::Reply(badarg("not a writer"));
        };
        let (write, is_put) = match req {
            Request::Put {
                bucket,
                key,
                value,
                expected,
            } => {
                let etf = crate::dist::term::encode_to_vec(&value);
                if etf.len() > self.max_value {
                    return Call::Reply(error(tuple(vec![
                        atom("too_large"),
                        int(etf.len() as i64),
                        int(self.max_value as i64),
                    ])));
                }
                (
                    Write::Put {
                        bucket,
                        key: key.to_vec(),
                        value: etf,
                        expected,
                    },
                    true,
                )
            }
            Request::Delete { bucket, key } => (
                Write::Delete {
                    bucket,
                    key: key.to_vec(),
                },
                false,
            ),
            Request::Create { bucket } => (Write::Create { bucket }, false),
            _ => return Call::Reply(badarg("not a write")),
        };
        let node = ctx.node().clone();
        let reply_to = from.clone();
        let submitted = committer.submit(
            write,
            Box::new(move |outcome| {
                let reply = match outcome {
                    Ok(Outcome::Written(v)) if is_put => tuple(vec![atom("ok"), int(v as i64)]),
                    Ok(Outcome::Written(_)) | Ok(Outcome::Unchanged) => atom("ok"),
                    Ok(Outcome::Conflict(c)) => error(tuple(vec![atom("conflict"), int(c as i64)])),
                    Err(e) => error(tuple(vec![atom("store"), binary(e.to_string())])),
                };
                let _ = node.reply(&reply_to, reply);
            }),
        );
        match submitted {
            Ok(()) => Call::NoReply,
            Err(_) => Call::Reply(error(atom("overloaded"))),
        }
    }

    fn serve(
        &mut self,
        ctx: &Ctx<'_>,
        from: &From,
        req: Request,
        raw: Term,
        hops: Vec<String>,
    ) -> Call {
        // Where does the bucket live?
        if let Some(bucket) = req.bucket() {
            let owner = match self.routes.decide(bucket) {
                Decision::NoRoute => {
                    return Call::Reply(error(tuple(vec![
                        atom("no_route"),
                        binary(bucket.to_owned()),
                    ])))
                }
                Decision::Local => None,
                Decision::Owner(n) => Some(n),
            };
            let mine = match (&self.mode, &owner) {
                (_, None) => true,
                (Mode::Writer { .. }, Some(n)) => *n == self.me,
                (Mode::Replica { .. }, Some(n)) => Some(n) == self.contact().as_ref(),
            };
            if !mine {
                let owner = owner.expect("not local");
                let mut hops = hops;
                hops.push(self.me.to_string());
                let fwd = tuple(vec![
                    atom("forward"),
                    list(hops.iter().map(|h| atom(h)).collect()),
                    raw,
                ]);
                return self.forward(ctx, from, owner, fwd);
            }
        }
        match (&self.mode, &req) {
            (Mode::Writer { .. }, r) if r.is_write() => self.write_locally(ctx, from, req),
            (Mode::Replica { .. }, r) if r.is_write() => match self.contact() {
                Some(contact) => self.forward(ctx, from, contact, raw),
                None => Call::Reply(error(tuple(vec![
                    atom("unavailable"),
                    atom("data_contact"),
                ]))),
            },
            (_, Request::Get { min: Some(min), .. }) if *min > self.applied() => {
                if let Mode::Writer { .. } = self.mode {
                    return Call::Reply(error(tuple(vec![
                        atom("unknown_version"),
                        int(self.applied() as i64),
                    ])));
                }
                if self.waiting >= MAX_WAITERS {
                    return Call::Reply(error(atom("overloaded")));
                }
                self.waiters.entry(*min).or_default().push((
                    from.clone(),
                    raw,
                    Instant::now() + MIN_VERSION_WAIT,
                ));
                self.waiting += 1;
                if !self.expiry_armed {
                    self.expiry_armed = true;
                    ctx.send_after(Duration::from_millis(100), atom("$expire_waits"));
                }
                Call::NoReply
            }
            (_, Request::Status) => Call::Reply(self.status()),
            (Mode::Writer { bulk_port, .. }, Request::BulkEndpoint) => {
                Call::Reply(tuple(vec![atom("ok"), int(*bulk_port as i64)]))
            }
            (Mode::Replica { .. }, Request::BulkEndpoint) => Call::Reply(badarg("not a writer")),
            _ => Call::Reply(self.read(&req)),
        }
    }

    fn release_waiters(&mut self, ctx: &Ctx<'_>, upto: u64) {
        let later = match upto.checked_add(1) {
            Some(next) => self.waiters.split_off(&next),
            None => BTreeMap::new(),
        };
        let ready = std::mem::replace(&mut self.waiters, later);
        for (_, ws) in ready {
            for (from, raw, _) in ws {
                self.waiting -= 1;
                let reply = match parse_request(&raw) {
                    Ok(req) => self.read(&req),
                    Err(why) => badarg(&why),
                };
                ctx.reply(&from, reply);
            }
        }
    }
}

impl Process for DataServer {
    fn name(&self) -> String {
        NAME.into()
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, from: &From, request: Term) -> Call {
        // `{forward, Hops, Request}` from another data node.
        let (raw, hops) = match request.as_tuple() {
            Some([verb, hops, inner]) if verb.is_atom("forward") => {
                let hops: Vec<String> = hops
                    .as_list()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Term::as_atom)
                    .map(str::to_owned)
                    .collect();
                if hops.iter().any(|h| h == self.me.as_str()) || hops.len() >= MAX_HOPS {
                    let mut path = hops;
                    path.push(self.me.to_string());
                    return Call::Reply(error(tuple(vec![
                        atom("routing_loop"),
                        list(path.iter().map(|h| atom(h)).collect()),
                    ])));
                }
                (inner.clone(), hops)
            }
            _ => (request, Vec::new()),
        };
        match parse_request(&raw) {
            Ok(req) => self.serve(ctx, from, req, raw, hops),
            Err(why) if why.starts_with("unknown request") => {
                crate::dist::process::unknown_call(raw)
            }
            Err(why) => Call::Reply(badarg(&why)),
        }
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some([tag, v]) = msg.as_tuple() {
            if tag.is_atom("$applied") {
                // Anyone who can reach the node can send this: it is only a wake-up, and the
                // version that counts is the one the replica has applied.
                if v.as_int().is_some() {
                    let applied = self.applied();
                    self.release_waiters(ctx, applied);
                }
                return Flow::Continue;
            }
        }
        if msg.is_atom("$expire_waits") {
            self.expiry_armed = false;
            let now = Instant::now();
            let applied = self.applied();
            self.release_waiters(ctx, applied);
            for ws in self.waiters.values_mut() {
                ws.retain(|(from, _, deadline)| {
                    if *deadline <= now {
                        ctx.reply(
                            from,
                            error(tuple(vec![atom("timeout"), int(applied as i64)])),
                        );
                        false
                    } else {
                        true
                    }
                });
            }
            self.waiters.retain(|_, ws| !ws.is_empty());
            self.waiting = self.waiters.values().map(Vec::len).sum();
            if self.waiting > 0 {
                self.expiry_armed = true;
                ctx.send_after(Duration::from_millis(100), atom("$expire_waits"));
            }
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        match self.status().as_tuple() {
            Some([_, m]) => m.clone(),
            _ => atom("undefined"),
        }
    }
}

/// Starts the data process on `node`.
///
/// The process is permanent: should it ever stop (a bug, `exit(Pid, kill)` from a peer), a
/// fresh one over the same store takes its name at once, as a supervisor would restart it;
/// reads waiting for a version are lost with it (their callers time out).
pub fn start(node: &Node, server: DataServer) -> Result<(), crate::dist::process::SpawnError> {
    if node.is_registered(NAME) {
        return Err(crate::dist::process::SpawnError::NameTaken(NAME.into()));
    }
    let (store, mode, routes, me, max_value) = (
        server.store.clone(),
        server.mode.clone(),
        server.routes.clone(),
        server.me.clone(),
        server.max_value,
    );
    let first = std::sync::Mutex::new(Some(server));
    node.spawn_permanent(&[NAME], move || {
        first.lock().expect("lock").take().unwrap_or_else(|| {
            DataServer::new(
                store.clone(),
                mode.clone(),
                routes.clone(),
                me.clone(),
                max_value,
            )
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Term {
        binary(s.to_owned())
    }

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_request(&tuple(vec![atom("get"), b("players"), b("42")])).unwrap(),
            Request::Get {
                bucket: "players".into(),
                key: Bytes::from_static(b"42"),
                min: None
            }
        );
        assert_eq!(
            parse_request(&tuple(vec![atom("get"), atom("players"), b("42"), int(7)])).unwrap(),
            Request::Get {
                bucket: "players".into(),
                key: Bytes::from_static(b"42"),
                min: Some(7)
            }
        );
        assert!(matches!(
            parse_request(&tuple(vec![atom("put"), b("p"), b("k"), int(1), int(0)])).unwrap(),
            Request::Put {
                expected: Some(0),
                ..
            }
        ));
        assert!(matches!(
            parse_request(&tuple(vec![atom("list"), b("p"), b(""), int(1_000_000)])).unwrap(),
            Request::List {
                limit: MAX_LIST,
                ..
            }
        ));
        assert_eq!(parse_request(&atom("buckets")).unwrap(), Request::Buckets);
        let e = parse_request(&tuple(vec![atom("get"), b("p"), int(42)])).unwrap_err();
        assert!(e.contains("the key must be a binary"), "{e}");
        let e = parse_request(&tuple(vec![atom("get"), b(""), b("k")])).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = parse_request(&tuple(vec![atom("get"), b(&"x".repeat(300)), b("k")])).unwrap_err();
        assert!(e.contains("limit is 255"), "{e}");
        let e =
            parse_request(&tuple(vec![atom("put"), b("p"), b("k"), int(1), int(-1)])).unwrap_err();
        assert!(e.contains("ExpectedVersion"), "{e}");
        let e = parse_request(&atom("frobnicate")).unwrap_err();
        assert!(e.starts_with("unknown request"), "{e}");
    }
}
