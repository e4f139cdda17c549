//! A thread that stops an emulator run which outlives its wall-clock deadline.
//!
//! Counting translation blocks bounds a run deterministically, but the counting hook
//! makes every block call back into Rust and costs about a tenth of a fuzzing run. The
//! runner therefore runs without it, under this watchdog, and only when the watchdog
//! fires (a run that loops, or is merely long) runs the same input again with blocks
//! counted, so that every reported outcome is still the deterministic one.
//!
//! The watchdog calls `uc_emu_stop` from its own thread, as unicorn's own timeout does.
//! It does so only while a run is armed, under the lock the runner takes to disarm, so
//! a stop can land on the run it was meant for or on an engine that has just finished
//! (where it does nothing, and the runner's rerun makes the answer right anyway), never
//! on a later run.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unicorn_engine::unicorn_const::uc_engine;

/// The emulator handle, sent to the watchdog thread.
struct Handle(*mut uc_engine);

// SAFETY: the handle is only used for `uc_emu_stop`, which unicorn calls from its own
// timer thread in the same way; the engine outlives the watchdog (see `Watchdog::drop`).
unsafe impl Send for Handle {}

#[derive(Default)]
struct State {
    /// The running run's deadline, while one is armed.
    deadline: Option<Instant>,
    /// Whether the watchdog stopped the run armed last.
    fired: bool,
    quit: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often the thread looks at the deadline: a run is stopped at most this late.
const TICK: Duration = Duration::from_millis(2);

/// Stops one emulator's runs when they exceed a deadline. Dropping it stops the thread.
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    /// A watchdog for the engine behind `handle`, which must outlive it.
    pub fn new(handle: *mut uc_engine) -> Result<Watchdog, String> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
        let theirs = Arc::clone(&shared);
        let handle = Handle(handle);
        let thread = std::thread::Builder::new()
            .name("jitdiff-watchdog".into())
            .spawn(move || watch(&theirs, &handle, TICK))
            .map_err(|e| format!("cannot start the emulator's watchdog thread: {e}"))?;
        Ok(Watchdog { shared, thread: Some(thread) })
    }

    /// Arms the watchdog for a run starting now, to stop it after `limit` (and at most
    /// [`TICK`] more). The thread is not woken: it looks at the deadline on its own every
    /// tick, so arming costs one uncontended lock and no context switch.
    pub fn arm(&self, limit: Duration) {
        let mut s = self.shared.lock();
        s.deadline = Some(Instant::now() + limit);
        s.fired = false;
    }

    /// Disarms it after the run; true if it stopped the run.
    pub fn disarm(&self) -> bool {
        let mut s = self.shared.lock();
        s.deadline = None;
        std::mem::take(&mut s.fired)
    }
}

/// The thread: every `tick`, stops the armed run if its deadline has passed.
fn watch(shared: &Shared, handle: &Handle, tick: Duration) {
    let mut s = shared.lock();
    while !s.quit {
        if s.deadline.is_some_and(|d| Instant::now() >= d) {
            // SAFETY: a live engine (the runner disarms, under this lock, before it can
            // drop the engine); uc_emu_stop only raises a stop request.
            unsafe { unicorn_engine::unicorn_const::uc_emu_stop(handle.0) };
            s.deadline = None;
            s.fired = true;
        }
        s = shared.wake.wait_timeout(s, tick).unwrap_or_else(|e| e.into_inner()).0;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().quit = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
