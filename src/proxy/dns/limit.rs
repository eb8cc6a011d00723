//! The step's DNS query rate limit: a token bucket per kind of name, so that a step flooding
//! its stub with random names (each one a `dns` record and a stderr line) neither grows the
//! audit log without bound nor starves its own lookups of allowed names. Queries over the
//! limit are answered REFUSED, with no record each; the refusals are counted and said once a
//! second (see `stub::answer`).
//!
//! The numbers: a build resolves a handful of hosts, each lookup two queries (A and AAAA),
//! repeated per process that does not cache; a parallel test suite starting a thousand
//! processes at once asks 2,000 queries in a burst. [`RATE`] and [`BURST`] leave that
//! untouched, while a flood (tens of thousands of queries a second from one Python loop) is
//! cut to [`RATE`] logged queries a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Queries a second a step may send, sustained, for names the profile does not allow.
pub const RATE: u32 = 1000;
/// Queries a step may send at once (a full bucket), for names the profile does not allow.
pub const BURST: u32 = 2000;
/// The same for names the profile allows: far higher, so that a tool resolving allowed names
/// as fast as it can (the stub answers 20,000-30,000 sequential queries a second from its
/// cache) is never refused, while a runaway loop is still bounded.
pub const ALLOWED_RATE: u32 = 100_000;
/// A full bucket of allowed-name queries.
pub const ALLOWED_BURST: u32 = 100_000;

/// Rate and burst per [`Class`], indexed by `Class as usize`.
const LIMITS: [(u32, u32); 2] = [(ALLOWED_RATE, ALLOWED_BURST), (RATE, BURST)];
/// How often the refusals are summed up while they last.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What a query asks about: names the profile allows (the step's own lookups) and every other
/// name (what a flood or a tunnel sends) are limited separately, so a flood of the second
/// kind leaves the first alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Allowed,
    NotAllowed,
}

/// Queries refused over the limit since the last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub refused: u64,
    /// From the first refusal counted to when the report was made.
    pub duration: Duration,
}

pub struct Limiter {
    state: Mutex<State>,
}

/// One token, in the integer units the buckets count (exact: a nanosecond refills [`RATE`]).
const TOKEN: u64 = 1_000_000_000;

struct State {
    /// Tokens left per class ([`Class`] as index), as of `at`, in [`TOKEN`] units.
    tokens: [u64; 2],
    at: Instant,
    refused: u64,
    first_refused: Option<Instant>,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::new(Instant::now())
    }
}

impl Limiter {
    /// A limiter with full buckets at `now`.
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            state: Mutex::new(State {
                tokens: LIMITS.map(|(_, burst)| u64::from(burst) * TOKEN),
                at: now,
                refused: 0,
                first_refused: None,
            }),
        }
    }

    /// Whether a query of `class` arriving at `now` may be answered; and the refusals to say,
    /// once a second while there are any.
    pub fn check(&self, class: Class, now: Instant) -> (bool, Option<Report>) {
        let mut s = self.state.lock().expect("limit lock");
        let elapsed = now.saturating_duration_since(s.at).as_nanos();
        s.at = s.at.max(now);
        for (t, (rate, burst)) in s.tokens.iter_mut().zip(LIMITS) {
            let full = u128::from(*t) + elapsed * u128::from(rate);
            *t = full.min(u128::from(u64::from(burst) * TOKEN)) as u64;
        }
        let bucket = &mut s.tokens[class as usize];
        let ok = *bucket >= TOKEN;
        if ok {
            *bucket -= TOKEN;
        } else {
            s.refused += 1;
            s.first_refused.get_or_insert(now);
        }
        let due = s
            .first_refused
            .is_some_and(|first| now.saturating_duration_since(first) >= REPORT_EVERY);
        (ok, due.then(|| s.take(now)).flatten())
    }

    /// The refusals not said yet (the step is ending).
    pub fn flush(&self, now: Instant) -> Option<Report> {
        self.state.lock().expect("limit lock").take(now)
    }
}

impl State {
    fn take(&mut self, now: Instant) -> Option<Report> {
        let first = self.first_refused.take()?;
        let refused = std::mem::take(&mut self.refused);
        Some(Report {
            refused,
            duration: now.saturating_duration_since(first),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_names_have_a_far_larger_budget() {
        let t0 = Instant::now();
        let l = Limiter::new(t0);
        for _ in 0..ALLOWED_BURST {
            assert_eq!(l.check(Class::Allowed, t0), (true, None));
        }
        assert!(!l.check(Class::Allowed, t0).0);
        // A second later the bucket holds ALLOWED_RATE again.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..ALLOWED_RATE {
            assert!(l.check(Class::Allowed, t1).0);
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_and_refusals_are_said_once_a_second() {
        let t0 = Instant::now();
        let l = Limiter::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for _ in 0..BURST {
            assert_eq!(l.check(Class::NotAllowed, t0), (true, None));
        }
        assert_eq!(l.check(Class::NotAllowed, t0), (false, None));
        // The other class has its own bucket: a flood of other names leaves the step's
        // allowed names alone.
        assert_eq!(l.check(Class::Allowed, t0), (true, None));
        // 10 ms later: 10 more tokens.
        let passed = (0..100)
            .filter(|_| l.check(Class::NotAllowed, ms(10)).0)
            .count();
        assert_eq!(passed, 10);
        // A second after the first refusal: one report of every refusal so far.
        let report = Report {
            refused: 1 + 90,
            duration: Duration::from_secs(1),
        };
        assert_eq!(l.check(Class::NotAllowed, ms(1000)), (true, Some(report)));
        assert_eq!(l.flush(ms(1000)), None);
    }

    #[test]
    fn refusals_are_summed_once_a_second_and_flushed_at_the_end() {
        let t0 = Instant::now();
        let l = Limiter::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // A flood of 20,000 queries a second for 2.5 s: 1,000 a second pass after the burst.
        let mut passed = 0;
        let mut reports = Vec::new();
        for i in 0..50_000u64 {
            let (ok, r) = l.check(Class::NotAllowed, at(i / 20));
            passed += usize::from(ok);
            reports.extend(r);
        }
        assert!((4_490..=4_510).contains(&passed), "{passed}");
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert!(reports.iter().all(|r| r.duration == Duration::from_secs(1)));
        let last = l.flush(at(2500)).expect("the last half second");
        let refused: u64 = reports.iter().map(|r| r.refused).sum::<u64>() + last.refused;
        assert_eq!(refused as usize + passed, 50_000);
        assert_eq!(l.flush(at(2600)), None);
        // Quiet again: the bucket fills up to the burst, no more.
        assert_eq!(l.check(Class::NotAllowed, at(10_000)), (true, None));
        let passed = (0..3 * BURST)
            .filter(|_| l.check(Class::NotAllowed, at(10_000)).0)
            .count();
        assert_eq!(passed, BURST as usize - 1);
    }
}
