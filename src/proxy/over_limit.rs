//! The engine's side of the per-step connection cap ([`super::limit`]): refusing an attempt
//! over the cap (its record, the once-per-burst stderr line, the 503) and the burst's count.
//! Kept apart from `limit.rs` so the cap itself does not depend on the engine.

use std::sync::Arc;

use super::denial::Denial;
use super::engine::{Attempt, Engine, describe};
use super::limit::QUIET;
use crate::audit::Decision;

impl Engine {
    /// Refuses attempt `a` because the cap is reached: its `connect` record (denied in audit
    /// mode too: the cap bounds the supervisor, it is not policy), a stderr line when this
    /// starts a burst, and the denial to answer with (503).
    pub fn refuse_over_limit(self: &Arc<Self>, a: &Attempt) -> Denial {
        let max = self.limit.max();
        let denial = Denial::over_limit(max);
        self.log_connect(a, Decision::Deny, None, Some(denial.reason().to_string()));
        if self.limit.refused() {
            say!(
                "stepjail: denied {} ({denial}; profile '{}', network.max_connections); \
                 refusing new connections until some close",
                describe(a),
                self.profile
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let engine = self.clone();
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(QUIET).await;
                        if engine.print_burst_end(false) {
                            return;
                        }
                    }
                });
            }
        }
        denial
    }

    /// Prints how many connections the last burst refused, once it is over (or at once with
    /// `now`, when the proxy stops). True when no burst is left going on.
    pub fn print_burst_end(&self, now: bool) -> bool {
        match self.limit.end_burst(now) {
            Err(()) => false,
            Ok(None) => true,
            Ok(Some((n, took))) => {
                say!(
                    "stepjail: connection limit ({}) reached: {n} connection{} refused in {:.1}s (profile '{}'; network.max_connections raises it)",
                    self.limit.max(),
                    if n == 1 { "" } else { "s" },
                    took.as_secs_f64(),
                    self.profile
                );
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_503_and_a_deny_record_with_the_cap_in_audit_mode_too() {
        use crate::audit::{AuditLog, NameSource, Protocol, Via};
        use crate::policy::model::{Network, NetworkMode};
        let (log, mem) = AuditLog::memory("t");
        let network = Network {
            mode: NetworkMode::Audit,
            max_connections: Some(7),
            ..Network::default()
        };
        let e = Arc::new(Engine::new(
            network,
            "p".into(),
            log,
            "127.0.0.1:9".parse().unwrap(),
        ));
        assert_eq!(e.limit.max(), 7);
        let a = Attempt {
            conn: 3,
            name: Some("ok.test".into()),
            source: NameSource::Connect,
            ip: None,
            port: 443,
            protocol: Protocol::Tcp,
            via: Via::Proxy,
        };
        let d = e.refuse_over_limit(&a);
        assert_eq!(d.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(d.reason(), "connection limit (7) reached");
        let text = String::from_utf8(mem.bytes()).unwrap();
        let rec: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(rec["event"], "connect");
        assert_eq!(rec["conn"], 3);
        assert_eq!(rec["dest_name"], "ok.test");
        assert_eq!(rec["decision"], "deny");
        assert_eq!(rec["reason"], "connection limit (7) reached");
        assert!(e.print_burst_end(true));
    }
}
