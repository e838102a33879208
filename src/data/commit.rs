//! Group commit: the writer's one thread that owns write transactions.
//!
//! A write is acknowledged only once it is on disk, and an fsync costs milliseconds, so one
//! fsync per write would cap a data_contact at a few hundred writes a second. Instead, writes
//! queue (bounded) for this thread; while it is waiting for one fsync, the next writes pile
//! up, and it takes all of them (up to a batch limit) into the next transaction. Throughput
//! then grows with the number of concurrent writers, while each write still waits for at most
//! about two fsyncs.
//!
//! The thread never touches the network: each write carries a callback that gets its outcome
//! (the data process replies to its caller from there). After each commit the new head is
//! published on a `watch` channel, which is how replica streams learn there is more to send.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{debug, error};

use super::store::{Outcome, Store, StoreError, Write};

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 4096;
/// Bytes of values taken into one transaction at most (one larger write goes alone).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What a write's caller is told.
pub type Done = Box<dyn FnOnce(Result<Outcome, Arc<StoreError>>) + Send>;

struct Job {
    write: Write,
    done: Done,
}

/// The writer's head: the last committed version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The last version.
    pub version: u64,
    /// The digest at that version.
    pub digest: u128,
    /// When it was committed (ms since the Unix epoch).
    pub time_ms: u64,
}

/// The queue is full: the writer is behind. The caller is told at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer's queue is full")]
pub struct Overloaded;

/// The handle to the commit thread. Dropping every handle ends the thread once its queue is
/// done.
#[derive(Clone)]
pub struct Committer {
    tx: SyncSender<Job>,
    head: watch::Receiver<Head>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Committer {
    /// Starts the thread for `store`, keeping `retention` versions of log and queueing at most
    /// `queue` writes.
    pub fn start(store: Arc<Store>, retention: u64, queue: usize) -> Result<Committer, StoreError> {
        let meta = store.meta()?;
        let (tx, rx) = sync_channel(queue.max(1));
        let (head_tx, head) = watch::channel(Head {
            version: meta.version,
            digest: meta.digest,
            time_ms: now_ms(),
        });
        std::thread::Builder::new()
            .name("cluster-commit".into())
            .spawn(move || run(store, rx, head_tx, retention))
            .map_err(|e| StoreError::BadInput(format!("cannot start the commit thread: {e}")))?;
        Ok(Committer { tx, head })
    }

    /// Queues a write; `done` gets its outcome once it is durable (or failed).
    pub fn submit(&self, write: Write, done: Done) -> Result<(), Overloaded> {
        match self.tx.try_send(Job { write, done }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                drop(job);
                Err(Overloaded)
            }
        }
    }

    /// The head, as last committed.
    pub fn head(&self) -> Head {
        *self.head.borrow()
    }

    /// Follows the head.
    pub fn watch(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }
}

fn run(store: Arc<Store>, rx: Receiver<Job>, head: watch::Sender<Head>, retention: u64) {
    let mut writes = Vec::with_capacity(MAX_BATCH);
    let mut dones = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        let mut bytes = write_bytes(&first.write);
        writes.push(first.write);
        dones.push(first.done);
        while writes.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += write_bytes(&job.write);
                    writes.push(job.write);
                    dones.push(job.done);
                }
                Err(_) => break,
            }
        }
        let now = now_ms();
        match store.commit(&writes, now, retention) {
            Ok(c) => {
                debug!(writes = writes.len(), "group commit");
                head.send_replace(Head {
                    version: c.version,
                    digest: c.digest,
                    time_ms: now,
                });
                for (done, outcome) in dones.drain(..).zip(c.outcomes) {
                    done(Ok(outcome));
                }
            }
            Err(e) => {
                error!("commit of {} writes failed: {e}", writes.len());
                let e = Arc::new(e);
                for done in dones.drain(..) {
                    done(Err(e.clone()));
                }
            }
        }
        writes.clear();
    }
}

fn write_bytes(w: &Write) -> usize {
    match w {
        Write::Put { key, value, .. } => key.len() + value.len(),
        Write::Delete { key, .. } => key.len(),
        Write::Create { bucket } => bucket.len(),
    }
}
