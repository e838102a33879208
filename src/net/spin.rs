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
//! [`install`] adds the hooks to a runtime builder; transports call [`watch`] for each socket.
//! Without `install`, `watch` does nothing.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// Spin only when the thread was last woken this recently: the node is exchanging messages.
pub const ACTIVE: Duration = Duration::from_millis(2);
/// The spin `cluster start` uses unless told otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

struct Spin {
    epoll: Epoll,
    limit: Duration,
    origin: Instant,
    /// When a runtime thread last woke, in nanoseconds since `origin`.
    woke: AtomicU64,
}

static SPIN: OnceLock<Option<Spin>> = OnceLock::new();

impl Spin {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn park(&self) {
        let start = self.now();
        if start.saturating_sub(self.woke.load(Ordering::Relaxed)) > ACTIVE.as_nanos() as u64 {
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
