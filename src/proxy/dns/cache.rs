//! The upstream answers the proxy keeps, shared by the DNS stub and the proxy's own dials, and
//! the lookups in flight: N callers asking for a name and type not cached yet wait for one
//! upstream query (single flight), instead of sending N queries at once (a build's cold start,
//! or a step's 10,000 connections to one host, would otherwise time the resolver out).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::codec::{DnsError, Rcode};
use super::filter::Answer;

/// The longest an answer is kept.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Answers kept at most; past this the cache starts over.
const CACHE_MAX: usize = 4096;

/// (lower-cased name, qtype).
type Key = (String, u16);
/// What the one lookup for a key gives every caller that waited for it.
type Shared = Result<Answer, Arc<DnsError>>;

#[derive(Default)]
pub struct Cache {
    /// Each answer with the instant it expires.
    answers: Mutex<HashMap<Key, (Answer, Instant)>>,
    /// The lookup under way per key; removed when it ends, whatever it gave.
    in_flight: Mutex<HashMap<Key, Arc<OnceCell<Shared>>>>,
}

impl Cache {
    /// The answer for `name`/`qtype`: a kept one (with the TTL it has left), else the one
    /// `lookup` in flight for it. A NOERROR answer with a TTL is kept for that TTL (at most
    /// [`CACHE_TTL`]); other answers and failures go only to the callers that waited for that
    /// lookup. A caller dropped while its lookup runs hands the lookup over to a waiting one.
    pub async fn get_or_lookup<F, Fut>(&self, name: &str, qtype: u16, lookup: F) -> Shared
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Answer, DnsError>>,
    {
        let key = (name.to_ascii_lowercase(), qtype);
        if let Some(ans) = self.fresh(&key) {
            return Ok(ans);
        }
        let cell = {
            let mut flights = self.in_flight.lock().expect("in-flight lock");
            flights.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            // A lookup that ended between the check above and taking its place may have
            // filled the cache.
            let r = match self.fresh(&key) {
                Some(ans) => Ok(ans),
                None => lookup().await.map_err(Arc::new),
            };
            if let Ok(ans) = &r {
                self.keep(&key, ans);
            }
            let mut flights = self.in_flight.lock().expect("in-flight lock");
            if flights.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                flights.remove(&key);
            }
            r
        })
        .await
        .clone()
    }

    fn fresh(&self, key: &Key) -> Option<Answer> {
        let answers = self.answers.lock().expect("cache lock");
        let (ans, until) = answers.get(key)?;
        let now = Instant::now();
        if now >= *until {
            return None;
        }
        let left = u32::try_from(until.duration_since(now).as_secs()).unwrap_or(u32::MAX);
        let mut ans = ans.clone();
        ans.ttl = ans.ttl.min(left);
        Some(ans)
    }

    fn keep(&self, key: &Key, ans: &Answer) {
        let ttl = Duration::from_secs(u64::from(ans.ttl)).min(CACHE_TTL);
        if ans.rcode != Rcode::NoError || ttl.is_zero() {
            return;
        }
        let mut answers = self.answers.lock().expect("cache lock");
        if answers.len() >= CACHE_MAX {
            answers.clear();
        }
        answers.insert(key.clone(), (ans.clone(), Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(ttl: u32, rcode: Rcode) -> Answer {
        Answer {
            addrs: vec!["192.0.2.1".parse().unwrap()],
            ttl,
            cnames: vec![],
            rcode,
        }
    }

    /// `n` callers at once for one key, each lookup slow and counted: how many lookups ran.
    /// Every caller gets the same result.
    async fn herd(cache: &Arc<Cache>, n: usize, give: fn() -> Result<Answer, DnsError>) -> usize {
        let asked = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (cache, asked) = (cache.clone(), asked.clone());
            set.spawn(async move {
                let r = cache
                    .get_or_lookup("Herd.test", 1, || async {
                        asked.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        give()
                    })
                    .await;
                format!("{r:?}")
            });
        }
        let all = set.join_all().await;
        assert!(all.iter().all(|r| *r == all[0]), "{all:?}");
        asked.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_lookup() {
        let cache = Arc::new(Cache::default());
        assert_eq!(
            herd(&cache, 200, || Ok(answer(60, Rcode::NoError))).await,
            1
        );
        // Kept: the next caller asks nobody.
        assert_eq!(herd(&cache, 5, || Ok(answer(60, Rcode::NoError))).await, 0);
        assert!(cache.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn failures_are_shared_by_their_waiters_only() {
        let cache = Arc::new(Cache::default());
        let timeout = || {
            Err(DnsError::Timeout {
                upstream: "192.0.2.53:53".parse().unwrap(),
                timeout: Duration::from_secs(5),
            })
        };
        assert_eq!(herd(&cache, 50, timeout).await, 1);
        // Not kept: the next callers ask again (once).
        assert_eq!(herd(&cache, 50, timeout).await, 1);
        // Neither are NXDOMAIN nor a zero TTL.
        assert_eq!(
            herd(&cache, 50, || Ok(answer(60, Rcode::NxDomain))).await,
            1
        );
        assert_eq!(
            herd(&cache, 50, || Ok(answer(60, Rcode::NxDomain))).await,
            1
        );
        assert_eq!(herd(&cache, 50, || Ok(answer(0, Rcode::NoError))).await, 1);
        assert_eq!(herd(&cache, 50, || Ok(answer(0, Rcode::NoError))).await, 1);
        assert!(cache.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dropped_caller_hands_its_lookup_over() {
        let cache = Arc::new(Cache::default());
        let asked = Arc::new(AtomicUsize::new(0));
        let ask = |cache: Arc<Cache>, asked: Arc<AtomicUsize>| async move {
            cache
                .get_or_lookup("gone.test", 1, || async {
                    asked.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(answer(60, Rcode::NoError))
                })
                .await
        };
        let leader = tokio::spawn(ask(cache.clone(), asked.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiter = tokio::spawn(ask(cache.clone(), asked.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert!(cache.in_flight.lock().unwrap().is_empty());
    }
}
