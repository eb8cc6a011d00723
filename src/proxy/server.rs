//! Starting the proxy: a tokio runtime on its own threads (created only after the sandbox child
//! exists, see `sandbox::run`) serving the listeners the child made inside the step's namespace.

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
    rt: Option<tokio::runtime::Runtime>,
    engine: Arc<Engine>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            let deadline = Instant::now() + DRAIN;
            while self.engine.open_connections() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            tracing::debug!(open = self.engine.open_connections(), "proxy stopping");
            // Before the tasks go: tearing down a connection of the userspace TCP stack can
            // block its thread, and a close event must not depend on that.
            self.engine.close_all();
            super::stub::flush_limited(&self.engine);
            rt.shutdown_background();
            self.engine.print_burst_end(true);
        }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("stepjail-proxy")
        .enable_all()
        .build()?;
    let engine = Arc::new(engine);
    let Listeners {
        proxy_v4,
        proxy_v6,
        dns_udp,
        dns_tcp,
        captured,
        tun,
    } = listeners;
    // Converting the descriptors needs the runtime's reactor.
    let _guard = rt.enter();
    let tcp = |fd| -> std::io::Result<tokio::net::TcpListener> {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    };
    let udp = std::net::UdpSocket::from(dns_udp);
    udp.set_nonblocking(true)?;
    let udp = tokio::net::UdpSocket::from_std(udp)?;
    rt.spawn(super::explicit::serve(tcp(proxy_v4)?, engine.clone()));
    rt.spawn(super::explicit::serve(tcp(proxy_v6)?, engine.clone()));
    rt.spawn(super::stub::serve_udp(udp, engine.clone()));
    rt.spawn(super::stub::serve_tcp(tcp(dns_tcp)?, engine.clone()));
    rt.spawn(super::captured::serve(tcp(captured)?, engine.clone()));
    tracing::info!(transparent = tun.is_some(), "proxy serving");
    if let Some(tun) = tun {
        rt.spawn(super::transparent::serve(tun, engine.clone()));
    }
    drop(_guard);
    Ok(Proxy {
        rt: Some(rt),
        engine,
    })
}
