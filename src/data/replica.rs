//! A replica's state and its apply thread.
//!
//! [`Status`] is what a data_service knows about itself: whom it follows, where it is
//! (waiting, connecting, taking a snapshot, following, cut off), the version it has applied
//! and the writer's head as last heard, hence its lag in versions and milliseconds. The data
//! process reads it to mark reads stale and to answer `status`; the role reports it to the
//! beacon.
//!
//! [`Applier`] owns the store's write transactions on a thread of its own, fed through a
//! bounded queue, so the socket side goes on reading (and ticking) while a batch is written.
//! It commits lazily and makes the result durable at least once a second and whenever it has
//! nothing queued; a crash loses at most that tail, which the replica simply fetches again
//! from the version it finds on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tracing::warn;

use super::change::Change;
use super::commit::now_ms;
use super::store::{Entry, Store};

/// Where a replica is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No data_contact to follow yet.
    Waiting,
    /// Reaching its data_contact.
    Connecting,
    /// Receiving a snapshot.
    Snapshot,
    /// Following the change stream.
    Following,
    /// Lost its data_contact; serving what it has, marked stale.
    CutOff,
}

impl Phase {
    /// The word shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Connecting => "connecting",
            Phase::Snapshot => "snapshot",
            Phase::Following => "following",
            Phase::CutOff => "cut_off",
        }
    }
}

/// A replica's view of itself.
#[derive(Debug, Clone)]
pub struct Status {
    /// The data_contact it follows.
    pub contact: Option<String>,
    /// Where it is.
    pub phase: Phase,
    /// The version applied.
    pub applied: u64,
    /// The writer's head as last heard.
    pub head: u64,
    /// When the writer last said anything (ms since the Unix epoch; 0: never).
    pub heard_ms: u64,
    /// Since when the replica has been behind the head it knows of.
    behind_since: Option<Instant>,
    /// Snapshots taken since start.
    pub snapshots: u64,
    /// Times it resumed from its own version without a snapshot.
    pub resumes: u64,
    /// Times it found its store diverged and took a fresh snapshot.
    pub resyncs: u64,
    /// Why the last channel ended.
    pub last_error: Option<String>,
}

/// How far behind a replica is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Versions behind the writer's head as last heard.
    pub versions: u64,
    /// Milliseconds behind: how long it has been behind, or since it last heard from the
    /// writer when cut off.
    pub ms: u64,
    /// Whether reads are stale (not following a live writer).
    pub stale: bool,
}

impl Status {
    /// A replica that has applied `applied`.
    pub fn new(applied: u64) -> Status {
        Status {
            contact: None,
            phase: Phase::Waiting,
            applied,
            head: applied,
            heard_ms: 0,
            behind_since: None,
            snapshots: 0,
            resumes: 0,
            resyncs: 0,
            last_error: None,
        }
    }

    /// The writer said something.
    pub fn heard(&mut self, now: u64) {
        self.heard_ms = now;
    }

    /// A snapshot at `version` begins.
    pub fn snapshot_begins(&mut self, version: u64) {
        self.phase = Phase::Snapshot;
        self.snapshots += 1;
        self.applied = 0;
        // A new stream: the head heard from an earlier writer (or an earlier store of this
        // one, at a higher version) no longer counts.
        self.head = version;
        self.behind_since = None;
        self.saw_head(version);
    }

    /// The writer lets us resume from `version`.
    pub fn resumed(&mut self, version: u64) {
        self.phase = Phase::Following;
        self.resumes += 1;
        self.applied = version;
        self.head = version;
        self.behind_since = None;
    }

    /// The writer's head is at least `version`.
    pub fn saw_head(&mut self, version: u64) {
        if version > self.head {
            self.head = version;
        }
        if self.head > self.applied && self.behind_since.is_none() {
            self.behind_since = Some(Instant::now());
        }
    }

    /// Versions up to `version` are applied.
    pub fn applied_to(&mut self, version: u64) {
        self.applied = version;
        if self.phase == Phase::Snapshot && version > 0 {
            self.phase = Phase::Following;
        }
        if self.applied >= self.head {
            self.head = self.applied;
            self.behind_since = None;
        }
    }

    /// A snapshot is complete at `version`: the replica follows from here (even at version 0,
    /// an empty writer).
    pub fn snapshot_done(&mut self, version: u64) {
        self.applied_to(version);
        self.phase = Phase::Following;
    }

    /// The channel ended.
    pub fn cut_off(&mut self, why: String) {
        if self.phase != Phase::Waiting {
            self.phase = Phase::CutOff;
        }
        self.last_error = Some(why);
    }

    /// The lag now. Reads are stale unless the replica follows a writer it heard from within
    /// `ticktime`.
    pub fn lag(&self, ticktime: Duration) -> Lag {
        let now = now_ms();
        let silent = now.saturating_sub(self.heard_ms);
        let stale = self.phase != Phase::Following
            || self.heard_ms == 0
            || silent > ticktime.as_millis() as u64;
        let behind = self
            .behind_since
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        Lag {
            versions: self.head.saturating_sub(self.applied),
            ms: if stale && self.heard_ms > 0 {
                behind.max(silent)
            } else {
                behind
            },
            stale,
        }
    }
}

enum Job {
    Begin {
        lineage: u64,
    },
    Batch {
        buckets: Vec<String>,
        entries: Vec<Entry>,
    },
    End {
        version: u64,
        digest: u128,
    },
    Changes(Vec<Change>),
}

struct Shared {
    applied: AtomicU64,
    consumed: AtomicU64,
    generation: AtomicU64,
    failure: Mutex<Option<String>>,
    progressed: Notify,
}

/// The apply thread's handle.
pub struct Applier {
    tx: Option<mpsc::Sender<(u64, u64, Job)>>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Applier {
    /// Lets the thread finish what is queued and make it durable: a replica stopped cleanly
    /// resumes from exactly where it was.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes of snapshot between durable commits.
const SNAPSHOT_DURABLE_EVERY: usize = 256 * 1024 * 1024;
/// Bytes of queued batches merged into one transaction at most.
const COALESCE_BYTES: usize = 32 * 1024 * 1024;

fn job_bytes(job: &Job) -> usize {
    match job {
        Job::Batch { entries, .. } => entries
            .iter()
            .map(|e| e.value.len() + e.key.len() + 32)
            .sum(),
        Job::Changes(c) => c.len() * 64,
        _ => 0,
    }
}

/// Merges queued jobs of the same kind (snapshot batches, or changes) and generation into
/// `job`; the first job of another kind is kept in `held` for next time.
fn coalesce(
    rx: &mut mpsc::Receiver<(u64, u64, Job)>,
    held: &mut Option<(u64, u64, Job)>,
    generation: u64,
    mut consumed: u64,
    mut job: Job,
) -> (u64, Job) {
    if !matches!(job, Job::Batch { .. } | Job::Changes(_)) {
        return (consumed, job);
    }
    let mut bytes = job_bytes(&job);
    while bytes < COALESCE_BYTES {
        let Ok((g, c, next)) = rx.try_recv() else {
            break;
        };
        let more = job_bytes(&next);
        match (&mut job, next) {
            (
                Job::Batch { buckets, entries },
                Job::Batch {
                    buckets: b2,
                    entries: e2,
                },
            ) if g == generation => {
                bytes += more;
                buckets.extend(b2);
                entries.extend(e2);
                consumed = consumed.max(c);
            }
            (Job::Changes(changes), Job::Changes(next)) if g == generation => {
                bytes += more;
                changes.extend(next);
                consumed = consumed.max(c);
            }
            (_, other) => {
                *held = Some((g, c, other));
                break;
            }
        }
    }
    (consumed, job)
}

/// How long lazily committed changes may stay not durable.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

impl Applier {
    /// Starts the thread for `store`. `on_applied` runs after each applied batch with the new
    /// version (the data process uses it to answer reads waiting for a version).
    pub fn start(
        store: Arc<Store>,
        status: Arc<Mutex<Status>>,
        on_applied: Box<dyn Fn(u64) + Send>,
    ) -> std::io::Result<Applier> {
        let (tx, rx) = mpsc::channel(8);
        let applied = status.lock().expect("lock").applied;
        let shared = Arc::new(Shared {
            applied: AtomicU64::new(applied),
            consumed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            failure: Mutex::new(None),
            progressed: Notify::new(),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cluster-apply".into())
            .spawn(move || run(store, status, sh, rx, on_applied))?;
        Ok(Applier {
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Starts a new channel: anything still queued from the last one is dropped, and the
    /// consumed count starts again.
    pub fn reset(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        *self.shared.failure.lock().expect("lock") = None;
        self.shared.consumed.store(0, Ordering::SeqCst);
    }

    /// (applied version, bytes consumed on this channel).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.shared.applied.load(Ordering::SeqCst),
            self.shared.consumed.load(Ordering::SeqCst),
        )
    }

    /// Why applying failed, if it did since the last reset.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().expect("lock").clone()
    }

    /// Resolves when a batch has been applied (or failed).
    pub async fn progressed(&self) {
        self.shared.progressed.notified().await
    }

    /// Frames that need no applying still count as consumed.
    pub fn note_consumed(&self, consumed: u64) {
        self.shared.consumed.fetch_max(consumed, Ordering::SeqCst);
    }

    async fn submit(&self, consumed: u64, job: Job) {
        let generation = self.shared.generation.load(Ordering::SeqCst);
        if let Some(tx) = &self.tx {
            let _ = tx.send((generation, consumed, job)).await;
        }
    }

    /// A snapshot begins: empty the store.
    pub async fn submit_begin(&self, lineage: u64, consumed: u64) {
        self.submit(consumed, Job::Begin { lineage }).await
    }

    /// Part of a snapshot.
    pub async fn submit_batch(&self, buckets: Vec<String>, entries: Vec<Entry>, consumed: u64) {
        self.submit(consumed, Job::Batch { buckets, entries }).await
    }

    /// The snapshot ends.
    pub async fn submit_end(&self, version: u64, digest: u128, consumed: u64) {
        self.submit(consumed, Job::End { version, digest }).await
    }

    /// Changes to apply.
    pub async fn submit_changes(&self, changes: Vec<Change>, consumed: u64) {
        self.submit(consumed, Job::Changes(changes)).await
    }
}

fn run(
    store: Arc<Store>,
    status: Arc<Mutex<Status>>,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(u64, u64, Job)>,
    on_applied: Box<dyn Fn(u64) + Send>,
) {
    super::background_priority();
    let mut dirty = false;
    let mut durable_at = Instant::now();
    let mut held: Option<(u64, u64, Job)> = None;
    let mut snapshot_bytes = 0usize;
    loop {
        let next = match held.take().map(Ok).unwrap_or_else(|| rx.try_recv()) {
            Ok(j) => Some(j),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                if dirty {
                    // Idle: make what we have durable before waiting.
                    if let Err(e) = store.sync() {
                        warn!("replica sync: {e}");
                    }
                    dirty = false;
                    durable_at = Instant::now();
                }
                rx.blocking_recv()
            }
        };
        let Some((generation, consumed, job)) = next else {
            if dirty {
                let _ = store.sync();
            }
            return;
        };
        if generation != shared.generation.load(Ordering::SeqCst)
            || shared.failure.lock().expect("lock").is_some()
        {
            continue;
        }
        // Take what else is queued of the same kind into the same transaction: fewer, larger
        // commits when the stream runs ahead of the disk.
        let (consumed, job) = coalesce(&mut rx, &mut held, generation, consumed, job);
        let result: Result<Option<u64>, String> = match job {
            Job::Begin { lineage } => store
                .begin_snapshot(lineage)
                .map(|()| Some(0))
                .map_err(|e| e.to_string()),
            Job::Batch { buckets, entries } => {
                snapshot_bytes += entries
                    .iter()
                    .map(|e| e.value.len() + e.key.len())
                    .sum::<usize>();
                // Durable now and then, so that redb can reuse the pages earlier commits freed
                // and the file does not grow to twice the data.
                let durable = snapshot_bytes >= SNAPSHOT_DURABLE_EVERY;
                if durable {
                    snapshot_bytes = 0;
                }
                store
                    .add_snapshot(&buckets, &entries, durable)
                    .map(|()| None)
                    .map_err(|e| e.to_string())
            }
            Job::End { version, digest } => match store.end_snapshot(version) {
                Ok(d) if d == digest => {
                    status.lock().expect("lock").snapshot_done(version);
                    Ok(Some(version))
                }
                Ok(_) => Err(format!(
                    "the snapshot at version {version} does not add up to the writer's digest"
                )),
                Err(e) => Err(e.to_string()),
            },
            Job::Changes(changes) => {
                let durable = durable_at.elapsed() >= DURABLE_EVERY;
                match store.apply(&changes, durable) {
                    Ok(v) => {
                        if durable {
                            durable_at = Instant::now();
                            dirty = false;
                        } else {
                            dirty = true;
                        }
                        Ok(Some(v))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match result {
            Ok(applied) => {
                if let Some(v) = applied {
                    shared.applied.store(v, Ordering::SeqCst);
                    status.lock().expect("lock").applied_to(v);
                    if v > 0 {
                        on_applied(v);
                    }
                }
                shared.consumed.fetch_max(consumed, Ordering::SeqCst);
            }
            Err(why) => {
                *shared.failure.lock().expect("lock") = Some(why);
            }
        }
        shared.progressed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stream_forgets_the_head_of_the_last_one() {
        // Caught up at 101 with a writer whose store is then replaced by a fresh one: its
        // snapshot at 6 is the whole truth, and the replica is not 95 versions behind.
        let mut s = Status::new(101);
        s.saw_head(101);
        s.applied_to(101);
        s.snapshot_begins(6);
        assert_eq!(s.lag(Duration::from_secs(60)).versions, 6);
        s.snapshot_done(6);
        s.heard(now_ms());
        let lag = s.lag(Duration::from_secs(60));
        assert_eq!((lag.versions, lag.ms, lag.stale), (0, 0, false), "{s:?}");
        // A head far ahead from one writer does not outlive its channel.
        s.saw_head(u64::MAX);
        s.resumed(6);
        s.heard(now_ms());
        let lag = s.lag(Duration::from_secs(60));
        assert_eq!((lag.versions, lag.ms), (0, 0), "{s:?}");
    }
}
