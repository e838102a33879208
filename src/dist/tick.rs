//! Failure detection as a pure state machine: Erlang's `net_ticktime` T with intensity 4.
//!
//! Every T/4 the connection's supervisor reports what happened in that period:
//! - nothing **read** for 4 periods in a row: the peer is down (`net_tick_timeout`), whatever
//!   our writer is doing, so a peer that stops reading cannot hide behind a blocked writer;
//! - nothing **written** in a period: send a tick, so the peer hears from us;
//! - bytes **waiting** to be written but none written for 4 periods: the peer (or the path)
//!   has stopped taking data (`send_timeout`), so a peer that keeps ticking but never reads
//!   cannot make our queue grow forever.
//!
//! It never looks at a clock; the caller drives it, so tests step it by hand.

/// Erlang's tick intensity: periods per `net_ticktime`.
pub const INTENSITY: u32 = 4;

/// What the supervisor should do after a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Nothing.
    Idle,
    /// Send a tick (nothing was written this period).
    SendTick,
    /// Nothing was read for a whole tick time: declare the peer down.
    Timeout,
    /// Data waited to be written for a whole tick time with none written.
    SendTimeout,
}

/// What one period saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// Bytes arrived from the peer.
    pub read: bool,
    /// Bytes went out to the peer.
    pub wrote: bool,
    /// Bytes are waiting to go out.
    pub backlog: bool,
}

/// The tick state of one connection.
#[derive(Debug, Default, Clone)]
pub struct Ticker {
    silent: u32,
    stuck: u32,
}

impl Ticker {
    /// A fresh connection: everything heard.
    pub fn new() -> Ticker {
        Ticker::default()
    }

    /// Ends one period (T/4).
    pub fn period(&mut self, p: Period) -> TickAction {
        self.silent = if p.read { 0 } else { self.silent + 1 };
        self.stuck = if p.backlog && !p.wrote {
            self.stuck + 1
        } else {
            0
        };
        if self.silent >= INTENSITY {
            TickAction::Timeout
        } else if self.stuck >= INTENSITY {
            TickAction::SendTimeout
        } else if !p.wrote {
            TickAction::SendTick
        } else {
            TickAction::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Period = Period {
        read: false,
        wrote: false,
        backlog: false,
    };

    #[test]
    fn silence_for_four_periods_is_a_timeout() {
        let mut t = Ticker::new();
        for _ in 0..3 {
            assert_eq!(t.period(QUIET), TickAction::SendTick);
        }
        assert_eq!(t.period(QUIET), TickAction::Timeout);
    }

    #[test]
    fn any_read_resets_the_count() {
        let mut t = Ticker::new();
        for _ in 0..100 {
            for _ in 0..3 {
                assert_ne!(t.period(QUIET), TickAction::Timeout);
            }
            t.period(Period {
                read: true,
                ..QUIET
            });
        }
    }

    #[test]
    fn a_blocked_writer_does_not_stop_detection() {
        // The writer is stuck (backlog, nothing written) and the peer is silent: the read side
        // still times out after four periods, before the send timeout would.
        let mut t = Ticker::new();
        let stuck = Period {
            read: false,
            wrote: false,
            backlog: true,
        };
        for _ in 0..3 {
            assert_eq!(t.period(stuck), TickAction::SendTick);
        }
        assert_eq!(t.period(stuck), TickAction::Timeout);
    }

    #[test]
    fn a_peer_that_ticks_but_never_reads_is_a_send_timeout() {
        let mut t = Ticker::new();
        let p = Period {
            read: true,
            wrote: false,
            backlog: true,
        };
        for _ in 0..3 {
            assert_eq!(t.period(p), TickAction::SendTick);
        }
        assert_eq!(t.period(p), TickAction::SendTimeout);
        // Progress resets it.
        let mut t = Ticker::new();
        for _ in 0..10 {
            let a = t.period(Period {
                read: true,
                wrote: true,
                backlog: true,
            });
            assert_eq!(a, TickAction::Idle);
        }
    }
}
