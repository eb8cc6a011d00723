//! Starting the proxy (only after the sandbox child exists, see `sandbox::run`): the listeners
//! the child made inside the step's namespace are served on one thread of the proxy's own, with
//! a single-threaded runtime (an accepted connection is served where it was accepted: no
//! wake-up of another worker on its way), with the NFLOG socket of what the capture rules drop;
//! the userspace TCP stack of the TUN fallback, when there is one, on a multi-threaded runtime
//! of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::Engine;
use crate::net::Listeners;

/// How long a stopping proxy lets connections still open finish on their own: the step has
/// ended, so the kernel has closed its sockets and the relays are seeing that now.
const DRAIN: Duration = Duration::from_millis(500);

/// Keeps the proxy running; dropping it stops every listener and connection, which leaves the
/// step with no network at all. Dropping returns once every connection's close event is in the
/// audit log, so the log is complete before the step's end is written.
pub struct Proxy {
    /// The serving thread, and what tells it to stop.
    serving: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    /// The TUN fallback's runtime, when capture runs on the userspace TCP stack.
    tun_rt: Option<tokio::runtime::Runtime>,
    /// The NFLOG socket of what the capture rules dropped (kernel capture).
    dropped: Option<Arc<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>>,
    engine: Arc<Engine>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let deadline = Instant::now() + DRAIN;
        while self.engine.open_connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        tracing::debug!(open = self.engine.open_connections(), "proxy stopping");
        // Before the tasks go: tearing down a connection of the userspace TCP stack can
        // block its thread, and a close event must not depend on that.
        self.engine.close_all();
        super::stub::flush_limited(&self.engine);
        if let Some((stop, thread)) = self.serving.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        if let Some(rt) = self.tun_rt.take() {
            rt.shutdown_background();
        }
        // A datagram the step sent just before it ended is logged before the step's end.
        if let Some(fd) = self.dropped.take() {
            super::dropped::drain(fd.get_ref(), &self.engine);
        }
        self.engine.print_burst_end(true);
        // The run ends right after the proxy stops: what the engine holds is left to the
        // process's exit. (The allow rules are one table now, a buffer or a mapped cache
        // entry, so this saves little; it once saved ~1 ms of freeing 10,000 rules.)
        std::mem::forget(Arc::clone(&self.engine));
    }
}

/// Every relayed connection holds two descriptors (the step's side and the upstream), so the
/// supervisor raises its soft `RLIMIT_NOFILE` to the hard limit, as servers do. The step was
/// cloned before this and keeps the limits it was given.
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

pub fn start(listeners: Listeners, engine: Engine) -> std::io::Result<Proxy> {
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Arc::new(engine);
    let Listeners {
        proxy_v4,
        proxy_v6,
        dns_udp,
        dns_udp6,
        dns_tcp,
        captured,
        nflog,
        tun,
    } = listeners;
    // Converting the descriptors needs the runtime's reactor.
    let guard = rt.enter();
    let tcp = |fd| -> std::io::Result<tokio::net::TcpListener> {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    };
    let udp = |fd| -> std::io::Result<tokio::net::UdpSocket> {
        let u = std::net::UdpSocket::from(fd);
        u.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(u)
    };
    rt.spawn(super::explicit::serve(tcp(proxy_v4)?, engine.clone()));
    rt.spawn(super::explicit::serve(tcp(proxy_v6)?, engine.clone()));
    rt.spawn(super::stub::serve_udp(udp(dns_udp)?, engine.clone()));
    rt.spawn(super::stub::serve_udp(udp(dns_udp6)?, engine.clone()));
    rt.spawn(super::stub::serve_tcp(tcp(dns_tcp)?, engine.clone()));
    rt.spawn(super::captured::serve(tcp(captured)?, engine.clone()));
    let transparent = nflog.is_some() || tun.is_some();
    // What the capture rules drop is logged from here; its socket stays readable by `Drop`
    // too, which logs what arrived after the serving thread stopped.
    let dropped = match nflog {
        Some(fd) => {
            let fd = std::sync::Arc::new(crate::sys::async_fd(fd)?);
            rt.spawn(super::dropped::serve(fd.clone(), engine.clone()));
            Some(fd)
        }
        None => None,
    };
    drop(guard);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("stepjail-proxy".into())
        .spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            });
            rt.shutdown_background();
        })?;
    tracing::info!(transparent, tun_fallback = tun.is_some(), "proxy serving");
    // The fallback carries TCP on a userspace stack, whose teardown can block a thread: it
    // gets a runtime of its own.
    let tun_rt = match tun {
        Some(tun) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("stepjail-proxy-tun")
                .enable_all()
                .build()?;
            rt.spawn(super::transparent::serve(tun, engine.clone()));
            Some(rt)
        }
        None => None,
    };
    Ok(Proxy {
        serving: Some((stop, thread)),
        tun_rt,
        dropped,
        engine,
    })
}
