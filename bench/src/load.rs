//! The load generator: a fixed number of HTTP/1.1 keep-alive connections
//! (one tokio task each, hyper's client connection directly, no pool), each
//! sending one request at a time to an address on 127.0.0.1.
//!
//! - Closed loop ([`closed`]): every connection sends its next request as soon
//!   as the previous answer is in — the saturation throughput, and the latency
//!   at that throughput.
//! - Open loop ([`open`]): requests are due at a fixed rate whatever the server
//!   does (request `i` at `start + i / rate`, spread over the connections). A
//!   request that could not be sent on time because its connection was still
//!   waiting for an earlier answer is timed from when it was due, so queueing
//!   counts in its latency (no coordinated omission). One sent late only
//!   because the generator's own timer woke late is timed from when it was sent.
//!
//! Every run is bounded in time and in number of requests. Latencies go into an
//! HdrHistogram in microseconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Builds the requests of one connection (it may remember what it sent).
pub trait Maker: Send + 'static {
    fn next(&mut self) -> Request<Full<Bytes>>;
}

/// Sorts an answer: `Ok(())` when it counts as accepted, else a short label.
pub type Classify = fn(StatusCode, &[u8]) -> Result<&'static str, String>;

/// The outcome of one run, all connections merged.
pub struct Report {
    /// Latency of every answered request (accepted or not), in µs.
    pub hist: Histogram<u64>,
    /// Answers that counted as accepted.
    pub ok: u64,
    /// Requests sent (answered or failed).
    pub sent: u64,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Count per outcome label (`200`, `200 duplicate`, `503`, `io: …`).
    pub outcomes: BTreeMap<String, u64>,
    /// Where the CPU went meanwhile (filled in by the caller).
    pub cpu: Option<crate::proc::CpuSplit>,
}

impl Report {
    /// No answers yet.
    fn empty() -> Report {
        Report {
            hist: new_hist(),
            ok: 0,
            sent: 0,
            elapsed: Duration::ZERO,
            outcomes: BTreeMap::new(),
            cpu: None,
        }
    }
    pub fn ok_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn sent_per_sec(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Answers or failures that did not count as accepted.
    pub fn failures(&self) -> u64 {
        self.sent - self.ok
    }
    pub fn ms(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }
    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
    /// `p50 0.41 / p99 1.9 / max 12 ms`.
    pub fn latency_line(&self) -> String {
        format!(
            "p50 {} / p99 {} / max {} ms",
            fmt_ms(self.ms(0.5)),
            fmt_ms(self.ms(0.99)),
            fmt_ms(self.max_ms())
        )
    }
    /// Outcomes other than accepted ones, e.g. `503 ×12; io: reset ×1`.
    pub fn problems(&self) -> Vec<(String, u64)> {
        self.outcomes
            .iter()
            .filter(|(k, _)| !k.starts_with("ok"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// One keep-alive connection, reopened after a transport error.
struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn connect(&mut self) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        if self.sender.is_none() {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("not connected".into());
        };
        if sender.ready().await.is_err() {
            self.sender = None;
            return Err("io: connection closed".into());
        }
        let result = async {
            let response = sender.send_request(req).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        result.map_err(|e| {
            self.sender = None;
            format!("io: {e}")
        })
    }
}

struct Partial {
    hist: Histogram<u64>,
    ok: u64,
    sent: u64,
    last: Instant,
    outcomes: BTreeMap<String, u64>,
}

impl Partial {
    fn new(start: Instant) -> Partial {
        Partial {
            hist: new_hist(),
            ok: 0,
            sent: 0,
            last: start,
            outcomes: BTreeMap::new(),
        }
    }

    fn record(
        &mut self,
        from: Instant,
        result: Result<(StatusCode, Bytes), String>,
        classify: Classify,
    ) {
        let done = Instant::now();
        self.sent += 1;
        self.last = done;
        let label = match result {
            Ok((status, body)) => {
                let micros =
                    u64::try_from(done.duration_since(from).as_micros()).unwrap_or(u64::MAX);
                self.hist.saturating_record(micros.max(1));
                match classify(status, &body) {
                    Ok(label) => {
                        self.ok += 1;
                        label.to_string()
                    }
                    Err(label) => label,
                }
            }
            Err(e) => e,
        };
        *self.outcomes.entry(label).or_insert(0) += 1;
    }
}

async fn merge(
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<Partial>>,
) -> anyhow::Result<Report> {
    let mut report = Report::empty();
    let mut last = start;
    for t in tasks {
        let p = t.await?;
        report.hist.add(&p.hist)?;
        report.ok += p.ok;
        report.sent += p.sent;
        last = last.max(p.last);
        for (k, v) in p.outcomes {
            *report.outcomes.entry(k).or_insert(0) += v;
        }
    }
    report.elapsed = last.duration_since(start);
    Ok(report)
}

/// One report of several loads run side by side (against several servers):
/// counts and latencies added up, the longest elapsed time.
pub fn merge_reports(reports: Vec<Report>) -> anyhow::Result<Report> {
    let mut all = Report::empty();
    for r in reports {
        all.hist.add(&r.hist)?;
        all.ok += r.ok;
        all.sent += r.sent;
        all.elapsed = all.elapsed.max(r.elapsed);
        for (k, v) in r.outcomes {
            *all.outcomes.entry(k).or_insert(0) += v;
        }
    }
    Ok(all)
}

/// Every connection sends back to back for `duration` or until `max_requests`
/// have been sent in all.
pub async fn closed<M: Maker>(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    max_requests: u64,
    mut make: impl FnMut(usize) -> M,
    classify: Classify,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let deadline = start + duration;
    let budget = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(conns);
    for k in 0..conns {
        let mut maker = make(k);
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn { addr, sender: None };
            let mut part = Partial::new(start);
            while Instant::now() < deadline && budget.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let req = maker.next();
                let sent_at = Instant::now();
                let result = conn.send(req).await;
                let failed = result.is_err();
                part.record(sent_at, result, classify);
                if failed {
                    // A dead server must not turn this into a busy loop.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            part
        }));
    }
    merge(start, tasks).await
}

/// Requests due at `rate` per second for `duration`, over `conns` connections.
pub async fn open<M: Maker>(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    duration: Duration,
    mut make: impl FnMut(usize) -> M,
    classify: Classify,
) -> anyhow::Result<Report> {
    // Connect first, so connection set-up is not part of the first latencies.
    let mut ready = Vec::with_capacity(conns);
    for k in 0..conns {
        let mut conn = Conn { addr, sender: None };
        conn.connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
        ready.push((conn, make(k)));
    }
    let start = Instant::now() + Duration::from_millis(20);
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut tasks = Vec::with_capacity(conns);
    for (k, (mut conn, mut maker)) in ready.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut part = Partial::new(start);
            let mut free_since = start;
            let mut i = k as u64;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent_at = Instant::now();
                // Busy connection at the due time: the wait is queueing and counts.
                let from = if free_since > due { due } else { sent_at };
                let req = maker.next();
                let result = conn.send(req).await;
                part.record(from, result, classify);
                free_since = Instant::now();
                i += conns as u64;
            }
            part
        }));
    }
    merge(start, tasks).await
}
