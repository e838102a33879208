//! Rate-limited warnings. A flood (thousands of refused connections, a peer retrying a wrong
//! cookie twice a second) must not turn into thousands of log lines: per key (a source
//! address, a peer name) the first event of a window is logged, the rest are counted, and the
//! count is reported once the window is over ("N connections refused from ADDR in the last
//! 10 s").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default window per key.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Keys tracked at once; beyond this, events share one overflow key.
const MAX_KEYS: usize = 1024;
/// Lines logged per window across all keys; beyond this, events of keys not yet seen in the
/// window share the overflow key. A flood with a new key per event (a new node name, a new
/// source) then costs a few dozen lines per window, not one per key.
const MAX_LINES: u64 = 32;
/// The key used when too many distinct keys are live.
pub const OVERFLOW_KEY: &str = "(other sources)";

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it now.
    Log,
    /// Count it; it is summarised later.
    Suppress,
}

struct Window {
    started: Instant,
    suppressed: u64,
}

/// Counts events per key and decides which to log.
pub struct WarnLimiter {
    window: Duration,
    keys: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    windows: HashMap<String, Window>,
    /// When the current window of the line budget started, and the lines logged in it.
    lines: Option<(Instant, u64)>,
}

impl WarnLimiter {
    /// A limiter with the given window.
    pub fn new(window: Duration) -> WarnLimiter {
        WarnLimiter {
            window,
            keys: Mutex::new(Keys::default()),
        }
    }

    /// Records one event for `key`.
    pub fn check(&self, key: &str) -> Verdict {
        let now = Instant::now();
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let Keys { windows, lines } = &mut *guard;
        let (started, logged) = lines.get_or_insert((now, 0));
        if now.duration_since(*started) >= self.window {
            *started = now;
            *logged = 0;
        }
        let known = windows.contains_key(key);
        let key = if !known && (windows.len() >= MAX_KEYS || *logged >= MAX_LINES) {
            OVERFLOW_KEY
        } else {
            key
        };
        let keys = windows;
        match keys.get_mut(key) {
            Some(w) if now.duration_since(w.started) < self.window => {
                w.suppressed += 1;
                Verdict::Suppress
            }
            Some(w) if w.suppressed > 0 => {
                // The window is over but its summary is still due: this event starts a new
                // window and is counted in it.
                w.suppressed += 1;
                Verdict::Suppress
            }
            _ => {
                keys.insert(
                    key.to_owned(),
                    Window {
                        started: now,
                        suppressed: 0,
                    },
                );
                *logged += 1;
                Verdict::Log
            }
        }
    }

    /// Summaries that are due: `(key, events suppressed)` for every window that is over and
    /// suppressed something. Keys whose window is over are forgotten.
    pub fn due(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        keys.windows.retain(|k, w| {
            if now.duration_since(w.started) < self.window {
                return true;
            }
            if w.suppressed > 0 {
                out.push((k.clone(), w.suppressed));
            }
            false
        });
        out.sort();
        out
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_key_per_window_then_a_summary() {
        let l = WarnLimiter::new(DEFAULT_WINDOW);
        assert_eq!(l.check("a"), Verdict::Log);
        for _ in 0..1000 {
            assert_eq!(l.check("a"), Verdict::Suppress);
        }
        assert_eq!(l.check("b"), Verdict::Log);
        assert!(l.due().is_empty());
        tokio::time::advance(DEFAULT_WINDOW).await;
        // The summary is due before a new line for the key.
        assert_eq!(l.check("a"), Verdict::Suppress);
        assert_eq!(l.due(), vec![("a".to_owned(), 1001)]);
        assert_eq!(l.check("a"), Verdict::Log);
        assert!(l.due().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_new_keys_costs_a_few_lines_per_window() {
        let l = WarnLimiter::new(DEFAULT_WINDOW);
        let logged = (0..5000)
            .filter(|i| l.check(&format!("k{i}")) == Verdict::Log)
            .count();
        assert_eq!(
            logged as u64,
            MAX_LINES + 1,
            "the budget, then one overflow line"
        );
        let due = l.due();
        assert!(due.is_empty(), "nothing due inside the window");
        tokio::time::advance(DEFAULT_WINDOW).await;
        let due = l.due();
        assert_eq!(due, vec![(OVERFLOW_KEY.to_owned(), 5000 - MAX_LINES - 1)]);
        // A new window has a new budget.
        assert_eq!(l.check("fresh"), Verdict::Log);
    }
}
