//! Child processes (Klaxon, the helper servers) and what `/proc` says about them.
//!
//! Every child is spawned with `kill_on_drop`, and its pid is appended to a
//! file that `bench/run.sh` reads on exit, so none outlives the bench whether it
//! ends normally, with an error, or is interrupted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the pids of children go (one a line), for run.sh's clean-up.
pub fn record_pid(pid_file: &Path, pid: u32) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pid_file)
    {
        let _ = writeln!(f, "{pid}");
    }
}

/// A helper server (`klaxon-bench __fake-slack` / `__baseline`) and its address.
pub struct Helper {
    /// Held so the process lives as long as this value (`kill_on_drop`).
    pub _process: Child,
    pub pid: u32,
    pub addr: std::net::SocketAddr,
}

pub async fn spawn_helper(which: &str, pid_file: &Path) -> anyhow::Result<Helper> {
    let exe = std::env::current_exe().context("cannot find klaxon-bench's own path")?;
    let mut child = Command::new(exe)
        .arg(which)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {which}"))?;
    let pid = child.id().context("helper has no pid")?;
    record_pid(pid_file, pid);
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("helper did not start in 10 s")??
        .context("helper exited before it listened")?;
    let addr = line
        .strip_prefix("LISTENING ")
        .context("unexpected helper output")?
        .parse()?;
    Ok(Helper {
        _process: child,
        pid,
        addr,
    })
}

/// A free port on 127.0.0.1 (bound and released; a race is very unlikely here).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// How to run Klaxon: the binary, the config file and the environment.
#[derive(Clone)]
pub struct KlaxonSetup {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
    pub pid_file: PathBuf,
    /// CPUs to pin Klaxon to (`taskset -c` syntax, such as `1` or `0-1`);
    /// `None` leaves it to the kernel. `taskset` execs Klaxon, so the pid
    /// the bench measures is Klaxon's own.
    pub cpus: Option<String>,
}

impl KlaxonSetup {
    fn command(&self, database_url: &str, listen: &str, log: &Path) -> anyhow::Result<Command> {
        let mut cmd = match &self.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("KLAXON_DATABASE_URL", database_url)
            .env("KLAXON_LISTEN", listen)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(
                log.with_extension("log"),
            )?))
            .stderr(Stdio::from(std::fs::File::create(
                log.with_extension("stderr"),
            )?))
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// `klaxon migrate`: creates the schema of a fresh database.
    pub async fn migrate(&self, database_url: &str, log: &Path) -> anyhow::Result<()> {
        let mut cmd = self.command(database_url, "127.0.0.1:1", log)?;
        cmd.arg("migrate").arg("--config").arg(&self.config);
        let status = tokio::time::timeout(Duration::from_secs(60), cmd.status())
            .await
            .context("klaxon migrate took over 60 s")??;
        if !status.success() {
            bail!("klaxon migrate failed ({status}); see {}", log.display());
        }
        Ok(())
    }

    /// `klaxon serve`, timed from the spawn to the first 200 from `/readyz`.
    pub async fn start(
        &self,
        database_url: &str,
        log: &Path,
    ) -> anyhow::Result<(Klaxon, Duration)> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = self.command(database_url, &listen, log)?;
        cmd.arg("serve").arg("--config").arg(&self.config);
        let http = control_client()?;
        let url = format!("http://{listen}/readyz");
        let spawned = Instant::now();
        let mut child = cmd.spawn().context("cannot start klaxon")?;
        let pid = child.id().context("klaxon has no pid")?;
        record_pid(&self.pid_file, pid);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().as_u16() == 200
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("klaxon exited at start ({status}); see {}", log.display());
            }
            if spawned.elapsed() > Duration::from_secs(60) {
                bail!("klaxon was not ready within 60 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ready = spawned.elapsed();
        Ok((
            Klaxon {
                child,
                pid,
                addr: ([127, 0, 0, 1], port).into(),
                http,
            },
            ready,
        ))
    }
}

/// For the few control requests (readiness, metrics): no proxy, short timeouts.
pub fn control_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()?)
}

/// A running `klaxon serve`.
pub struct Klaxon {
    pub child: Child,
    pub pid: u32,
    pub addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl Klaxon {
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics::parse(&text))
    }

    /// SIGTERM, then up to 20 s for a clean exit, then SIGKILL. Returns how long
    /// the shutdown took and whether it was clean.
    pub async fn stop(mut self) -> (Duration, String) {
        let started = Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => (started.elapsed(), status.to_string()),
            Ok(Err(e)) => (started.elapsed(), format!("wait failed: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                (started.elapsed(), "did not stop within 20 s; killed".into())
            }
        }
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }
}

/// `/proc/<pid>/status` fields in kB (VmRSS, VmHWM).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Busy clock ticks of the whole machine (all cores), from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4).copied().unwrap_or(0))
}

/// `(ppid, utime + stime, cutime + cstime)` of a process.
fn stat_fields(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((u32::try_from(n(1)?).ok()?, n(11)? + n(12)?, n(13)? + n(14)?))
}

/// CPU ticks of the PostgreSQL cluster listening on `port`: the postmaster,
/// its live children, and the children it has already reaped.
pub fn postgres_ticks(port: u16) -> Option<u64> {
    let needle = format!("-p {port}");
    let mut postmaster = None;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        pids.push(pid);
        if postmaster.is_none()
            && let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
        {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("postgres") && cmd.contains(&needle) {
                postmaster = Some(pid);
            }
        }
    }
    let pm = postmaster?;
    let (_, own, reaped) = stat_fields(pm)?;
    let children: u64 = pids
        .iter()
        .filter_map(|p| stat_fields(*p))
        .filter(|(ppid, _, _)| *ppid == pm)
        .map(|(_, t, _)| t)
        .sum();
    Some(own + reaped + children)
}

/// CPU counters at one instant: the machine, Klaxon (or the baseline server),
/// the bench itself (the load generator), the fake Slack and PostgreSQL.
#[derive(Debug, Clone)]
pub struct CpuSnap {
    at: Instant,
    machine: Option<u64>,
    server: Option<u64>,
    bench: Option<u64>,
    slack: Option<u64>,
    postgres: Option<u64>,
}

pub fn cpu_snap(server: u32, slack: u32, pg_port: Option<u16>) -> CpuSnap {
    CpuSnap {
        at: Instant::now(),
        machine: machine_busy_ticks(),
        server: cpu_ticks(server),
        bench: cpu_ticks(std::process::id()),
        slack: cpu_ticks(slack),
        postgres: pg_port.and_then(postgres_ticks),
    }
}

/// Where the CPU went during a run, in % of one core (the machine has
/// `nproc` × 100%). `other` is every process not part of the bench.
#[derive(Debug, Clone, Copy)]
pub struct CpuSplit {
    pub server: f64,
    pub bench: f64,
    pub slack: f64,
    pub postgres: f64,
    pub other: f64,
    pub machine: f64,
}

pub fn cpu_split(a: &CpuSnap, b: &CpuSnap) -> Option<CpuSplit> {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let hz = clock_ticks_per_sec() as f64;
    let pct = |x: Option<u64>, y: Option<u64>| -> Option<f64> {
        Some(y?.saturating_sub(x?) as f64 / hz / secs * 100.0)
    };
    let server = pct(a.server, b.server)?;
    let bench = pct(a.bench, b.bench)?;
    let slack = pct(a.slack, b.slack).unwrap_or(0.0);
    let postgres = pct(a.postgres, b.postgres).unwrap_or(0.0);
    let machine = pct(a.machine, b.machine)?;
    Some(CpuSplit {
        server,
        bench,
        slack,
        postgres,
        other: (machine - server - bench - slack - postgres).max(0.0),
        machine,
    })
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server {:.0}% · load generator {:.0}% · fake Slack {:.0}% · PostgreSQL {:.0}% · other processes {:.0}% (machine {:.0}% of {}%)",
            self.server,
            self.bench,
            self.slack,
            self.postgres,
            self.other,
            self.machine,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                * 100
        )
    }
}

/// What the bench reads from Klaxon's `/metrics` (OpenMetrics text).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `klaxon_job_lateness_seconds_bucket{le="…"}`: (upper bound, cumulative count).
    pub lateness: Vec<(f64, u64)>,
    pub gauges: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("klaxon_job_lateness_seconds_bucket{le=\"") {
                // The escalation steps' series: the timer jobs the bench inserts.
                let Some((le, rest)) = rest.split_once('"') else {
                    continue;
                };
                if !rest.starts_with(",lane=\"paging\",kind=\"escalate\"}") {
                    continue;
                }
                let Some((_, count)) = rest.rsplit_once(' ') else {
                    continue;
                };
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                if let Ok(n) = count.trim().parse::<f64>() {
                    m.lateness.push((bound, n as u64));
                }
            } else if let Some((name, value)) = line.rsplit_once(' ')
                && let Ok(v) = value.trim().parse::<f64>()
            {
                // Labelled series keep their labels: `klaxon_jobs_pending{lane="paging"}`.
                m.gauges.insert(name.to_string(), v);
            }
        }
        m
    }

    pub fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.get(name).copied()
    }

    pub fn lateness_count(&self) -> u64 {
        self.lateness.last().map(|(_, n)| *n).unwrap_or(0)
    }
}

/// Quantiles from the difference of two cumulative bucket snapshots: each is
/// the upper bound of the bucket the quantile falls in.
#[derive(Debug, Clone)]
pub struct BucketQuantiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    /// The smallest bound that holds every observation.
    pub max: f64,
}

pub fn bucket_quantiles(before: &Metrics, after: &Metrics) -> Option<BucketQuantiles> {
    let base: BTreeMap<String, u64> = before
        .lateness
        .iter()
        .map(|(b, n)| (b.to_string(), *n))
        .collect();
    let diff: Vec<(f64, u64)> = after
        .lateness
        .iter()
        .map(|(b, n)| {
            (
                *b,
                n.saturating_sub(*base.get(&b.to_string()).unwrap_or(&0)),
            )
        })
        .collect();
    let count = diff.last()?.1;
    if count == 0 {
        return None;
    }
    let at = |q: f64| {
        let need = (q * count as f64).ceil() as u64;
        diff.iter()
            .find(|(_, n)| *n >= need.max(1))
            .map(|(b, _)| *b)
            .unwrap_or(f64::INFINITY)
    };
    Some(BucketQuantiles {
        count,
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    })
}

/// Counts Klaxon's log lines (JSON, one a line) by level and message, and
/// keeps any line that is not JSON (a panic, say) as it is.
pub fn summarize_log(path: &Path) -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let key = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("?");
                if level == "INFO" || level == "DEBUG" || level == "TRACE" {
                    continue;
                }
                let fields = v.get("fields");
                let message = fields
                    .and_then(|f| f.get("message"))
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                let error = fields
                    .and_then(|f| f.get("error").or_else(|| f.get("reason")))
                    .and_then(|m| m.as_str())
                    .map(|e| format!(" (error: {})", e.chars().take(160).collect::<String>()))
                    .unwrap_or_default();
                format!("{level} {message}{error}")
            }
            Err(_) => format!("(not JSON) {}", line.chars().take(200).collect::<String>()),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let before = Metrics::parse(
            "klaxon_job_lateness_seconds_bucket{le=\"0.001\",lane=\"paging\",kind=\"escalate\"} 1\n\
             klaxon_job_lateness_seconds_bucket{le=\"0.002\",lane=\"paging\",kind=\"escalate\"} 1\n\
             klaxon_job_lateness_seconds_bucket{le=\"+Inf\",lane=\"paging\",kind=\"escalate\"} 1\n",
        );
        let after = Metrics::parse(
            "klaxon_job_lateness_seconds_bucket{le=\"0.001\",lane=\"paging\",kind=\"escalate\"} 61\n\
             klaxon_job_lateness_seconds_bucket{le=\"0.002\",lane=\"paging\",kind=\"escalate\"} 100\n\
             klaxon_job_lateness_seconds_bucket{le=\"+Inf\",lane=\"paging\",kind=\"escalate\"} 101\n\
             klaxon_jobs_pending 5\n",
        );
        let q = bucket_quantiles(&before, &after).expect("observations");
        assert_eq!(q.count, 100);
        assert_eq!(q.p50, 0.001);
        assert_eq!(q.p99, 0.002);
        assert_eq!(q.max, f64::INFINITY);
        assert_eq!(after.gauge("klaxon_jobs_pending"), Some(5.0));
    }

    #[test]
    fn own_cpu_and_memory() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(status_kb(me, "VmRSS").unwrap_or(0) > 0);
    }
}
