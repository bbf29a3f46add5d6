//! A fault-injecting HTTP/1.1 proxy on loopback, placed between simulated devices and a real
//! hub in reliability tests. Each request gets one [`Fault`] from a seeded random plan or a
//! scripted queue: latency, bandwidth limits, reset or close after N response bytes, hang,
//! 500/503 with `Retry-After`, or the request delivered to the hub twice.
//!
//! One request per client connection (the proxy answers with `Connection: close`), so faults
//! never leak from one request into the next. Bodies are forwarded verbatim; only the
//! `Connection` header is rewritten.
//!
//! Besides faults, the link itself can be slowed ([`FaultProxy::set_link_bandwidth`]) and given a
//! request body limit answered with 413, as a reverse proxy in front of a hub would
//! ([`FaultProxy::set_request_body_limit`]). [`ProxyStats`] counts, per [`FaultKind`], the faults
//! whose effect actually took place.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body buffered (uploads are at most 1 MiB; bundle zips in publish tests more).
const MAX_BODY: usize = 512 * 1024 * 1024;
/// Receive buffer of the connection to the upstream. Small and fixed (no autotuning to tens of
/// MB), so that a throttled response waits at the upstream rather than here: when a test kills
/// the upstream mid-response, the client's body is cut about where the proxy had got to.
const UPSTREAM_RECV_BUFFER: u32 = 64 * 1024;

/// What happens to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded untouched.
    None,
    /// Wait before forwarding the response.
    Latency(Duration),
    /// Forward the response at this many bytes per second.
    Bandwidth(u64),
    /// Forward this many response bytes, then close the connection cleanly (a truncated body).
    CloseAfter(usize),
    /// Forward this many response bytes, then reset the connection (RST).
    ResetAfter(usize),
    /// Forward the request, then never answer (until the client gives up).
    Hang,
    /// Answer with this status (500/503/429) and `Retry-After` seconds, without forwarding.
    Status { code: u16, retry_after_secs: Option<u64> },
    /// Deliver the request to the upstream twice; the client sees the second response.
    Duplicate,
    /// Deliver the request, drop the upstream's response and close: the request took effect
    /// but the client never learns it (the lost-response case).
    DropResponse,
}

/// The kind of a [`Fault`] (statuses by code), for counting; also the 413 of the request body
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Latency,
    Bandwidth,
    CloseAfter,
    ResetAfter,
    Hang,
    Status(u16),
    Duplicate,
    DropResponse,
    /// A request body over [`FaultProxy::set_request_body_limit`], answered 413.
    BodyTooLarge,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Latency => f.write_str("latency"),
            FaultKind::Bandwidth => f.write_str("bandwidth"),
            FaultKind::CloseAfter => f.write_str("close_after"),
            FaultKind::ResetAfter => f.write_str("reset_after"),
            FaultKind::Hang => f.write_str("hang"),
            FaultKind::Status(code) => write!(f, "status_{code}"),
            FaultKind::Duplicate => f.write_str("duplicate"),
            FaultKind::DropResponse => f.write_str("drop_response"),
            FaultKind::BodyTooLarge => f.write_str("body_too_large"),
        }
    }
}

impl Fault {
    /// The kind of this fault; `None` for [`Fault::None`].
    pub fn kind(&self) -> Option<FaultKind> {
        Some(match self {
            Fault::None => return None,
            Fault::Latency(_) => FaultKind::Latency,
            Fault::Bandwidth(_) => FaultKind::Bandwidth,
            Fault::CloseAfter(_) => FaultKind::CloseAfter,
            Fault::ResetAfter(_) => FaultKind::ResetAfter,
            Fault::Hang => FaultKind::Hang,
            Fault::Status { code, .. } => FaultKind::Status(*code),
            Fault::Duplicate => FaultKind::Duplicate,
            Fault::DropResponse => FaultKind::DropResponse,
        })
    }
}

/// How faults are chosen.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Faults for the next requests, in order, before random choice applies.
    pub scripted: VecDeque<Fault>,
    /// Probability (0..=1) that an unscripted request gets a random fault.
    pub fault_rate: f64,
    pub seed: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan { scripted: VecDeque::new(), fault_rate: 0.0, seed: 1 }
    }
}

/// Counters, for assertions.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    /// Requests a fault was chosen for (scripted or random), whether or not it took effect.
    pub faults: AtomicU64,
    pub duplicates_sent: AtomicU64,
    /// Response bytes (heads and bodies) forwarded from the upstream to clients.
    pub response_bytes: AtomicU64,
    /// Faults whose effect took place, per kind (see [`ProxyStats::injected`]).
    injected: Mutex<BTreeMap<FaultKind, u64>>,
}

impl ProxyStats {
    /// How many faults of `kind` actually took effect: the delay was waited, the response
    /// throttled, the body cut before its end (a `CloseAfter`/`ResetAfter` longer than the
    /// response does nothing and is not counted), the request forwarded and then left hanging,
    /// the status answered, the request delivered twice, the upstream's answer dropped, the
    /// request body refused as too large.
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.injected.lock().unwrap_or_else(|e| e.into_inner()).get(&kind).copied().unwrap_or(0)
    }

    /// Every kind injected at least once, with its count.
    pub fn injected_by_kind(&self) -> BTreeMap<FaultKind, u64> {
        self.injected.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count_injected(&self, kind: FaultKind) {
        *self.injected.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: Mutex<(FaultPlan, u64)>,
    enabled: AtomicBool,
    /// Bytes per second for every forwarded response without a `Bandwidth` fault; 0 = unlimited.
    link_bandwidth: AtomicU64,
    /// Largest request body forwarded; larger ones are answered 413. `u64::MAX` = no limit.
    request_body_limit: AtomicU64,
    stats: ProxyStats,
}

/// A running proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 in front of `upstream`.
    pub async fn start(upstream: SocketAddr, plan: FaultPlan) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let seed = plan.seed | 1;
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new((plan, seed)),
            enabled: AtomicBool::new(true),
            link_bandwidth: AtomicU64::new(0),
            request_body_limit: AtomicU64::new(u64::MAX),
            stats: ProxyStats::default(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = handle(client, s).await;
                });
            }
        });
        Ok(FaultProxy { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults stop (every request is forwarded untouched) or resume.
    pub fn set_faults_enabled(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    /// Throttles every forwarded response to `bytes_per_sec` (a slow link), except those a
    /// `Bandwidth` fault throttles itself; `None` = full speed. Not counted as a fault.
    pub fn set_link_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.shared.link_bandwidth.store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// Answers 413 to requests whose body (as sent, e.g. gzipped) is over `bytes`, without
    /// forwarding them, as a reverse proxy with a body limit does; `None` = no limit. Applies
    /// even while faults are disabled; each 413 counts as [`FaultKind::BodyTooLarge`].
    pub fn set_request_body_limit(&self, bytes: Option<usize>) {
        self.shared.request_body_limit.store(bytes.map_or(u64::MAX, |b| b as u64), Ordering::SeqCst);
    }

    /// Queues faults for the next requests.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        let mut p = self.shared.plan.lock().unwrap_or_else(|e| e.into_inner());
        p.0.scripted.extend(faults);
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn choose(shared: &Shared) -> Fault {
    if !shared.enabled.load(Ordering::SeqCst) {
        return Fault::None;
    }
    let mut guard = shared.plan.lock().unwrap_or_else(|e| e.into_inner());
    let (plan, rng) = &mut *guard;
    if let Some(f) = plan.scripted.pop_front() {
        return f;
    }
    let roll = (next_random(rng) % 10_000) as f64 / 10_000.0;
    if roll >= plan.fault_rate {
        return Fault::None;
    }
    match next_random(rng) % 9 {
        0 => Fault::Latency(Duration::from_millis(50 + next_random(rng) % 400)),
        1 => Fault::Bandwidth(64 * 1024 + next_random(rng) % (512 * 1024)),
        2 => Fault::CloseAfter((next_random(rng) % 4096) as usize),
        3 => Fault::ResetAfter((next_random(rng) % 4096) as usize),
        4 => Fault::Hang,
        5 => Fault::Status { code: 503, retry_after_secs: Some(1) },
        6 => Fault::Status { code: 500, retry_after_secs: None },
        7 => Fault::Duplicate,
        _ => Fault::DropResponse,
    }
}

/// Reads one request (head + Content-Length body) and answers it with its body length.
/// Chunked request bodies are refused.
async fn read_request(s: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        return Err(std::io::Error::other("chunked request bodies are not supported by the fault proxy"));
    }
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    if len > MAX_BODY {
        return Err(std::io::Error::other("request body too large"));
    }
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.truncate(head_end + len);
    Ok(Some((with_connection_close(&buf), len)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces any `Connection` header with `Connection: close` in a message head.
fn with_connection_close(msg: &[u8]) -> Vec<u8> {
    let Some(end) = find(msg, b"\r\n\r\n") else { return msg.to_vec() };
    let head = String::from_utf8_lossy(&msg[..end]);
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut v = out.into_bytes();
    v.extend_from_slice(&msg[end + 4..]);
    v
}

async fn exchange(upstream: SocketAddr, request: &[u8]) -> std::io::Result<TcpStream> {
    let socket = if upstream.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_recv_buffer_size(UPSTREAM_RECV_BUFFER)?;
    let mut up = socket.connect(upstream).await?;
    up.write_all(request).await?;
    Ok(up)
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).await?;
    Ok(v)
}

/// Writes a complete response with a JSON `ErrorBody`-shaped body and closes.
async fn answer_status(client: &mut TcpStream, code: u16, retry_after_secs: Option<u64>) -> std::io::Result<()> {
    let (reason, kind) = match code {
        413 => ("Payload Too Large", "too_large"),
        429 => ("Too Many Requests", "rate_limited"),
        503 => ("Service Unavailable", "unavailable"),
        _ => ("Internal Server Error", "internal"),
    };
    let body = match retry_after_secs {
        Some(s) => format!("{{\"code\":\"{kind}\",\"message\":\"injected by fault proxy\",\"retry_after_ms\":{}}}", s * 1000),
        None => format!("{{\"code\":\"{kind}\",\"message\":\"injected by fault proxy\"}}"),
    };
    let retry = retry_after_secs.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(resp.as_bytes()).await?;
    client.shutdown().await
}

async fn handle(mut client: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let Some((request, body_len)) = read_request(&mut client).await? else { return Ok(()) };
    shared.stats.requests.fetch_add(1, Ordering::SeqCst);
    let stats = &shared.stats;
    if body_len as u64 > shared.request_body_limit.load(Ordering::SeqCst) {
        // Counted before the answer (as every fault the client sees at once): a client that
        // reads the proxy's figures as soon as it has the 413 must find it counted.
        stats.count_injected(FaultKind::BodyTooLarge);
        answer_status(&mut client, 413, None).await?;
        return Ok(());
    }
    let fault = choose(&shared);
    if fault != Fault::None {
        stats.faults.fetch_add(1, Ordering::SeqCst);
    }
    let link = Some(shared.link_bandwidth.load(Ordering::SeqCst)).filter(|b| *b > 0);
    let plain = Pump { bps: link, limit: None, reset: false, stats };
    match fault {
        Fault::Status { code, retry_after_secs } => {
            stats.count_injected(FaultKind::Status(code));
            answer_status(&mut client, code, retry_after_secs).await?;
            Ok(())
        }
        Fault::Duplicate => {
            let first = exchange(shared.upstream, &request).await?;
            let _ = read_all(first).await?;
            let second = exchange(shared.upstream, &request).await?;
            stats.duplicates_sent.fetch_add(1, Ordering::SeqCst);
            stats.count_injected(FaultKind::Duplicate);
            plain.run(second, client).await
        }
        Fault::DropResponse => {
            let up = exchange(shared.upstream, &request).await?;
            let _ = read_all(up).await?;
            stats.count_injected(FaultKind::DropResponse);
            drop(client);
            Ok(())
        }
        Fault::Hang => {
            let _up = exchange(shared.upstream, &request).await?;
            stats.count_injected(FaultKind::Hang);
            // Hold both connections open until the client gives up.
            let mut sink = [0u8; 1];
            let _ = client.read(&mut sink).await;
            Ok(())
        }
        Fault::Latency(d) => {
            tokio::time::sleep(d).await;
            stats.count_injected(FaultKind::Latency);
            let up = exchange(shared.upstream, &request).await?;
            plain.run(up, client).await
        }
        Fault::Bandwidth(bps) => {
            let up = exchange(shared.upstream, &request).await?;
            stats.count_injected(FaultKind::Bandwidth);
            Pump { bps: Some(bps), ..plain }.run(up, client).await
        }
        Fault::CloseAfter(n) => {
            let up = exchange(shared.upstream, &request).await?;
            Pump { limit: Some((n, FaultKind::CloseAfter)), ..plain }.run(up, client).await
        }
        Fault::ResetAfter(n) => {
            let up = exchange(shared.upstream, &request).await?;
            Pump { limit: Some((n, FaultKind::ResetAfter)), reset: true, ..plain }.run(up, client).await
        }
        Fault::None => {
            let up = exchange(shared.upstream, &request).await?;
            plain.run(up, client).await
        }
    }
}

/// Copies an upstream response to the client, forcing `Connection: close` in its head,
/// optionally throttled to `bps` and cut after `limit` bytes (with a reset when `reset`).
#[derive(Clone, Copy)]
struct Pump<'a> {
    bps: Option<u64>,
    /// Bytes to forward before cutting, and the fault kind counted when the cut happens.
    limit: Option<(usize, FaultKind)>,
    reset: bool,
    stats: &'a ProxyStats,
}

impl Pump<'_> {
    async fn run(self, mut up: TcpStream, mut client: TcpStream) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        // Read the response head to rewrite Connection.
        let body_start = loop {
            if let Some(i) = find(&head, b"\r\n\r\n") {
                break i + 4;
            }
            let n = up.read(&mut chunk).await?;
            if n == 0 {
                break head.len();
            }
            head.extend_from_slice(&chunk[..n]);
        };
        let mut first = with_connection_close(&head[..body_start.min(head.len())]);
        first.extend_from_slice(&head[body_start.min(head.len())..]);
        let mut sent = 0usize;
        let mut pending = first;
        loop {
            if pending.is_empty() {
                let n = up.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&chunk[..n]);
            }
            let mut take = pending.len();
            if let Some((l, kind)) = self.limit {
                take = take.min(l.saturating_sub(sent));
                if take == 0 {
                    if self.reset {
                        client.set_zero_linger()?;
                    }
                    drop(client);
                    self.stats.count_injected(kind);
                    return Ok(());
                }
            }
            if let Some(b) = self.bps {
                take = take.min((b / 20).max(1) as usize);
            }
            client.write_all(&pending[..take]).await?;
            self.stats.response_bytes.fetch_add(take as u64, Ordering::SeqCst);
            sent += take;
            pending.drain(..take);
            if let Some(b) = self.bps {
                tokio::time::sleep(Duration::from_secs_f64(take as f64 / b as f64)).await;
            }
        }
        client.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_header_is_rewritten() {
        let r = with_connection_close(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nBODY");
        assert_eq!(r, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nBODY".to_vec());
    }
}
