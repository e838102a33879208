//! Busy-waiting, briefly, before a runtime thread goes to sleep.
//!
//! A thread that sleeps in `epoll_wait` and is woken by a packet pays for the wake-up: on a
//! virtual machine an idle vCPU halts, and waking it costs tens of microseconds, often more
//! than the work a message needs. BEAM avoids it by spinning its schedulers for a while before
//! they sleep (`+sbwt`). We do the same, but only while the node is busy: when the thread was
//! woken less than [`ACTIVE`] ago, it first polls the node's sockets (a private epoll set
//! watching them, level-triggered, so it never takes events from the runtime's own) for up to
//! the configured time. When one becomes readable it stops spinning, and the runtime's own
//! `epoll_wait` returns at once instead of sleeping. An idle node never spins.
//!
//! Spinning only pays while the machine has cores to spare. When it has not (a hundred nodes
//! starting at once on two cores), a spinning thread takes the core another process needs,
//! and everything slows down. So the process samples how many threads the kernel has ready to
//! run (the running count in `/proc/loadavg`, every [`SAMPLE`]); while there are more than
//! CPUs, it does not spin. (Counting its own involuntary context switches was tried first: a
//! hundred nodes that mostly sleep are rarely preempted, yet together they fill the run queue.)
//!
//! [`install`] adds the hooks to a runtime builder; transports call [`watch`] for each socket.
//! Without `install`, `watch` does nothing.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// Spin only when the thread was last woken this recently: the node is exchanging messages.
pub const ACTIVE: Duration = Duration::from_millis(2);
/// The spin `cluster start` uses unless told otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// How often contention is sampled.
pub const SAMPLE: Duration = Duration::from_millis(50);

struct Spin {
    epoll: Epoll,
    limit: Duration,
    origin: Instant,
    /// When a runtime thread last woke, in nanoseconds since `origin`.
    woke: AtomicU64,
    /// When contention was last sampled (nanoseconds since `origin`), the preemption count
    /// then, and whether the CPUs were oversubscribed.
    sampled: AtomicU64,
    cpus: usize,
    contended: AtomicBool,
}

static SPIN: OnceLock<Option<Spin>> = OnceLock::new();

impl Spin {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Whether the CPUs are oversubscribed, from the preemptions since the last sample.
    fn contended(&self, now: u64) -> bool {
        let last = self.sampled.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SAMPLE.as_nanos() as u64 {
            self.sampled.store(now, Ordering::Relaxed);
            if let Some(running) = runnable() {
                self.contended.store(running > self.cpus, Ordering::Relaxed);
            }
        }
        self.contended.load(Ordering::Relaxed)
    }

    fn park(&self) {
        let start = self.now();
        if start.saturating_sub(self.woke.load(Ordering::Relaxed)) > ACTIVE.as_nanos() as u64 {
            return;
        }
        if self.contended(start) {
            return;
        }
        let until = start + self.limit.as_nanos() as u64;
        let mut events = [EpollEvent::empty()];
        while self.now() < until {
            match self.epoll.wait(&mut events, EpollTimeout::ZERO) {
                Ok(0) => std::hint::spin_loop(),
                // Readable (or the set is broken): let the runtime look.
                _ => return,
            }
        }
    }

    fn unpark(&self) {
        self.woke.store(self.now(), Ordering::Relaxed);
    }
}

/// Makes the runtime's threads spin up to `limit` before sleeping while the node is busy (see
/// the module docs). A zero `limit` installs nothing. The first call decides the limit for
/// the whole process.
pub fn install(
    builder: &mut tokio::runtime::Builder,
    limit: Duration,
) -> &mut tokio::runtime::Builder {
    if limit.is_zero() {
        return builder;
    }
    let spin = SPIN.get_or_init(|| {
        // Without an epoll set the threads simply do not spin.
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok()?;
        Some(Spin {
            epoll,
            limit,
            origin: Instant::now(),
            woke: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            contended: AtomicBool::new(false),
        })
    });
    let Some(spin) = spin.as_ref() else {
        return builder;
    };
    builder
        .on_thread_park(move || spin.park())
        .on_thread_unpark(move || spin.unpark())
}

/// Adds a socket to the set spinning threads poll (it leaves the set when it is closed).
pub fn watch(fd: BorrowedFd<'_>) {
    if let Some(Some(spin)) = SPIN.get() {
        let event = EpollEvent::new(EpollFlags::EPOLLIN, 0);
        // A socket that cannot be watched only loses the spin.
        let _ = spin.epoll.add(fd.as_fd(), event);
    }
}

/// Threads ready to run right now, system-wide (ourselves included): the fourth field of
/// `/proc/loadavg`, `running/total`.
fn runnable() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_runnable(&text)
}

fn parse_runnable(loadavg: &str) -> Option<usize> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_count_is_read_from_loadavg() {
        assert_eq!(parse_runnable("0.52 13.84 20.33 3/215 29940\n"), Some(3));
        assert_eq!(parse_runnable("0.52 13.84"), None);
        assert_eq!(parse_runnable("a b c x/y z"), None);
        // On Linux the file exists and counts at least the reader.
        assert!(runnable().is_some_and(|n| n >= 1));
    }
}
