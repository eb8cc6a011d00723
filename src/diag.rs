//! Diagnostics: the supervisor's and the proxy's `tracing` events, written to stderr.
//!
//! What a user reads (denial lines, `::error`/`::warning` annotations, summaries, `check`
//! output) is printed directly, never through here: those lines do not change with the level.
//! Events are for what goes on inside: setup stages, decisions and dials, internal errors.
//!
//! The level comes from `-v` (info) and `-vv` (debug; `-vvv` trace), or from `STEPJAIL_LOG`,
//! an `EnvFilter` directive (`stepjail=debug`, `stepjail::proxy=trace,stepjail::sandbox=info`)
//! that wins over `-v`. By default only stepjail's warnings and errors are shown, each as one
//! `stepjail: MESSAGE` line, as stepjail printed them before it had levels; with `-v` or
//! `STEPJAIL_LOG` a line also names the level and the module. Other crates' events are shown
//! only when a directive names them.
//!
//! Setting this up starts no thread: the sandbox child is forked after it (see `sandbox::run`),
//! and the child emits no events between the fork and `execve`.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The variable holding a filter directive.
pub const LOG_VAR: &str = "STEPJAIL_LOG";

/// The filter directive for `-v` given `verbosity` times.
pub fn default_directive(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "off,stepjail=warn",
        1 => "off,stepjail=info",
        2 => "off,stepjail=debug",
        _ => "off,stepjail=trace",
    }
}

/// The filter to use, and whether lines carry level and module: `STEPJAIL_LOG` when set and
/// valid, else the `-v` level. An invalid `STEPJAIL_LOG` is reported (the returned warning)
/// and ignored.
pub fn choose_filter(verbosity: u8, env: Option<&str>) -> (EnvFilter, bool, Option<String>) {
    let fallback = || EnvFilter::new(default_directive(verbosity));
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(directive) => match EnvFilter::try_new(directive) {
            Ok(filter) => (filter, true, None),
            Err(e) => (
                fallback(),
                verbosity > 0,
                Some(format!("ignoring {LOG_VAR}={directive:?}: {e}")),
            ),
        },
        None => (fallback(), verbosity > 0, None),
    }
}

/// Installs the stderr subscriber for the process. Called once, by `cli::main`, before any
/// thread exists; a second call changes nothing.
pub fn init(verbosity: u8) {
    let env = std::env::var(LOG_VAR).ok();
    let (filter, detailed, warning) = choose_filter(verbosity, env.as_deref());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Line { detailed });
    if tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok()
        && let Some(w) = warning
    {
        tracing::warn!("{w}");
    }
}

/// One line per event: `stepjail: MESSAGE key=value ...`, with `LEVEL module:` after the
/// prefix when `detailed`.
struct Line {
    detailed: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str("stepjail: ")?;
        if self.detailed {
            let meta = event.metadata();
            let target = meta.target();
            let module = target.strip_prefix("stepjail::").unwrap_or(target);
            write!(w, "{} {module}: ", meta.level())?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the tests read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f`'s events print under `verbosity` and `env`, as `init` would set it up.
    fn printed(verbosity: u8, env: Option<&str>, f: impl FnOnce()) -> String {
        let (filter, detailed, _) = choose_filter(verbosity, env);
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .event_format(Line { detailed });
        let subscriber = tracing_subscriber::registry().with(filter).with(layer);
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    fn events() {
        tracing::warn!(
            "transparent capture unavailable (fd 7): boom; captured traffic goes nowhere"
        );
        tracing::info!(pid = 42, "step started");
        tracing::debug!(name = "example.com", "dialing");
        tracing::warn!(target: "hyper", "another crate");
    }

    #[test]
    fn by_default_warnings_print_as_before_and_nothing_else() {
        assert_eq!(
            printed(0, None, events),
            "stepjail: transparent capture unavailable (fd 7): boom; captured traffic goes nowhere\n"
        );
        // An empty STEPJAIL_LOG is no directive.
        assert_eq!(printed(0, Some(" "), events), printed(0, None, events));
    }

    #[test]
    fn v_and_vv_add_levels() {
        let v = printed(1, None, events);
        assert!(
            v.contains("stepjail: WARN diag::tests: transparent capture"),
            "{v}"
        );
        assert!(
            v.contains("stepjail: INFO diag::tests: step started pid=42\n"),
            "{v}"
        );
        assert!(!v.contains("dialing"), "{v}");
        let vv = printed(2, None, events);
        assert!(
            vv.contains("stepjail: DEBUG diag::tests: dialing name=\"example.com\"\n"),
            "{vv}"
        );
        assert!(!vv.contains("another crate"), "{vv}");
    }

    #[test]
    fn stepjail_log_wins_and_a_bad_one_is_reported_and_ignored() {
        let only_debug = printed(0, Some("stepjail=debug"), events);
        assert!(
            only_debug.contains("DEBUG diag::tests: dialing"),
            "{only_debug}"
        );
        let hyper = printed(0, Some("hyper=warn"), events);
        assert_eq!(hyper, "stepjail: WARN hyper: another crate\n");
        let (_, detailed, warning) = choose_filter(0, Some("stepjail=loud"));
        assert!(!detailed);
        assert!(
            warning
                .unwrap()
                .starts_with("ignoring STEPJAIL_LOG=\"stepjail=loud\"")
        );
    }
}
