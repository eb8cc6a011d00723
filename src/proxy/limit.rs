//! The per-step connection cap (`network.max_connections`). Every connection the step opens to
//! the proxy — explicit, captured (nf_tables redirect or the userspace stack) and TCP to the DNS
//! stub — takes one slot when it is accepted, before anything is decided (a client that never
//! finishes its request head holds a descriptor too), and gives it back when its task ends. An
//! allowed connection's tunnel or intercepted session is part of that task, so the slot covers
//! the upstream side as well: the supervisor holds at most about two descriptors and one
//! connection's memory per slot.
//!
//! With no slot left a connection is refused at once: the explicit proxy answers `503`, a
//! captured connection is reset. Each refusal has its own `connect` record (reason
//! `connection limit (N) reached`); stderr says it once per burst, and the burst's count when no
//! refusal has come for [`QUIET`] (or when the proxy stops).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A burst of refusals ends after this long without one; its count is printed then.
pub(super) const QUIET: Duration = Duration::from_secs(1);
/// How long the explicit proxy gives a refused connection to send its request head: its record
/// then names where it was going, and the client reads the `503` instead of a reset.
pub const REFUSAL_READ: Duration = Duration::from_secs(1);

/// One connection's place under the cap, held by its task until the connection ends.
pub type Slot = OwnedSemaphorePermit;

pub struct ConnLimit {
    max: u32,
    slots: Arc<Semaphore>,
    /// Refused connections the explicit proxy is still answering (reading their head, writing
    /// the 503): bounded too, by the same number. Past it they are reset at once.
    answering: Arc<Semaphore>,
    burst: Mutex<Burst>,
}

/// The refusals since the cap was last reached.
#[derive(Default)]
struct Burst {
    refused: u64,
    /// When the first and the latest refusal of the burst happened.
    span: Option<(Instant, Instant)>,
}

impl ConnLimit {
    pub fn new(max: u32) -> ConnLimit {
        ConnLimit {
            max,
            slots: Arc::new(Semaphore::new(max as usize)),
            answering: Arc::new(Semaphore::new(max as usize)),
            burst: Mutex::default(),
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// A slot for a connection just accepted, or `None`: refuse it.
    pub fn slot(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// A place to answer a refused connection in, or `None`: reset it at once.
    pub fn answering(&self) -> Option<OwnedSemaphorePermit> {
        self.answering.clone().try_acquire_owned().ok()
    }

    /// Counts one refusal; true when it starts a burst.
    pub(super) fn refused(&self) -> bool {
        let now = Instant::now();
        let mut b = self.burst.lock().expect("burst lock");
        b.refused += 1;
        let first = b.span.map_or(now, |(first, _)| first);
        b.span = Some((first, now));
        b.refused == 1
    }

    /// Ends the burst when it has been quiet for [`QUIET`] (or at once, with `now`): the number
    /// it refused and how long it lasted. `Err(())` while it is still going on.
    pub(super) fn end_burst(&self, now: bool) -> Result<Option<(u64, Duration)>, ()> {
        let mut b = self.burst.lock().expect("burst lock");
        let Some((first, last)) = b.span else {
            return Ok(None);
        };
        if !now && last.elapsed() < QUIET {
            return Err(());
        }
        let n = b.refused;
        *b = Burst::default();
        Ok(Some((n, last - first)))
    }
}

/// Closes a refused connection with a reset (`SO_LINGER` 0): the step's tool fails at once
/// instead of waiting, and no descriptor lingers in `TIME_WAIT` here.
pub fn reset(stream: tokio::net::TcpStream) {
    let _ = nix::sys::socket::setsockopt(
        &stream,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_run_out_at_the_cap_and_come_back_when_dropped() {
        let l = ConnLimit::new(2);
        let a = l.slot().unwrap();
        let _b = l.slot().unwrap();
        assert!(l.slot().is_none());
        drop(a);
        assert!(l.slot().is_some());
    }

    #[test]
    fn a_burst_is_counted_once_and_ends_after_a_quiet_spell() {
        let l = ConnLimit::new(1);
        assert_eq!(l.end_burst(false), Ok(None));
        assert!(l.refused());
        assert!(!l.refused());
        assert!(!l.refused());
        assert_eq!(l.end_burst(false), Err(()));
        let (n, _) = l.end_burst(true).unwrap().unwrap();
        assert_eq!(n, 3);
        // The next refusal starts a new burst.
        assert!(l.refused());
    }
}
