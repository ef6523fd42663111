//! The engine's epoch clock, which bounds how long a guest call may run (wasmtime's epoch
//! interruption: a call traps once the epoch passes the deadline its store was given).
//!
//! The epoch only needs to advance while a guest runs. A ticker that woke every
//! [`EPOCH_TICK`] for the life of the host cost 500 wake-ups a second on a host running no
//! plugin at all (issue 21: idle CPU and wake-ups). So the ticker thread sleeps until a call
//! starts ([`Ticker::running`]) and ticks only while at least one is running.
//!
//! Invariant: every guest entry (instantiate, describe, configure, process) holds a
//! [`Running`] guard from before its store's deadline is set until the call returns, so the
//! epoch advances every tick for as long as any guest runs, as before.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances while a guest runs: the granularity of time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

#[derive(Default)]
struct State {
    /// Guest calls running now.
    running: usize,
    /// The host is gone: the thread ends.
    stop: bool,
    /// Ticks so far (what the tests observe: wasmtime has no getter for the epoch).
    ticked: u64,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// The ticker thread of one engine (stopped when dropped).
pub(crate) struct Ticker {
    shared: Shared,
}

/// A guest call in progress: the epoch advances while one exists.
pub(crate) struct Running<'a> {
    ticker: &'a Ticker,
}

impl Ticker {
    /// Starts the thread that advances `engine`'s epoch while calls run.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Ticker> {
        let shared: Shared = Arc::default();
        let (theirs, weak) = (shared.clone(), engine.weak());
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            let (lock, wake) = &*theirs;
            loop {
                {
                    let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while s.running == 0 && !s.stop {
                        s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                    }
                    if s.stop {
                        return;
                    }
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                    s.ticked += 1;
                }
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(Ticker { shared })
    }

    /// Marks a guest call as running until the guard is dropped.
    pub(crate) fn running(&self) -> Running<'_> {
        let (lock, wake) = &*self.shared;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        s.running += 1;
        if s.running == 1 {
            wake.notify_one();
        }
        Running { ticker: self }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let (lock, _) = &*self.ticker.shared;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        s.running = s.running.saturating_sub(1);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticked(t: &Ticker) -> u64 {
        t.shared.0.lock().unwrap().ticked
    }

    /// The epoch stands still while nothing runs and advances while a call does. (How often
    /// it ticks is the machine's to keep: a loaded machine oversleeps, so only the order of
    /// events is checked here.)
    #[test]
    fn ticks_only_while_a_call_runs() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticked(&ticker), 0, "ticks with no call running");
        {
            let _running = ticker.running();
            let _another = ticker.running();
            let waited = std::time::Instant::now();
            while ticked(&ticker) < 5 {
                assert!(waited.elapsed() < Duration::from_secs(10), "no 5 ticks in 10 s of a call");
                std::thread::sleep(EPOCH_TICK);
            }
        }
        // The count is read under the lock the ticker checks for running calls before each
        // tick: once the calls have ended it never moves again.
        let ended = ticked(&ticker);
        std::thread::sleep(EPOCH_TICK * 20);
        assert_eq!(ticked(&ticker), ended, "the epoch went on after the calls ended");
        // Dropping the ticker ends its thread (nothing to observe but that it does not hang).
        drop(ticker);
    }
}
