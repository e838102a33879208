//! The store every data node keeps: an embedded redb file (ACID, MVCC read snapshots, a
//! stable format, pure Rust) in the node's data directory.
//!
//! What it holds:
//! - **entries**: `(bucket, key) → (version, value)`, the value an Erlang term kept as ETF;
//! - **buckets**: the buckets that exist (a line-protocol `CREATE` makes an empty one);
//! - **log** (the writer only): `version → change`, the change stream replicas follow, trimmed
//!   to a retention window;
//! - **meta**: the last version (the writer's head, or the version a replica has applied),
//!   the store's lineage id, and the **digest**.
//!
//! Every write gets the next version. The digest is the wrapping sum of a 128-bit hash of
//! every entry and bucket, so it is kept up to date in O(1) per write, is the same on any
//! node holding the same data whatever order it arrived in, and can be recomputed from the
//! tables at any time: a replica recomputes it on start, and a store whose tables no longer
//! add up to its digest (edited, or damaged) is not trusted. Each logged change carries the
//! writer's digest after it, so a replica checks every change it applies against the writer.
//!
//! This module is synchronous: callers run it on a thread of its own ([`super::commit`]) or
//! in `spawn_blocking`, never on the node's runtime for long.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use xxhash_rust::xxh3::Xxh3;

use super::change::{Change, ChangeError, Op};

/// `(bucket, key)`: entries are kept in bucket, then key order.
type EntryKey = (&'static str, &'static [u8]);
/// `(version, ETF value)`.
type EntryValue = (u64, &'static [u8]);
const ENTRIES: TableDefinition<EntryKey, EntryValue> = TableDefinition::new("entries");
const BUCKETS: TableDefinition<&str, u64> = TableDefinition::new("buckets");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_VERSION: &str = "version";
const META_DIGEST: &str = "digest";
const META_LINEAGE: &str = "lineage";
const META_KIND: &str = "kind";
const META_SOURCE: &str = "source";

/// The longest bucket name, in bytes.
pub const MAX_BUCKET: usize = 255;
/// The longest key, in bytes.
pub const MAX_KEY: usize = 64 * 1024;

/// What a store is for. A store keeps the kind it was created with: a replica's file is not
/// a writer's history, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A data_contact's store: it takes writes and keeps the change log.
    Writer,
    /// A data_service's copy of its data_contact's store.
    Replica,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Writer => "writer",
            Kind::Replica => "replica",
        }
    }
}

/// Errors of the store. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened as a store (not a redb file, damaged, locked…). Nothing
    /// was written to it.
    #[error("cannot open the store {path}: {why}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The file is a store of the other kind.
    #[error("the store {path} holds a {found}'s data, not a {wanted}'s; give this node a data directory of its own")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: String,
        /// What this node needs.
        wanted: &'static str,
    },
    /// A read or write failed.
    #[error("store {path}: {why}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A bucket name or key is empty or too long.
    #[error("{0}")]
    BadInput(String),
    /// A change could not be applied (a replica's stream is broken or diverged).
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// One write, as the writer takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Store `value` (ETF) under `key`; with `expected`, only if the key's version is that
    /// (0: only if absent).
    Put {
        /// The bucket (created if absent).
        bucket: String,
        /// The key.
        key: Vec<u8>,
        /// The value, ETF-encoded.
        value: Vec<u8>,
        /// Compare-and-set: the version the key must have now.
        expected: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: Vec<u8>,
    },
    /// Make an empty bucket (the line protocol's `CREATE`).
    Create {
        /// The bucket.
        bucket: String,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written at this version.
    Written(u64),
    /// Compare-and-set failed: the key's version is this (0: absent).
    Conflict(u64),
    /// Nothing to do (a delete of an absent key, a create of an existing bucket).
    Unchanged,
}

/// What one group commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Each write's outcome, in order.
    pub outcomes: Vec<Outcome>,
    /// The version after the commit.
    pub version: u64,
    /// The digest after the commit.
    pub digest: u128,
}

/// The store's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The last version written (writer) or applied (replica); 0 for none.
    pub version: u64,
    /// The digest at that version.
    pub digest: u128,
    /// The writer's lineage: a random id made when its store was created. A replica holds its
    /// writer's.
    pub lineage: u64,
    /// The oldest version the log still holds (writer), 0 when the log is empty.
    pub log_floor: u64,
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: Vec<u8>,
    /// The version it was written at.
    pub version: u64,
    /// The value (ETF).
    pub value: Vec<u8>,
}

/// The hash of one entry, as the digest sums them.
pub fn entry_hash(bucket: &str, key: &[u8], version: u64, value: &[u8]) -> u128 {
    let mut h = Xxh3::new();
    h.update(b"E");
    h.update(&(bucket.len() as u32).to_be_bytes());
    h.update(bucket.as_bytes());
    h.update(&(key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(&version.to_be_bytes());
    h.update(value);
    h.digest128()
}

/// The hash of one bucket's existence.
pub fn bucket_hash(bucket: &str) -> u128 {
    let mut h = Xxh3::new();
    h.update(b"B");
    h.update(bucket.as_bytes());
    h.digest128()
}

/// Checks a bucket name and key the way every write and read does.
pub fn check_names(bucket: &str, key: Option<&[u8]>) -> Result<(), StoreError> {
    if bucket.is_empty() {
        return Err(StoreError::BadInput("the bucket name is empty".into()));
    }
    if bucket.len() > MAX_BUCKET {
        return Err(StoreError::BadInput(format!(
            "the bucket name is {} bytes; the limit is {MAX_BUCKET}",
            bucket.len()
        )));
    }
    if let Some(key) = key {
        if key.len() > MAX_KEY {
            return Err(StoreError::BadInput(format!(
                "the key is {} bytes; the limit is {MAX_KEY}",
                key.len()
            )));
        }
    }
    Ok(())
}

/// A store file.
///
/// Reads never begin a transaction of their own: redb makes `begin_read` wait while a commit
/// holds the file's header, and a commit can take hundreds of milliseconds while the kernel
/// writes back a gigabyte of snapshot. Instead, whoever commits opens the next read
/// transaction right after (it waits for nobody, being the only writer) and publishes it;
/// reads use the latest published one, which is exactly the last commit.
pub struct Store {
    db: Database,
    path: PathBuf,
    kind: Kind,
    reader: std::sync::Mutex<Option<std::sync::Arc<ReadTransaction>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish()
    }
}

/// The file name inside a data directory.
pub const FILE_NAME: &str = "store.redb";

impl Store {
    /// Opens the store in `dir` (creating the directory and the file when absent). A file that
    /// is not a redb store, or a store of the other kind, is an error and is left untouched.
    pub fn open(dir: &Path, kind: Kind) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let open_err = |why: String| StoreError::Open {
            path: path.clone(),
            why,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| open_err(format!("cannot create {}: {e}", dir.display())))?;
        let exists = path.exists();
        if exists {
            check_magic(&path).map_err(open_err)?;
        }
        let db = Database::builder()
            .create(&path)
            .map_err(|e| open_err(e.to_string()))?;
        let store = Store {
            db,
            path: path.clone(),
            kind,
            reader: std::sync::Mutex::new(None),
        };
        let txn = store.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| store.io(e))?;
            let found = meta
                .get(META_KIND)
                .map_err(|e| store.io(e))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match found {
                Some(k) if k != kind.as_str() => {
                    return Err(StoreError::WrongKind {
                        path,
                        found: k,
                        wanted: kind.as_str(),
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert(META_KIND, kind.as_str().as_bytes())
                        .map_err(|e| store.io(e))?;
                    if kind == Kind::Writer {
                        let lineage: u64 = rand::random::<u64>() | 1;
                        meta.insert(META_LINEAGE, &lineage.to_be_bytes()[..])
                            .map_err(|e| store.io(e))?;
                    }
                }
            }
            txn.open_table(ENTRIES).map_err(|e| store.io(e))?;
            txn.open_table(BUCKETS).map_err(|e| store.io(e))?;
            txn.open_table(LOG).map_err(|e| store.io(e))?;
        }
        store.commit_txn(txn)?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            why: e.to_string(),
        }
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(|e| self.io(e))
    }

    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.io(e))
    }

    /// The latest published read transaction.
    fn reader(&self) -> Result<std::sync::Arc<ReadTransaction>, StoreError> {
        let mut cached = self.reader.lock().expect("reader lock");
        if let Some(r) = cached.as_ref() {
            return Ok(r.clone());
        }
        let r = std::sync::Arc::new(self.begin_read()?);
        *cached = Some(r.clone());
        Ok(r)
    }

    /// Publishes a read transaction at the last commit; called by the committing thread.
    fn publish(&self) {
        if let Ok(r) = self.begin_read() {
            *self.reader.lock().expect("reader lock") = Some(std::sync::Arc::new(r));
        }
    }

    fn commit_txn(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(|e| self.io(e))?;
        self.publish();
        Ok(())
    }

    /// The bookkeeping, as last committed.
    pub fn meta(&self) -> Result<Meta, StoreError> {
        let txn = self.reader()?;
        self.meta_in(&txn)
    }

    fn meta_in(&self, txn: &ReadTransaction) -> Result<Meta, StoreError> {
        let meta = txn.open_table(META).map_err(|e| self.io(e))?;
        let get = |k: &str| -> Result<Vec<u8>, StoreError> {
            Ok(meta
                .get(k)
                .map_err(|e| self.io(e))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default())
        };
        let log = txn.open_table(LOG).map_err(|e| self.io(e))?;
        let log_floor = log
            .first()
            .map_err(|e| self.io(e))?
            .map(|(k, _)| k.value())
            .unwrap_or(0);
        Ok(Meta {
            version: be_u64(&get(META_VERSION)?),
            digest: be_u128(&get(META_DIGEST)?),
            lineage: be_u64(&get(if self.kind == Kind::Writer {
                META_LINEAGE
            } else {
                META_SOURCE
            })?),
            log_floor,
        })
    }

    /// The value and version of `key`.
    pub fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(ENTRIES).map_err(|e| self.io(e))?;
        let got = t.get((bucket, key)).map_err(|e| self.io(e))?;
        Ok(got.map(|g| {
            let (v, value) = g.value();
            (value.to_vec(), v)
        }))
    }

    /// Whether `bucket` exists.
    pub fn has_bucket(&self, bucket: &str) -> Result<bool, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(BUCKETS).map_err(|e| self.io(e))?;
        Ok(t.get(bucket).map_err(|e| self.io(e))?.is_some())
    }

    /// Up to `limit` entries of `bucket` whose keys start with `prefix`, in key order.
    ///
    /// Stops at `max_bytes` of keys and values too (at least one entry is returned); `after`
    /// starts after that key, so a caller pages through a large bucket.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &[u8],
        limit: usize,
        max_bytes: usize,
        after: Option<&[u8]>,
    ) -> Result<Vec<Entry>, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(ENTRIES).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        for item in t.range((bucket, start)..).map_err(|e| self.io(e))? {
            if out.len() >= limit || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            let (k, v) = item.map_err(|e| self.io(e))?;
            let (b, key) = k.value();
            if b != bucket || !key.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            let (version, value) = v.value();
            bytes += key.len() + value.len();
            out.push(Entry {
                bucket: b.to_owned(),
                key: key.to_vec(),
                version,
                value: value.to_vec(),
            });
        }
        Ok(out)
    }

    /// Every bucket with its number of keys.
    pub fn buckets(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(BUCKETS).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.io(e))? {
            let (k, _) = item.map_err(|e| self.io(e))?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    /// The number of entries.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(ENTRIES).map_err(|e| self.io(e))?;
        t.len().map_err(|e| self.io(e))
    }

    /// Whether the store has no entries.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Recomputes the digest from the tables (a full scan) and returns it with the digest the
    /// store has on record. They differ when the file was edited or damaged.
    pub fn verify(&self) -> Result<(u128, u128), StoreError> {
        let txn = self.begin_read()?;
        let recorded = self.meta_in(&txn)?.digest;
        let mut sum = 0u128;
        let t = txn.open_table(ENTRIES).map_err(|e| self.io(e))?;
        for item in t.iter().map_err(|e| self.io(e))? {
            let (k, v) = item.map_err(|e| self.io(e))?;
            let (b, key) = k.value();
            let (version, value) = v.value();
            sum = sum.wrapping_add(entry_hash(b, key, version, value));
        }
        let t = txn.open_table(BUCKETS).map_err(|e| self.io(e))?;
        for item in t.iter().map_err(|e| self.io(e))? {
            let (k, _) = item.map_err(|e| self.io(e))?;
            sum = sum.wrapping_add(bucket_hash(k.value()));
        }
        Ok((sum, recorded))
    }

    // ---- the writer ----

    /// Applies `writes` in one durable transaction (one fsync for the whole batch: group
    /// commit) and returns each write's outcome with the new head. Keeps at most `retention`
    /// versions of log.
    pub fn commit(
        &self,
        writes: &[Write],
        now_ms: u64,
        retention: u64,
    ) -> Result<Committed, StoreError> {
        debug_assert_eq!(self.kind, Kind::Writer);
        let txn = self.begin_write()?;
        let mut outcomes = Vec::with_capacity(writes.len());
        let (head, digest);
        {
            let mut tables = Tables::open(self, &txn)?;
            let mut version = tables.version;
            for w in writes {
                let op = match w {
                    Write::Put {
                        bucket,
                        key,
                        value,
                        expected,
                    } => {
                        if let Some(expected) = expected {
                            let current = tables.current(self, bucket, key)?;
                            if current != *expected {
                                outcomes.push(Outcome::Conflict(current));
                                continue;
                            }
                        }
                        Op::Put {
                            bucket: bucket.clone(),
                            key: key.clone(),
                            value: value.clone(),
                        }
                    }
                    Write::Delete { bucket, key } => {
                        if tables.current(self, bucket, key)? == 0 {
                            outcomes.push(Outcome::Unchanged);
                            continue;
                        }
                        Op::Delete {
                            bucket: bucket.clone(),
                            key: key.clone(),
                        }
                    }
                    Write::Create { bucket } => {
                        if tables.has_bucket(self, bucket)? {
                            outcomes.push(Outcome::Unchanged);
                            continue;
                        }
                        Op::Create {
                            bucket: bucket.clone(),
                        }
                    }
                };
                version += 1;
                tables.apply(self, version, &op)?;
                let change = Change {
                    version,
                    time_ms: now_ms,
                    digest: tables.digest,
                    op,
                };
                tables
                    .log
                    .insert(version, change.encode().as_slice())
                    .map_err(|e| self.io(e))?;
                outcomes.push(Outcome::Written(version));
            }
            tables.version = version;
            // Trim the log to the retention window, a bounded amount per commit.
            let keep_from = version.saturating_sub(retention.max(1)) + 1;
            let mut trimmed = 0;
            while trimmed < 10_000 {
                let first = tables
                    .log
                    .first()
                    .map_err(|e| self.io(e))?
                    .map(|(k, _)| k.value());
                match first {
                    Some(v) if v < keep_from => {
                        tables.log.remove(v).map_err(|e| self.io(e))?;
                        trimmed += 1;
                    }
                    _ => break,
                }
            }
            tables.save(self)?;
            (head, digest) = (tables.version, tables.digest);
        }
        self.commit_txn(txn)?;
        Ok(Committed {
            outcomes,
            version: head,
            digest,
        })
    }

    /// Up to `max_bytes` (at least one) of logged changes from version `from` on, encoded.
    pub fn log_from(&self, from: u64, max_bytes: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(LOG).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in t.range(from..).map_err(|e| self.io(e))? {
            let (_, v) = item.map_err(|e| self.io(e))?;
            bytes += v.value().len();
            out.push(v.value().to_vec());
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// The logged change at `version`.
    pub fn logged(&self, version: u64) -> Result<Option<Change>, StoreError> {
        let txn = self.reader()?;
        let t = txn.open_table(LOG).map_err(|e| self.io(e))?;
        let got = t.get(version).map_err(|e| self.io(e))?;
        match got {
            Some(v) => Ok(Some(Change::decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// A consistent read view for a snapshot.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        let txn = self.begin_read()?;
        let meta = self.meta_in(&txn)?;
        Ok(Snapshot {
            store: self,
            txn,
            meta,
            buckets_done: false,
            after: None,
        })
    }

    // ---- the replica ----

    /// Empties the replica and marks it as being filled from `lineage`'s snapshot at
    /// `version`. Until [`Store::end_snapshot`], its version is 0, so a restart starts over.
    pub fn begin_snapshot(&self, lineage: u64) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        txn.delete_table(ENTRIES).map_err(|e| self.io(e))?;
        txn.delete_table(BUCKETS).map_err(|e| self.io(e))?;
        {
            txn.open_table(ENTRIES).map_err(|e| self.io(e))?;
            txn.open_table(BUCKETS).map_err(|e| self.io(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
            meta.insert(META_VERSION, &0u64.to_be_bytes()[..])
                .map_err(|e| self.io(e))?;
            meta.insert(META_DIGEST, &0u128.to_be_bytes()[..])
                .map_err(|e| self.io(e))?;
            meta.insert(META_SOURCE, &lineage.to_be_bytes()[..])
                .map_err(|e| self.io(e))?;
        }
        self.commit_txn(txn)
    }

    /// Adds a batch of a snapshot: durable only when asked ([`Store::end_snapshot`] makes the
    /// whole snapshot so).
    pub fn add_snapshot(
        &self,
        buckets: &[String],
        entries: &[Entry],
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| self.io(e))?;
        }
        {
            let mut tables = Tables::open(self, &txn)?;
            for b in buckets {
                if tables
                    .buckets
                    .insert(b.as_str(), 0)
                    .map_err(|e| self.io(e))?
                    .is_none()
                {
                    tables.digest = tables.digest.wrapping_add(bucket_hash(b));
                }
            }
            for e in entries {
                tables
                    .entries
                    .insert(
                        (e.bucket.as_str(), e.key.as_slice()),
                        (e.version, e.value.as_slice()),
                    )
                    .map_err(|x| self.io(x))?;
                tables.digest = tables
                    .digest
                    .wrapping_add(entry_hash(&e.bucket, &e.key, e.version, &e.value));
            }
            tables.save(self)?;
        }
        self.commit_txn(txn)
    }

    /// Ends a snapshot at `version`: durable from here. Returns the digest of what arrived,
    /// which the caller compares with the writer's.
    pub fn end_snapshot(&self, version: u64) -> Result<u128, StoreError> {
        let txn = self.begin_write()?;
        let digest;
        {
            let mut tables = Tables::open(self, &txn)?;
            tables.version = version;
            digest = tables.digest;
            tables.save(self)?;
        }
        self.commit_txn(txn)?;
        Ok(digest)
    }

    /// Applies consecutive changes from the writer's stream in one transaction, checking each
    /// against the writer's digest. `durable` makes the commit wait for the disk; a replica
    /// commits lazily most of the time and durably now and then, since a lost tail is simply
    /// fetched again.
    pub fn apply(&self, changes: &[Change], durable: bool) -> Result<u64, StoreError> {
        let mut txn = self.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| self.io(e))?;
        }
        let version;
        {
            let mut tables = Tables::open(self, &txn)?;
            for c in changes {
                if c.version != tables.version + 1 {
                    return Err(ChangeError::Gap {
                        expected: tables.version + 1,
                        got: c.version,
                    }
                    .into());
                }
                tables.apply(self, c.version, &c.op)?;
                if tables.digest != c.digest {
                    return Err(ChangeError::Diverged { version: c.version }.into());
                }
                tables.version = c.version;
            }
            version = tables.version;
            tables.save(self)?;
        }
        self.commit_txn(txn)?;
        Ok(version)
    }

    /// Makes everything committed so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        self.commit_txn(txn)
    }
}

/// The open tables of one write transaction, with the version and digest being updated.
struct Tables<'t> {
    entries: redb::Table<'t, EntryKey, EntryValue>,
    buckets: redb::Table<'t, &'static str, u64>,
    log: redb::Table<'t, u64, &'static [u8]>,
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    version: u64,
    digest: u128,
}

impl<'t> Tables<'t> {
    fn open(store: &Store, txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        let meta = txn.open_table(META).map_err(|e| store.io(e))?;
        let get = |k: &str| -> Result<Vec<u8>, StoreError> {
            Ok(meta
                .get(k)
                .map_err(|e| store.io(e))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default())
        };
        let version = be_u64(&get(META_VERSION)?);
        let digest = be_u128(&get(META_DIGEST)?);
        Ok(Tables {
            entries: txn.open_table(ENTRIES).map_err(|e| store.io(e))?,
            buckets: txn.open_table(BUCKETS).map_err(|e| store.io(e))?,
            log: txn.open_table(LOG).map_err(|e| store.io(e))?,
            meta,
            version,
            digest,
        })
    }

    fn current(&self, store: &Store, bucket: &str, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .entries
            .get((bucket, key))
            .map_err(|e| store.io(e))?
            .map(|g| g.value().0)
            .unwrap_or(0))
    }

    fn has_bucket(&self, store: &Store, bucket: &str) -> Result<bool, StoreError> {
        Ok(self.buckets.get(bucket).map_err(|e| store.io(e))?.is_some())
    }

    fn apply(&mut self, store: &Store, version: u64, op: &Op) -> Result<(), StoreError> {
        match op {
            Op::Put { bucket, key, value } => {
                if !self.has_bucket(store, bucket)? {
                    self.buckets
                        .insert(bucket.as_str(), version)
                        .map_err(|e| store.io(e))?;
                    self.digest = self.digest.wrapping_add(bucket_hash(bucket));
                }
                let old = self
                    .entries
                    .insert(
                        (bucket.as_str(), key.as_slice()),
                        (version, value.as_slice()),
                    )
                    .map_err(|e| store.io(e))?
                    .map(|g| {
                        let (v, val) = g.value();
                        entry_hash(bucket, key, v, val)
                    });
                if let Some(old) = old {
                    self.digest = self.digest.wrapping_sub(old);
                }
                self.digest = self
                    .digest
                    .wrapping_add(entry_hash(bucket, key, version, value));
            }
            Op::Delete { bucket, key } => {
                let old = self
                    .entries
                    .remove((bucket.as_str(), key.as_slice()))
                    .map_err(|e| store.io(e))?
                    .map(|g| {
                        let (v, val) = g.value();
                        entry_hash(bucket, key, v, val)
                    });
                if let Some(old) = old {
                    self.digest = self.digest.wrapping_sub(old);
                }
            }
            Op::Create { bucket } => {
                if !self.has_bucket(store, bucket)? {
                    self.buckets
                        .insert(bucket.as_str(), version)
                        .map_err(|e| store.io(e))?;
                    self.digest = self.digest.wrapping_add(bucket_hash(bucket));
                }
            }
        }
        Ok(())
    }

    fn save(&mut self, store: &Store) -> Result<(), StoreError> {
        self.meta
            .insert(META_VERSION, &self.version.to_be_bytes()[..])
            .map_err(|e| store.io(e))?;
        self.meta
            .insert(META_DIGEST, &self.digest.to_be_bytes()[..])
            .map_err(|e| store.io(e))?;
        Ok(())
    }
}

/// A consistent view of a writer's store, read in batches.
pub struct Snapshot<'s> {
    store: &'s Store,
    txn: ReadTransaction,
    meta: Meta,
    buckets_done: bool,
    after: Option<(String, Vec<u8>)>,
}

/// One batch of a snapshot.
#[derive(Debug, Default)]
pub struct Batch {
    /// Buckets (all of them come in the first batch).
    pub buckets: Vec<String>,
    /// Entries in key order.
    pub entries: Vec<Entry>,
}

impl Snapshot<'_> {
    /// The version, digest and lineage the snapshot is at.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The next batch of about `max_bytes` (at least one entry), or `None` at the end.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Batch>, StoreError> {
        let store = self.store;
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        if !self.buckets_done {
            let t = self.txn.open_table(BUCKETS).map_err(|e| store.io(e))?;
            for item in t.iter().map_err(|e| store.io(e))? {
                let (k, _) = item.map_err(|e| store.io(e))?;
                bytes += k.value().len() + 8;
                batch.buckets.push(k.value().to_owned());
            }
            self.buckets_done = true;
        }
        let t = self.txn.open_table(ENTRIES).map_err(|e| store.io(e))?;
        let range = match &self.after {
            None => t.range::<(&str, &[u8])>(..).map_err(|e| store.io(e))?,
            Some((b, k)) => t
                .range::<(&str, &[u8])>((
                    std::ops::Bound::Excluded((b.as_str(), k.as_slice())),
                    std::ops::Bound::Unbounded,
                ))
                .map_err(|e| store.io(e))?,
        };
        for item in range {
            let (k, v) = item.map_err(|e| store.io(e))?;
            let (b, key) = k.value();
            let (version, value) = v.value();
            bytes += b.len() + key.len() + value.len() + 24;
            batch.entries.push(Entry {
                bucket: b.to_owned(),
                key: key.to_vec(),
                version,
                value: value.to_vec(),
            });
            if bytes >= max_bytes {
                break;
            }
        }
        if let Some(last) = batch.entries.last() {
            self.after = Some((last.bucket.clone(), last.key.clone()));
        }
        if batch.entries.is_empty() && batch.buckets.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch))
    }
}

/// redb's files start with this.
const REDB_MAGIC: &[u8] = b"redb";

fn check_magic(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut head = [0u8; 9];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the file is empty, not a store (left as it is)".into());
    }
    if n < REDB_MAGIC.len() || &head[..REDB_MAGIC.len()] != REDB_MAGIC {
        return Err("the file is not a redb store (left as it is)".into());
    }
    Ok(())
}

fn be_u64(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn be_u128(b: &[u8]) -> u128 {
    b.try_into().map(u128::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bucket: &str, key: &str, value: &[u8], expected: Option<u64>) -> Write {
        Write::Put {
            bucket: bucket.into(),
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            expected,
        }
    }

    #[test]
    fn writes_get_versions_and_compare_and_set_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Kind::Writer).unwrap();
        let out = s
            .commit(
                &[
                    put("players", "42", b"a", None),
                    put("players", "42", b"b", Some(1)),
                    put("players", "42", b"c", Some(1)),
                    put("players", "7", b"x", Some(0)),
                    Write::Delete {
                        bucket: "players".into(),
                        key: b"nope".to_vec(),
                    },
                    Write::Create {
                        bucket: "players".into(),
                    },
                ],
                1,
                100,
            )
            .unwrap();
        assert_eq!((out.version, out.digest), (3, s.meta().unwrap().digest));
        assert_eq!(
            out.outcomes,
            [
                Outcome::Written(1),
                Outcome::Written(2),
                Outcome::Conflict(2),
                Outcome::Written(3),
                Outcome::Unchanged,
                Outcome::Unchanged
            ]
        );
        assert_eq!(s.get("players", b"42").unwrap(), Some((b"b".to_vec(), 2)));
        assert_eq!(s.meta().unwrap().version, 3);
        let (computed, recorded) = s.verify().unwrap();
        assert_eq!(computed, recorded);
        let listed = s.list("players", b"", 10, usize::MAX, None).unwrap();
        assert_eq!(
            s.list("players", b"", 10, 1, None).unwrap().len(),
            1,
            "the byte budget"
        );
        let rest = s.list("players", b"", 10, usize::MAX, Some(b"42")).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].key, b"7");
        assert_eq!(listed.len(), 2);
        assert_eq!(s.buckets().unwrap(), ["players"]);
        // The log holds every version, each with the digest after it.
        let log = s.log_from(1, usize::MAX).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(
            Change::decode(&log[2]).unwrap().digest,
            s.meta().unwrap().digest
        );
    }

    #[test]
    fn a_replica_fed_a_snapshot_and_the_stream_matches_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let w = Store::open(&dir.path().join("w"), Kind::Writer).unwrap();
        let r = Store::open(&dir.path().join("r"), Kind::Replica).unwrap();
        w.commit(
            &[put("a", "1", b"x", None), put("b", "2", b"y", None)],
            1,
            100,
        )
        .unwrap();
        let mut snap = w.snapshot().unwrap();
        let at = snap.meta();
        r.begin_snapshot(at.lineage).unwrap();
        while let Some(b) = snap.next_batch(1).unwrap() {
            r.add_snapshot(&b.buckets, &b.entries, false).unwrap();
        }
        assert_eq!(r.end_snapshot(at.version).unwrap(), at.digest);
        w.commit(
            &[
                put("a", "1", b"z", None),
                Write::Delete {
                    bucket: "b".into(),
                    key: b"2".to_vec(),
                },
            ],
            2,
            100,
        )
        .unwrap();
        let changes: Vec<Change> = w
            .log_from(at.version + 1, usize::MAX)
            .unwrap()
            .iter()
            .map(|c| Change::decode(c).unwrap())
            .collect();
        assert_eq!(r.apply(&changes, false).unwrap(), 4);
        assert_eq!(r.meta().unwrap().digest, w.meta().unwrap().digest);
        assert_eq!(r.meta().unwrap().lineage, w.meta().unwrap().lineage);
        assert_eq!(r.get("a", b"1").unwrap(), Some((b"z".to_vec(), 3)));
        // Applying again is a gap, not a silent double apply.
        let e = r.apply(&changes, false).unwrap_err().to_string();
        assert!(e.contains("skipped from version 5 to 3"), "{e}");
    }

    #[test]
    fn a_change_that_disagrees_with_the_writers_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = Store::open(&dir.path().join("w"), Kind::Writer).unwrap();
        let r = Store::open(&dir.path().join("r"), Kind::Replica).unwrap();
        w.commit(&[put("a", "1", b"x", None)], 1, 100).unwrap();
        let mut c = Change::decode(&w.log_from(1, usize::MAX).unwrap()[0]).unwrap();
        c.digest ^= 1;
        let e = r.apply(&[c], true).unwrap_err().to_string();
        assert!(e.contains("diverged from its writer at version 1"), "{e}");
        // Nothing of the refused batch was kept.
        assert_eq!(r.meta().unwrap().version, 0);
        assert!(r.get("a", b"1").unwrap().is_none());
    }

    #[test]
    fn the_log_keeps_its_retention_window() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Kind::Writer).unwrap();
        for i in 0..10 {
            s.commit(&[put("a", &i.to_string(), b"x", None)], 1, 4)
                .unwrap();
        }
        let m = s.meta().unwrap();
        assert_eq!((m.version, m.log_floor), (10, 7));
        assert!(s.logged(6).unwrap().is_none());
        assert!(s.logged(7).unwrap().is_some());
    }

    #[test]
    fn files_that_are_not_stores_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"hello, not a database").unwrap();
        let e = Store::open(dir.path(), Kind::Writer)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a redb store"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello, not a database");
        std::fs::write(&path, b"").unwrap();
        let e = Store::open(dir.path(), Kind::Writer)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the file is empty"), "{e}");
        // A replica's store is not a writer's.
        let other = dir.path().join("r");
        drop(Store::open(&other, Kind::Replica).unwrap());
        let e = Store::open(&other, Kind::Writer).unwrap_err().to_string();
        assert!(e.contains("holds a replica's data, not a writer's"), "{e}");
    }

    #[test]
    fn an_edited_store_no_longer_adds_up_to_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Kind::Replica).unwrap();
        s.begin_snapshot(9).unwrap();
        s.add_snapshot(
            &["a".into()],
            &[Entry {
                bucket: "a".into(),
                key: b"k".to_vec(),
                version: 1,
                value: b"v".to_vec(),
            }],
            true,
        )
        .unwrap();
        s.end_snapshot(1).unwrap();
        let (c, r) = s.verify().unwrap();
        assert_eq!(c, r);
        // Edit the value behind the store's back, as a person with a redb tool would.
        let txn = s.db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(("a", &b"k"[..]), (1u64, &b"edited"[..]))
            .unwrap();
        txn.commit().unwrap();
        let (c, r) = s.verify().unwrap();
        assert_ne!(c, r);
    }
}
