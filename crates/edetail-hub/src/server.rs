//! The hub's connection server: accepts TCP (and TLS) connections and serves the hub's router
//! over HTTP/1.1 with the bounds `axum::serve` lacks: header read, idle, TLS handshake and
//! request-body timeouts, and caps on concurrent connections overall and per client address
//! ([`ServerLimits`]). Every request carries `ConnectInfo<SocketAddr>` (the peer address).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

/// Timeouts and connection bounds of a serving hub. The defaults suit tablets on slow,
/// lossy networks (hotel Wi-Fi, 3G) while closing silent or trickling connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request's head (request line and headers) must arrive within this time, counted from
    /// when the hub starts waiting for it.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no byte moving either way for this long is
    /// closed (also a response the client stopped reading).
    pub idle_timeout: Duration,
    /// A TLS client must complete its handshake within this time.
    pub tls_handshake_timeout: Duration,
    /// A request body (event batch, login form, visit report) must arrive completely within
    /// this time of the request head; otherwise 408. Not for publish uploads.
    pub body_timeout: Duration,
    /// Any request body (publish uploads included, which may be large and slow) must make
    /// progress: no chunk for this long answers 408.
    pub body_stall_timeout: Duration,
    /// At most this many connections at once; further ones are closed on accept.
    pub max_connections: usize,
    /// At most this many connections at once from one client address (0: no per-address
    /// cap, e.g. behind a reverse proxy where every connection comes from the proxy).
    pub max_connections_per_ip: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: crate::tls::HANDSHAKE_TIMEOUT,
            body_timeout: Duration::from_secs(120),
            body_stall_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_ip: 64,
        }
    }
}

impl ServerLimits {
    /// Checks that every timeout is positive and at least one connection is allowed.
    pub fn validate(&self) -> Result<(), String> {
        let timeouts = [
            ("header read timeout", self.header_read_timeout),
            ("idle timeout", self.idle_timeout),
            ("TLS handshake timeout", self.tls_handshake_timeout),
            ("body timeout", self.body_timeout),
            ("body stall timeout", self.body_stall_timeout),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("the {name} must be positive"));
        }
        if self.max_connections == 0 {
            return Err("at least one connection must be allowed".into());
        }
        Ok(())
    }
}

/// Which request bodies get only the stall timeout (no total deadline): large uploads.
fn is_large_upload(path: &str) -> bool {
    path == "/v1/publish"
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown` completes, then
/// stops accepting and finishes in-flight requests (idle connections close at once).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all have ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(Slots::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Resource exhaustion (EMFILE): back off instead of spinning, as axum does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip(), &limits) else {
            // Refused at once: the newest excess connection closes, the others keep being served.
            drop(tcp);
            slots.warn_refused(peer.ip());
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection { peer, router: router.clone(), limits, stop: stop_rx.clone(), _done: done_tx.clone(), _slot: slot };
        tokio::spawn(conn.run(tcp, tls.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
}

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Open connections, overall and per client address.
#[derive(Debug, Default)]
struct Slots {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &ServerLimits) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *counts;
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        if *total >= limits.max_connections || (limits.max_connections_per_ip > 0 && mine >= limits.max_connections_per_ip) {
            return None;
        }
        *total += 1;
        *per_ip.entry(ip).or_default() += 1;
        Some(Slot { slots: self.clone(), ip })
    }

    /// One warning per 10 s at most (a flood must not flood the log too).
    fn warn_refused(&self, ip: IpAddr) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            let (total, from_ip) = {
                let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
                (c.0, c.1.get(&ip).copied().unwrap_or(0))
            };
            tracing::warn!(client = %ip, open = total, open_from_client = from_ip, refused_total = n, "connection limit reached: refusing new connections");
        }
    }
}

/// A counted connection; uncounted when dropped.
#[derive(Debug)]
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are being handled.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A request being handled (until its response head is ready): the connection is not idle.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(a: &Arc<Activity>) -> Busy {
        a.busy.fetch_add(1, Ordering::Relaxed);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that records when bytes move.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One accepted connection and what it needs until it ends.
struct Connection {
    peer: SocketAddr,
    router: axum::Router,
    limits: ServerLimits,
    stop: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
    _slot: Slot,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let activity = Arc::new(Activity::new());
        let Some(acceptor) = tls else {
            return self.serve_http(Tracked { inner: tcp, activity: activity.clone() }, activity).await;
        };
        let handshake = tokio::select! {
            r = tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp)) => r,
            _ = self.stop.wait_for(|s| *s) => return,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve_http(Tracked { inner: stream, activity: activity.clone() }, activity).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn serve_http<S>(mut self, io: Tracked<S>, activity: Arc<Activity>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (peer, limits, router) = (self.peer, self.limits, self.router.clone());
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut router = router.clone();
            let busy = Busy::enter(&requests);
            async move {
                let large = is_large_upload(req.uri().path());
                let mut req = req.map(|body| TimedBody::new(body, &limits, large));
                req.extensions_mut().insert(ConnectInfo(peer));
                let resp = tower_service::Service::call(&mut router, req).await;
                drop(busy);
                resp
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
        // Upgrades: remote sessions' WebSockets (the socket then lives on in its own task).
        let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut tick = tokio::time::interval((limits.idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %peer, error = %e, "connection closed");
                    }
                    return;
                }
                _ = self.stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tick.tick() => {
                    if activity.busy.load(Ordering::Relaxed) == 0 && activity.idle_for() >= limits.idle_timeout {
                        tracing::debug!(peer = %peer, "idle connection closed");
                        return;
                    }
                }
            }
        }
    }
}

/// Why a request body was cut short (408 Request Timeout); handlers find it with
/// [`body_timeout_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    /// The whole body did not arrive within the body timeout.
    Total(Duration),
    /// No chunk arrived within the stall timeout.
    Stalled(Duration),
}

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyTimeout::Total(d) => write!(f, "the request body did not arrive within {} s", d.as_secs_f64()),
            BodyTimeout::Stalled(d) => write!(f, "the request body made no progress for {} s", d.as_secs_f64()),
        }
    }
}

impl std::error::Error for BodyTimeout {}

/// The body timeout behind a body-reading error, if that is what it was.
pub(crate) fn body_timeout_of(e: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<BodyTimeout>() {
            return Some(*t);
        }
        cur = err.source();
    }
    None
}

/// A request body with a total deadline (small bodies) and a stall timeout (every body).
struct TimedBody {
    inner: Incoming,
    deadline: Option<(Duration, Pin<Box<Sleep>>)>,
    stall: Duration,
    /// Started on the first read: a handler that reads the body late is not the client's fault.
    stall_timer: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl TimedBody {
    fn new(inner: Incoming, limits: &ServerLimits, large: bool) -> TimedBody {
        let deadline = (!large).then(|| (limits.body_timeout, Box::pin(tokio::time::sleep(limits.body_timeout))));
        TimedBody { inner, deadline, stall: limits.body_stall_timeout, stall_timer: None, failed: false }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(t) = &mut this.stall_timer {
                t.as_mut().reset(tokio::time::Instant::now() + this.stall);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timed_out = if let Some((d, t)) = &mut this.deadline
            && t.as_mut().poll(cx).is_ready()
        {
            Some(BodyTimeout::Total(*d))
        } else {
            let stall = this.stall;
            let timer = this.stall_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
            timer.as_mut().poll(cx).is_ready().then_some(BodyTimeout::Stalled(stall))
        };
        match timed_out {
            Some(t) => {
                this.failed = true;
                Poll::Ready(Some(Err(Box::new(t))))
            }
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
