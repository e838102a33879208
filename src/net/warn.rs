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
    keys: Mutex<HashMap<String, Window>>,
}

impl WarnLimiter {
    /// A limiter with the given window.
    pub fn new(window: Duration) -> WarnLimiter {
        WarnLimiter {
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event for `key`.
    pub fn check(&self, key: &str) -> Verdict {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let key = if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            OVERFLOW_KEY
        } else {
            key
        };
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
        keys.retain(|k, w| {
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
    async fn many_keys_share_an_overflow_key() {
        let l = WarnLimiter::new(DEFAULT_WINDOW);
        let logged = (0..5000)
            .filter(|i| l.check(&format!("k{i}")) == Verdict::Log)
            .count();
        assert_eq!(logged, MAX_KEYS + 1);
    }
}
