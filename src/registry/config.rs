//! Cluster-wide shared configuration (seed 002's "config sharing": service states, switches,
//! figures every node should see), with versions and watches.
//!
//! # Where it lives, and what a partition does
//! - **One holder:** the `cluster_config` process on the beacon node, the one node every node
//!   already knows. It keeps every key with the version of its last change, and writes the
//!   whole set to `<data dir>/config.etf` (write, fsync, rename) before it answers a change, so
//!   an acknowledged `set` survives a restart of the holder.
//! - **Watches are pushed.** A watcher gets the current set, then
//!   `{cluster_config, Key, Value | deleted, Version}` for every change under its prefix. Each
//!   node's [`Cache`] is such a watcher, so the library reads config locally.
//! - **Under partition** the side without the holder cannot change the config (`set` fails
//!   with a timeout or `noconnection`), and its caches keep the last values they saw (stale but
//!   readable). When the holder is reachable again each cache watches again and gets the
//!   current set. Writes are never merged: there is one writer, so there is nothing to merge.
//!
//! Calls (`gen_server:call({cluster_config, Beacon}, Request)`), keys being binaries (atoms are
//! taken as their text):
//!
//! | request | reply |
//! |---|---|
//! | `{get, Key}` | `{ok, Value, Version}` \| `{error, not_found}` |
//! | `{set, Key, Value}` | `{ok, Version}` |
//! | `{delete, Key}` | `{ok, Version}` \| `{error, not_found}` |
//! | `{list, Prefix}` | `{ok, Version, [{Key, Value, Version}]}` |
//! | `{watch, Pid, Prefix}` | `{ok, Version, [{Key, Value, Version}]}`, then pushes to Pid |
//! | `{unwatch, Pid}` | `ok` |

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::dist::node::{Dest, From};
use crate::dist::process::{unknown_call, Call, Ctx, Flow, Process};
use crate::dist::term::{
    atom, binary, decode_exact, encode_to_vec, int, list, tuple, Pid, Ref, Term,
};
use crate::dist::{CallError, Node, NodeEvent, NodeName};

/// The holder's registered name.
pub const NAME: &str = "cluster_config";
/// The cache's registered name on every node.
pub const CACHE_NAME: &str = "cluster_config_cache";
/// The most keys the holder keeps.
pub const MAX_KEYS: usize = 100_000;
/// The largest value, encoded.
pub const MAX_VALUE: usize = 1 << 20;
/// The longest key.
pub const MAX_KEY: usize = 1024;
/// The most watchers.
pub const MAX_WATCHERS: usize = 10_000;
const FILE: &str = "config.etf";

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigStoreError {
    /// It could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a config file.
    #[error("{path} is not a cluster config file: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
}

type Entries = BTreeMap<String, (u64, Term)>;

/// Reads `<dir>/config.etf` (absent: empty).
pub fn load(dir: &Path) -> Result<(u64, Entries), ConfigStoreError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, BTreeMap::new())),
        Err(source) => return Err(ConfigStoreError::Io { path, source }),
    };
    let invalid = |why: String| ConfigStoreError::Invalid {
        path: path.clone(),
        why,
    };
    let term = decode_exact(&Bytes::from(bytes)).map_err(|e| invalid(e.to_string()))?;
    let Some([tag, fmt, Term::Int(version), items]) = term.as_tuple() else {
        return Err(invalid("not {cluster_config, 1, Version, Items}".into()));
    };
    if !tag.is_atom("cluster_config") || fmt.as_int() != Some(1) || *version < 0 {
        return Err(invalid("not {cluster_config, 1, Version, Items}".into()));
    }
    let mut entries = BTreeMap::new();
    for item in items.as_list().unwrap_or_default() {
        match item.as_tuple() {
            Some([k, Term::Int(v), value]) if *v >= 0 => {
                let Some(k) = key_text(k) else {
                    return Err(invalid(format!("bad key {k}")));
                };
                entries.insert(k, (*v as u64, value.clone()));
            }
            _ => return Err(invalid(format!("bad item {item}"))),
        }
    }
    Ok((*version as u64, entries))
}

fn save(dir: &Path, version: u64, entries: &Entries) -> Result<(), ConfigStoreError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ConfigStoreError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let term = tuple(vec![
        atom("cluster_config"),
        int(1),
        int(version as i64),
        list(
            entries
                .iter()
                .map(|(k, (v, val))| item(k, *v, val))
                .collect(),
        ),
    ]);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let path = dir.join(FILE);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&encode_to_vec(&term)).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn item(k: &str, v: u64, val: &Term) -> Term {
    tuple(vec![binary(k.to_owned()), int(v as i64), val.clone()])
}

fn key_text(k: &Term) -> Option<String> {
    let s = match k {
        Term::Atom(a) => a.as_str().to_owned(),
        Term::Binary(b) => String::from_utf8(b.to_vec()).ok()?,
        _ => return None,
    };
    (!s.is_empty() && s.len() <= MAX_KEY).then_some(s)
}

fn prefix_text(p: &Term) -> Option<String> {
    match p {
        Term::Binary(b) if b.is_empty() => Some(String::new()),
        Term::List(l) if l.is_empty() => Some(String::new()),
        _ => key_text(p),
    }
}

struct Watcher {
    pid: Pid,
    prefix: String,
}

/// The holder process.
pub struct Holder {
    dir: PathBuf,
    version: u64,
    entries: Entries,
    watchers: HashMap<Ref, Watcher>,
}

impl Holder {
    /// A holder over `dir`, loading what is there.
    pub fn open(dir: &Path) -> Result<Holder, ConfigStoreError> {
        let (version, entries) = load(dir)?;
        Ok(Holder {
            dir: dir.to_owned(),
            version,
            entries,
            watchers: HashMap::new(),
        })
    }

    fn listing(&self, prefix: &str) -> Term {
        tuple(vec![
            atom("ok"),
            int(self.version as i64),
            list(
                self.entries
                    .range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, (v, val))| item(k, *v, val))
                    .collect(),
            ),
        ])
    }

    fn change(&mut self, ctx: &Ctx<'_>, key: String, value: Option<Term>) -> Term {
        let old = match &value {
            Some(v) => self
                .entries
                .insert(key.clone(), (self.version + 1, v.clone())),
            None => self.entries.remove(&key),
        };
        if value.is_none() && old.is_none() {
            return tuple(vec![atom("error"), atom("not_found")]);
        }
        let version = self.version + 1;
        if let Err(e) = save(&self.dir, version, &self.entries) {
            // Not durable: undo, and say so.
            match old {
                Some(o) => self.entries.insert(key, o),
                None => self.entries.remove(&key),
            };
            warn!("config not saved: {e}");
            return tuple(vec![atom("error"), binary(e.to_string())]);
        }
        self.version = version;
        let push = tuple(vec![
            atom("cluster_config"),
            binary(key.clone()),
            value.unwrap_or_else(|| atom("deleted")),
            int(version as i64),
        ]);
        for w in self.watchers.values() {
            if key.starts_with(&w.prefix) {
                let _ = ctx.send(&Dest::Pid(w.pid.clone()), push.clone());
            }
        }
        tuple(vec![atom("ok"), int(version as i64)])
    }
}

fn bad(why: impl Into<String>) -> Call {
    Call::Reply(tuple(vec![
        atom("error"),
        tuple(vec![atom("badarg"), binary(why.into())]),
    ]))
}

impl Process for Holder {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        let Some(items) = request.as_tuple() else {
            return unknown_call(request);
        };
        let tag = items.first().and_then(Term::as_atom).unwrap_or("");
        let key = |k: &Term| {
            key_text(k).ok_or_else(|| {
                format!("{tag}: the key {k} is not a non-empty binary or atom of at most {MAX_KEY} bytes")
            })
        };
        match (tag, items) {
            ("get", [_, k]) => match key(k) {
                Ok(k) => Call::Reply(match self.entries.get(&k) {
                    Some((v, val)) => tuple(vec![atom("ok"), val.clone(), int(*v as i64)]),
                    None => tuple(vec![atom("error"), atom("not_found")]),
                }),
                Err(e) => bad(e),
            },
            ("set", [_, k, value]) => {
                let k = match key(k) {
                    Ok(k) => k,
                    Err(e) => return bad(e),
                };
                if crate::dist::term::encoded_len(value) > MAX_VALUE {
                    return bad(format!("set: the value is larger than {MAX_VALUE} bytes"));
                }
                if !self.entries.contains_key(&k) && self.entries.len() >= MAX_KEYS {
                    return bad(format!("set: the config holds {MAX_KEYS} keys already"));
                }
                Call::Reply(self.change(ctx, k, Some(value.clone())))
            }
            ("delete", [_, k]) => match key(k) {
                Ok(k) => Call::Reply(self.change(ctx, k, None)),
                Err(e) => bad(e),
            },
            ("list", [_, p]) => match prefix_text(p) {
                Some(p) => Call::Reply(self.listing(&p)),
                None => bad("list: the prefix is not a binary"),
            },
            ("watch", [_, Term::Pid(pid), p]) => {
                let Some(prefix) = prefix_text(p) else {
                    return bad("watch: the prefix is not a binary");
                };
                if self.watchers.len() >= MAX_WATCHERS {
                    return bad(format!("watch: {MAX_WATCHERS} watchers already"));
                }
                match ctx.monitor(&Dest::Pid(pid.clone())) {
                    Ok(r) => {
                        self.watchers.insert(
                            r,
                            Watcher {
                                pid: pid.clone(),
                                prefix: prefix.clone(),
                            },
                        );
                        Call::Reply(self.listing(&prefix))
                    }
                    Err(e) => bad(format!("watch: cannot monitor {pid:?}: {e}")),
                }
            }
            ("unwatch", [_, Term::Pid(pid)]) => {
                let gone: Vec<Ref> = self
                    .watchers
                    .iter()
                    .filter(|(_, w)| &w.pid == pid)
                    .map(|(r, _)| r.clone())
                    .collect();
                for r in gone {
                    ctx.demonitor(&r);
                    self.watchers.remove(&r);
                }
                Call::Reply(atom("ok"))
            }
            ("get" | "set" | "delete" | "list" | "watch" | "unwatch", _) => bad(format!(
                "{tag}: wrong number or kind of arguments in {request}"
            )),
            _ => unknown_call(request),
        }
    }

    fn handle_info(&mut self, _ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some([k, Term::Ref(r), _, _, _]) = msg.as_tuple() {
            if k.is_atom("DOWN") {
                self.watchers.remove(r);
            }
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        crate::dist::term::map(vec![
            ("version", int(self.version as i64)),
            ("keys", int(self.entries.len() as i64)),
            ("watchers", int(self.watchers.len() as i64)),
            ("file", binary(self.dir.join(FILE).display().to_string())),
        ])
    }
}

/// Starts the holder on `node` (the beacon), over `dir`. Fails if the file there is not a
/// config file, naming it; the file is left untouched.
pub fn start_holder(node: &Node, dir: &Path) -> Result<PathBuf, ConfigStoreError> {
    // Read once now so that a bad file stops the start with its reason.
    Holder::open(dir)?;
    let dir = dir.to_owned();
    node.spawn_permanent(&[NAME], move || match Holder::open(&dir) {
        Ok(h) => h,
        Err(e) => {
            warn!("{e}; the config starts empty");
            Holder {
                dir: dir.clone(),
                version: 0,
                entries: BTreeMap::new(),
                watchers: HashMap::new(),
            }
        }
    });
    info!("shared config in {}", FILE);
    Ok(PathBuf::from(FILE))
}

/// Why a config operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The holder did not answer.
    #[error("the config holder did not answer: {0}")]
    Call(#[from] CallError),
    /// The holder refused.
    #[error("{0}")]
    Refused(String),
    /// The key is not set.
    #[error("no such key")]
    NotFound,
}

/// One config value with the version of its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Term,
    /// The version of its last change.
    pub version: u64,
}

/// Talks to the holder.
#[derive(Clone)]
pub struct ConfigClient {
    node: Node,
    holder: NodeName,
    timeout: Duration,
}

impl ConfigClient {
    /// A client of the holder on `holder`.
    pub fn new(node: Node, holder: NodeName) -> ConfigClient {
        ConfigClient {
            node,
            holder,
            timeout: Duration::from_secs(5),
        }
    }

    async fn call(&self, req: Term) -> Result<Term, ConfigError> {
        let reply = self
            .node
            .call(&Dest::name(NAME, &self.holder), req, self.timeout)
            .await?;
        match reply.as_tuple() {
            Some([e, why]) if e.is_atom("error") && why.is_atom("not_found") => {
                Err(ConfigError::NotFound)
            }
            Some([e, why]) if e.is_atom("error") => {
                Err(ConfigError::Refused(match why.as_tuple() {
                    Some([_, text]) => text.as_text().unwrap_or_else(|| text.to_string()),
                    _ => why.to_string(),
                }))
            }
            _ => Ok(reply),
        }
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Value, ConfigError> {
        let reply = self
            .call(tuple(vec![atom("get"), binary(key.to_owned())]))
            .await?;
        match reply.as_tuple() {
            Some([_, value, Term::Int(v)]) => Ok(Value {
                key: key.to_owned(),
                value: value.clone(),
                version: *v as u64,
            }),
            _ => Err(ConfigError::Refused(format!("unexpected answer {reply}"))),
        }
    }

    /// Sets `key`; returns the new version.
    pub async fn set(&self, key: &str, value: Term) -> Result<u64, ConfigError> {
        let reply = self
            .call(tuple(vec![atom("set"), binary(key.to_owned()), value]))
            .await?;
        version_of(&reply)
    }

    /// Deletes `key`; returns the new version.
    pub async fn delete(&self, key: &str) -> Result<u64, ConfigError> {
        let reply = self
            .call(tuple(vec![atom("delete"), binary(key.to_owned())]))
            .await?;
        version_of(&reply)
    }

    /// Every key under `prefix`, with the config's version.
    pub async fn list(&self, prefix: &str) -> Result<(u64, Vec<Value>), ConfigError> {
        let reply = self
            .call(tuple(vec![atom("list"), binary(prefix.to_owned())]))
            .await?;
        listing(&reply)
    }

    /// Watches `prefix` from `pid`: the current values now, then pushes to `pid`.
    pub async fn watch(&self, pid: &Pid, prefix: &str) -> Result<(u64, Vec<Value>), ConfigError> {
        let reply = self
            .call(tuple(vec![
                atom("watch"),
                Term::Pid(pid.clone()),
                binary(prefix.to_owned()),
            ]))
            .await?;
        listing(&reply)
    }
}

fn version_of(reply: &Term) -> Result<u64, ConfigError> {
    match reply.as_tuple() {
        Some([ok, Term::Int(v)]) if ok.is_atom("ok") => Ok(*v as u64),
        _ => Err(ConfigError::Refused(format!("unexpected answer {reply}"))),
    }
}

fn listing(reply: &Term) -> Result<(u64, Vec<Value>), ConfigError> {
    let Some([ok, Term::Int(version), items]) = reply.as_tuple() else {
        return Err(ConfigError::Refused(format!("unexpected answer {reply}")));
    };
    if !ok.is_atom("ok") {
        return Err(ConfigError::Refused(format!("unexpected answer {reply}")));
    }
    let mut out = Vec::new();
    for i in items.as_list().unwrap_or_default() {
        if let Some([k, Term::Int(v), value]) = i.as_tuple() {
            if let Some(key) = key_text(k) {
                out.push(Value {
                    key,
                    value: value.clone(),
                    version: *v as u64,
                });
            }
        }
    }
    Ok((*version as u64, out))
}

/// A push from the holder: `{cluster_config, Key, Value | deleted, Version}`.
pub fn parse_push(msg: &Term) -> Option<(String, Option<Term>, u64)> {
    match msg.as_tuple()? {
        [tag, k, value, Term::Int(v)] if tag.is_atom("cluster_config") => Some((
            key_text(k)?,
            (!value.is_atom("deleted")).then(|| value.clone()),
            *v as u64,
        )),
        _ => None,
    }
}

/// This node's copy of the config, kept up to date by watching the holder: reads are local,
/// and keep the last values seen while the holder is unreachable.
#[derive(Clone, Default)]
pub struct Cache {
    values: Arc<RwLock<Entries>>,
}

impl Cache {
    /// Starts the cache process on `node`, watching `holder`.
    pub fn start(node: &Node, holder: NodeName) -> Cache {
        let cache = Cache::default();
        let values = cache.values.clone();
        node.spawn_permanent(&[CACHE_NAME], move || CacheProcess {
            holder: holder.clone(),
            values: values.clone(),
        });
        cache
    }

    /// The value of `key`, with its version.
    pub fn get(&self, key: &str) -> Option<(Term, u64)> {
        self.values
            .read()
            .expect("config cache")
            .get(key)
            .map(|(v, t)| (t.clone(), *v))
    }

    /// `key` as an integer.
    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|(t, _)| t.as_int())
    }

    /// `key` as text (a binary, a string or an atom).
    pub fn get_text(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|(t, _)| t.as_atom().map(str::to_owned).or_else(|| t.as_text()))
    }

    /// `key` as a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.0.as_atom()? {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// Every key and value.
    pub fn all(&self) -> Vec<(String, Term, u64)> {
        self.values
            .read()
            .expect("config cache")
            .iter()
            .map(|(k, (v, t))| (k.clone(), t.clone(), *v))
            .collect()
    }
}

struct CacheProcess {
    holder: NodeName,
    values: Arc<RwLock<Entries>>,
}

impl CacheProcess {
    fn watch(&self, ctx: &Ctx<'_>) {
        let client = ConfigClient::new(ctx.node().clone(), self.holder.clone());
        let me = ctx.me();
        let pid = ctx.pid();
        ctx.spawn(async move {
            match client.watch(&pid, "").await {
                Ok((_, values)) => me.post(tuple(vec![
                    atom("cache_snapshot"),
                    list(
                        values
                            .into_iter()
                            .map(|v| item(&v.key, v.version, &v.value))
                            .collect(),
                    ),
                ])),
                Err(e) => debug!("config watch not taken: {e}"),
            }
        });
    }
}

impl Process for CacheProcess {
    fn name(&self) -> String {
        CACHE_NAME.to_owned()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
        if ctx.node().nodes().contains(&self.holder) || ctx.node().name() == &self.holder {
            self.watch(ctx);
        }
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some(NodeEvent::Up { node, .. }) = NodeEvent::from_term(&msg) {
            if node == self.holder {
                self.watch(ctx);
            }
            return Flow::Continue;
        }
        if let Some((k, v, version)) = parse_push(&msg) {
            let mut values = self.values.write().expect("config cache");
            match v {
                Some(v) => {
                    values.insert(k, (version, v));
                }
                None => {
                    values.remove(&k);
                }
            }
            return Flow::Continue;
        }
        if let Some([tag, items]) = msg.as_tuple() {
            if tag.is_atom("cache_snapshot") {
                let mut fresh = BTreeMap::new();
                for i in items.as_list().unwrap_or_default() {
                    if let Some([k, Term::Int(v), value]) = i.as_tuple() {
                        if let Some(k) = key_text(k) {
                            fresh.insert(k, (*v as u64, value.clone()));
                        }
                    }
                }
                *self.values.write().expect("config cache") = fresh;
            }
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        int(self.values.read().expect("config cache").len() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap().0, 0);
        let mut e = BTreeMap::new();
        e.insert("motd".to_owned(), (3, binary("hi")));
        e.insert("max".to_owned(), (4, int(5)));
        save(dir.path(), 4, &e).unwrap();
        let (v, back) = load(dir.path()).unwrap();
        assert_eq!((v, back), (4, e));
        std::fs::write(dir.path().join(FILE), b"garbage").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.etf") && err.contains("not a cluster config"),
            "{err}"
        );
        std::fs::write(
            dir.path().join(FILE),
            encode_to_vec(&tuple(vec![atom("x")])),
        )
        .unwrap();
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn pushes_parse() {
        let p = tuple(vec![atom("cluster_config"), binary("k"), int(1), int(9)]);
        assert_eq!(parse_push(&p), Some(("k".into(), Some(int(1)), 9)));
        let d = tuple(vec![
            atom("cluster_config"),
            binary("k"),
            atom("deleted"),
            int(9),
        ]);
        assert_eq!(parse_push(&d), Some(("k".into(), None, 9)));
        assert_eq!(parse_push(&atom("x")), None);
        assert_eq!(key_text(&int(1)), None);
        assert_eq!(key_text(&binary("")), None);
    }
}
