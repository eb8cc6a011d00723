//! `Prepared::launch`: create what the run needs on the host, clone the sandbox, serve its
//! network, wait for the step, and record its start and end.

use super::error::RunError;
use super::prepare::Prepared;
use super::spec::Outcome;
use crate::audit::{AuditLog, Event, StepEnd};
use crate::proxy::engine::Engine;
use crate::sandbox;

impl Prepared {
    /// Runs the step. Must be called while the process is single-threaded: the sandbox is
    /// cloned before the proxy's runtime (and its threads) starts.
    pub fn launch(self) -> Result<Outcome, RunError> {
        for w in &self.warnings {
            say!("stepjail: warning: {w}");
        }
        create_dirs(&self.create_dirs);
        // Before the sandbox: a cache directory the step could create must exist to be hidden.
        super::cache_guard::create(&self.cache_dirs).map_err(RunError::ProfileCacheDir)?;
        let audit = match &self.audit_log {
            Some(p) => AuditLog::open(p, &self.run_id).map_err(RunError::AuditLog)?,
            None => AuditLog::disabled(),
        };
        let plan = self.plan;
        if self.verbose {
            let id = plan.identity();
            say!(
                "stepjail: profile {} ({}), step runs as uid {} gid {}",
                plan.profile_name(),
                self.source,
                id.uid,
                id.gid
            );
            if let Some(up) = &self.upstream {
                say!("stepjail: allowed connections leave through upstream proxy {up}");
            }
        }
        let started = std::time::Instant::now();
        // A log that cannot take the first record would miss the whole step: it does not run.
        audit
            .write(Event::StepStart(self.start))
            .map_err(RunError::AuditLog)?;
        let engine = Engine::new(
            self.network,
            plan.profile_name().to_string(),
            audit.clone(),
            self.resolver,
        )
        .with_hosts(self.hosts)
        .with_broker(self.broker)
        .with_leak_scanner(self.scanner)
        .with_upstream(self.upstream)
        .with_pointers(self.pointers);
        let mask = self.mask;
        let masking = !mask.is_empty();
        let make_masker = move || -> Box<dyn sandbox::output::Filter> {
            let refs: Vec<&[u8]> = mask.iter().map(Vec::as_slice).collect();
            Box::new(MaskFilter(crate::secrets::Masker::with_encodings(&refs)))
        };
        let filter: Option<&dyn Fn() -> Box<dyn sandbox::output::Filter>> =
            if masking { Some(&make_masker) } else { None };
        // Fork first, then threads: the proxy's runtime starts in the closure, after the clone.
        let result = sandbox::run(
            &plan,
            move |listeners| crate::proxy::server::start(listeners, engine),
            filter,
        );
        let (code, timed_out, cancel_signal, init_signal, limit) = match &result {
            Ok(o) => (o.code, o.timed_out, o.cancel_signal, o.init_signal, o.limit),
            Err(e) => (e.exit_code(), false, None, None, None),
        };
        // The proxy has stopped: a failure from here on is the end's own.
        let failed_during = audit.first_failure().map(str::to_string);
        let end_written = audit.write(Event::StepEnd(StepEnd {
            profile: plan.profile_name().to_string(),
            exit_code: code,
            duration_ms: started.elapsed().as_millis() as u64,
            timed_out,
            cancel_signal,
            init_signal,
            limit: limit.map(|l| l.name().to_string()),
        }));
        let outcome = result?;
        if self.verbose {
            for line in &outcome.info {
                say!("stepjail: {line}");
            }
        }
        if outcome.timed_out {
            let t = plan.timeout().unwrap_or_default();
            say!(
                "stepjail: the step timed out after {}s and was killed",
                t.as_secs_f64()
            );
        }
        match outcome.limit {
            Some(sandbox::cgroup::LimitHit::Memory { limit, kills }) => say!(
                "stepjail: the step hit its memory limit ({}, process.limits.memory); the kernel killed {kills} of its processes (out of memory){}",
                mib(limit),
                code_note(outcome.code),
            ),
            Some(sandbox::cgroup::LimitHit::Pids { limit, refused }) => say!(
                "stepjail: the step hit its pids limit ({limit} processes and threads, process.limits.pids); the kernel refused {refused} forks{}",
                code_note(outcome.code),
            ),
            None => {}
        }
        if let Some(sig) = outcome.init_signal {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"));
            say!(
                "stepjail: the step sent {name} to its own init (PID 1), which forwarded it to the step; it was not cancelled{}",
                if outcome.code == crate::exit::INIT_SIGNALLED {
                    format!(" (exit code {}, not {})", outcome.code, 128 + sig)
                } else {
                    String::new()
                }
            );
        }
        // After the step's own lines: a log with a hole marks the run (see RunError).
        let incomplete = match (failed_during, end_written) {
            (Some(cause), _) => Some((cause, true)),
            (None, Err(e)) => Some((e.to_string(), false)),
            (None, Ok(())) => None,
        };
        if let Some((cause, during_step)) = incomplete {
            return Err(RunError::AuditIncomplete {
                cause,
                during_step,
                code: outcome.code,
            });
        }
        Ok(Outcome {
            code: outcome.code,
            timed_out: outcome.timed_out,
            cancel_signal: outcome.cancel_signal,
            init_signal: outcome.init_signal,
        })
    }
}

/// `512 MiB`, `1.5 GiB`, or bytes below 1 MiB.
fn mib(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

fn code_note(code: i32) -> String {
    if code == crate::exit::LIMIT {
        format!(" (exit code {code})")
    } else {
        String::new()
    }
}

/// Creates the missing caches the profile makes writable under the step user's home; a
/// failure is said and the run goes on (the step's tool will fail on its own).
fn create_dirs(dirs: &[std::path::PathBuf]) {
    use std::os::unix::fs::DirBuilderExt;
    for p in dirs {
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(p)
        {
            say!("stepjail: creating {}: {e}", p.display());
        }
    }
}

/// The secret masker as an output filter for the sandbox.
struct MaskFilter(crate::secrets::Masker);

impl sandbox::output::Filter for MaskFilter {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.0.feed(chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        self.0.finish()
    }
}
