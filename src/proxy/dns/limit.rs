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

impl Class {
    /// The budget of this class: queries a second, sustained, and a full bucket.
    pub fn limits(self) -> (u32, u32) {
        LIMITS[self as usize]
    }
}

/// Queries of one [`Class`] refused over that class's limit since its last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whose budget refused them (and so which numbers to quote).
    pub class: Class,
    pub refused: u64,
    /// From the first refusal counted to when the report was made.
    pub duration: Duration,
}

/// The reports due, at most one per class ([`Class`] as index).
pub type Reports = [Option<Report>; 2];

pub struct Limiter {
    state: Mutex<State>,
}

/// One token, in the integer units the buckets count (exact: a nanosecond refills [`RATE`]).
const TOKEN: u64 = 1_000_000_000;

struct State {
    /// Tokens left per class ([`Class`] as index), as of `at`, in [`TOKEN`] units.
    tokens: [u64; 2],
    at: Instant,
    /// Per class: refusals not reported yet, and when the first of them happened.
    refused: [u64; 2],
    first_refused: [Option<Instant>; 2],
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
                refused: [0; 2],
                first_refused: [None; 2],
            }),
        }
    }

    /// Whether a query of `class` arriving at `now` may be answered; and the refusals to say,
    /// per class, once a second while there are any.
    pub fn check(&self, class: Class, now: Instant) -> (bool, Reports) {
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
            s.refused[class as usize] += 1;
            s.first_refused[class as usize].get_or_insert(now);
        }
        let reports = CLASSES.map(|c| {
            let due = s.first_refused[c as usize]
                .is_some_and(|first| now.saturating_duration_since(first) >= REPORT_EVERY);
            due.then(|| s.take(c, now)).flatten()
        });
        (ok, reports)
    }

    /// The refusals not said yet (the step is ending).
    pub fn flush(&self, now: Instant) -> Reports {
        let mut s = self.state.lock().expect("limit lock");
        CLASSES.map(|c| s.take(c, now))
    }
}

/// Every [`Class`], in index order.
const CLASSES: [Class; 2] = [Class::Allowed, Class::NotAllowed];

impl State {
    fn take(&mut self, class: Class, now: Instant) -> Option<Report> {
        let first = self.first_refused[class as usize].take()?;
        let refused = std::mem::take(&mut self.refused[class as usize]);
        Some(Report {
            class,
            refused,
            duration: now.saturating_duration_since(first),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Reports = [None, None];

    #[test]
    fn allowed_names_have_a_far_larger_budget() {
        let t0 = Instant::now();
        let l = Limiter::new(t0);
        for _ in 0..ALLOWED_BURST {
            assert_eq!(l.check(Class::Allowed, t0), (true, NONE));
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
            assert_eq!(l.check(Class::NotAllowed, t0), (true, NONE));
        }
        assert_eq!(l.check(Class::NotAllowed, t0), (false, NONE));
        // The other class has its own bucket: a flood of other names leaves the step's
        // allowed names alone.
        assert_eq!(l.check(Class::Allowed, t0), (true, NONE));
        // 10 ms later: 10 more tokens.
        let passed = (0..100)
            .filter(|_| l.check(Class::NotAllowed, ms(10)).0)
            .count();
        assert_eq!(passed, 10);
        // A second after the first refusal: one report of every refusal so far.
        let report = Report {
            class: Class::NotAllowed,
            refused: 1 + 90,
            duration: Duration::from_secs(1),
        };
        assert_eq!(
            l.check(Class::NotAllowed, ms(1000)),
            (true, [None, Some(report)])
        );
        assert_eq!(l.flush(ms(1000)), NONE);
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
            reports.extend(r.into_iter().flatten());
        }
        assert!((4_490..=4_510).contains(&passed), "{passed}");
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert!(
            reports
                .iter()
                .all(|r| r.duration == Duration::from_secs(1) && r.class == Class::NotAllowed)
        );
        let [None, Some(last)] = l.flush(at(2500)) else {
            panic!("the last half second, of the other names only")
        };
        let refused: u64 = reports.iter().map(|r| r.refused).sum::<u64>() + last.refused;
        assert_eq!(refused as usize + passed, 50_000);
        assert_eq!(l.flush(at(2600)), NONE);
        // Quiet again: the bucket fills up to the burst, no more.
        assert_eq!(l.check(Class::NotAllowed, at(10_000)), (true, NONE));
        let passed = (0..3 * BURST)
            .filter(|_| l.check(Class::NotAllowed, at(10_000)).0)
            .count();
        assert_eq!(passed, BURST as usize - 1);
    }

    #[test]
    fn a_refusal_says_whose_budget_refused_it() {
        let t0 = Instant::now();
        let l = Limiter::new(t0);
        for _ in 0..ALLOWED_BURST {
            assert!(l.check(Class::Allowed, t0).0);
        }
        for _ in 0..BURST {
            assert!(l.check(Class::NotAllowed, t0).0);
        }
        // Both buckets empty: 3 allowed-name and 2 other-name queries refused.
        for _ in 0..3 {
            assert_eq!(l.check(Class::Allowed, t0), (false, NONE));
        }
        for _ in 0..2 {
            assert_eq!(l.check(Class::NotAllowed, t0), (false, NONE));
        }
        // A second later, one query says both, each with its own class.
        let (ok, reports) = l.check(Class::NotAllowed, t0 + Duration::from_secs(1));
        assert!(ok);
        let report = |class, refused| {
            Some(Report {
                class,
                refused,
                duration: Duration::from_secs(1),
            })
        };
        assert_eq!(
            reports,
            [report(Class::Allowed, 3), report(Class::NotAllowed, 2)]
        );
        assert_eq!(Class::Allowed.limits(), (100_000, 100_000));
        assert_eq!(Class::NotAllowed.limits(), (1_000, 2_000));
        // Refusals of the allowed names only: flushed alone.
        let t2 = t0 + Duration::from_millis(1001);
        while l.check(Class::Allowed, t2).0 {}
        let [Some(allowed), None] = l.flush(t2) else {
            panic!("only the allowed names are left to say")
        };
        assert_eq!(allowed.class, Class::Allowed);
    }
}
