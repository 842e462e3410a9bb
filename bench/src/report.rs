//! The one table, and the notes under it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::db::Backend;
use crate::load::{Report, fmt_ms};
use crate::proc::summarize_log;
use crate::{MainPhase, Plan, TimerPhase};

pub struct BackendRun {
    pub backend: Backend,
    pub main: Result<MainPhase, String>,
    pub timers: Result<TimerPhase, String>,
}

impl BackendRun {
    pub fn skipped(backend: Backend, why: &str) -> BackendRun {
        BackendRun {
            backend,
            main: Err(why.to_string()),
            timers: Err(why.to_string()),
        }
    }
}

pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub baseline: &'a Report,
    pub runs: &'a [BackendRun],
    pub slack_calls: &'a [(String, u64)],
    pub out: &'a Path,
    /// The CPUs Klaxon was pinned to, if it was (`--klaxon-cpus`).
    pub klaxon_cpus: Option<&'a str>,
}

/// `12,345`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MB", k as f64 * 1024.0 / 1e6))
        .unwrap_or_else(|| "?".into())
}

fn secs_bound(s: f64) -> String {
    if s.is_infinite() {
        "> 65 s".into()
    } else if s < 1.0 {
        format!("≤ {} ms", fmt_ms(s * 1000.0))
    } else {
        format!("≤ {s} s")
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Did each back end meet the target (`None`: not judged there)?
fn verdict(marks: &[(Backend, Option<bool>)]) -> String {
    let judged: Vec<_> = marks
        .iter()
        .filter_map(|(b, m)| m.map(|m| (*b, m)))
        .collect();
    if judged.is_empty() {
        return "not measured".into();
    }
    let missed: Vec<&str> = judged
        .iter()
        .filter(|(_, m)| !m)
        .map(|(b, _)| b.name())
        .collect();
    let names: Vec<&str> = judged.iter().map(|(b, _)| b.name()).collect();
    if missed.is_empty() {
        format!("**met** ({})", names.join(", "))
    } else {
        format!("**missed** ({})", missed.join(", "))
    }
}

struct Row {
    figure: String,
    cells: Vec<String>,
    target: String,
    vs_baseline: String,
    verdict: String,
}

pub fn render(i: &Inputs<'_>) -> String {
    let plan = i.plan;
    let base = i.baseline.ok_per_sec();
    let mut rows: Vec<Row> = Vec::new();

    // Per back end: the cell text and the mark, from the main or the timer phase.
    let main_cells = |f: &dyn Fn(&MainPhase) -> String| -> Vec<String> {
        i.runs
            .iter()
            .map(|r| match &r.main {
                Ok(m) => f(m),
                Err(e) => short_err(e),
            })
            .collect()
    };
    let timer_cells = |f: &dyn Fn(&TimerPhase) -> String| -> Vec<String> {
        i.runs
            .iter()
            .map(|r| match &r.timers {
                Ok(t) => f(t),
                Err(e) => short_err(e),
            })
            .collect()
    };
    let main_marks = |only: Option<Backend>, f: &dyn Fn(&MainPhase) -> bool| {
        i.runs
            .iter()
            .map(|r| {
                let judged = only.is_none_or(|b| b == r.backend);
                (r.backend, r.main.as_ref().ok().filter(|_| judged).map(f))
            })
            .collect::<Vec<_>>()
    };
    let timer_marks = |f: &dyn Fn(&TimerPhase) -> Option<bool>| {
        i.runs
            .iter()
            .map(|r| (r.backend, r.timers.as_ref().ok().and_then(f)))
            .collect::<Vec<_>>()
    };
    let ratios = |f: &dyn Fn(&MainPhase) -> f64| -> String {
        i.runs
            .iter()
            .map(|r| match &r.main {
                Ok(m) => pct(f(m) / base),
                Err(_) => "–".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };

    rows.push(Row {
        figure: format!(
            "Baseline: bare axum answering 200 to POST / (same signed body, {} connections)",
            plan.conns
        ),
        cells: vec![
            format!("{} req/s ({})", thousands(base), i.baseline.latency_line()),
            "(same baseline)".into(),
        ],
        target: "–".into(),
        vs_baseline: "100%".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: format!(
            "1. signed `/incident list` at saturation, req/s ({} connections, {} open incidents)",
            plan.conns, plan.seed_incidents
        ),
        cells: main_cells(&|m| format!("{} req/s", thousands(m.list.ok_per_sec()))),
        target: "≥ 50% of baseline".into(),
        vs_baseline: ratios(&|m| m.list.ok_per_sec()),
        verdict: verdict(&main_marks(None, &|m| m.list.ok_per_sec() >= 0.5 * base)),
    });
    rows.push(Row {
        figure: "1. `/incident list` latency at saturation".into(),
        cells: main_cells(&|m| m.list.latency_line()),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: "1. CPU during the list saturation run (% of one core; 200% = both)".into(),
        cells: main_cells(&|m| cpu_text(&m.list)),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: format!(
            "1. `/incident list` p99 at a fixed {} req/s (open loop, {} s)",
            thousands(plan.fixed_rate),
            plan.fixed.as_secs()
        ),
        cells: main_cells(&|m| {
            format!(
                "p99 {} ms (p50 {}, max {} ms; {} req/s achieved)",
                fmt_ms(m.list_fixed.ms(0.99)),
                fmt_ms(m.list_fixed.ms(0.5)),
                fmt_ms(m.list_fixed.max_ms()),
                thousands(m.list_fixed.sent_per_sec())
            )
        }),
        target: "p99 < 5 ms".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(None, &|m| {
            m.list_fixed.ms(0.99) < 5.0 && m.list_fixed.failures() == 0
        })),
    });
    rows.push(Row {
        figure: format!(
            "2. signed `/incident open P2 …` at saturation, req/s ({} connections)",
            plan.conns
        ),
        cells: main_cells(&|m| format!("{} req/s", thousands(m.open.ok_per_sec()))),
        target: "≥ 3,000/s on SQLite".into(),
        vs_baseline: ratios(&|m| m.open.ok_per_sec()),
        verdict: verdict(&main_marks(Some(Backend::Sqlite), &|m| {
            m.open.ok_per_sec() >= 3_000.0
        })),
    });
    rows.push(Row {
        figure: "2. `/incident open` latency at saturation".into(),
        cells: main_cells(&|m| m.open.latency_line()),
        target: "p99 < 20 ms on SQLite".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(Some(Backend::Sqlite), &|m| {
            m.open.ms(0.99) < 20.0
        })),
    });
    rows.push(Row {
        figure: "2. CPU during the open saturation run (% of one core)".into(),
        cells: main_cells(&|m| cpu_text(&m.open)),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: "2. outbox backlog when the open run ended → time to send it all to the fake Slack"
            .into(),
        cells: main_cells(&|m| drain_text(&m.open_drain)),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: format!(
            "3. Alertmanager notifications accepted (2xx) per s, {} alerts each, ¾ new groups, ¼ repeats",
            crate::requests::ALERTS_PER_NOTIFICATION
        ),
        cells: main_cells(&|m| {
            format!(
                "{} /s ({})",
                thousands(m.alerts.ok_per_sec()),
                m.alerts.latency_line()
            )
        }),
        target: "≥ 2,000/s on both".into(),
        vs_baseline: ratios(&|m| m.alerts.ok_per_sec()),
        verdict: verdict(&main_marks(None, &|m| m.alerts.ok_per_sec() >= 2_000.0)),
    });
    rows.push(Row {
        figure: "3. CPU during the Alertmanager saturation run (% of one core)".into(),
        cells: main_cells(&|m| cpu_text(&m.alerts)),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: "3. outbox backlog when the alert run ended → time to send it all".into(),
        cells: main_cells(&|m| drain_text(&m.alerts_drain)),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: format!(
            "4. timer lateness p50 / p99 / max ({} due over {} s, {} pending; bucket upper bounds)",
            thousands(plan.due_jobs as f64),
            plan.due_window.as_secs(),
            thousands(plan.far_jobs as f64)
        ),
        cells: timer_cells(&|t| match &t.lateness {
            Some(q) => format!(
                "{} / {} / {} ({} jobs)",
                secs_bound(q.p50),
                secs_bound(q.p99),
                secs_bound(q.max),
                thousands(q.count as f64)
            ),
            None => "no job ran".into(),
        }),
        target: "p99 < 100 ms".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&timer_marks(&|t| {
            t.lateness
                .as_ref()
                .map(|q| q.p99 <= 0.1 && q.count >= plan.due_jobs as u64)
        })),
    });
    rows.push(Row {
        figure: format!(
            "4b. timer lateness p50 / p99 / max while 4 slow actions run ({} due over {} s; bucket upper bounds)",
            thousands(plan.due_jobs as f64),
            plan.due_window.as_secs()
        ),
        cells: timer_cells(&|t| match &t.busy {
            Ok(b) => match &b.lateness {
                Some(q) => format!(
                    "{} / {} / {} ({} jobs; {} actions running)",
                    secs_bound(q.p50),
                    secs_bound(q.p99),
                    secs_bound(q.max),
                    thousands(q.count as f64),
                    b.actions_running
                ),
                None => "no job ran".into(),
            },
            Err(e) => format!("not measured: {e}"),
        }),
        target: "p99 < 100 ms".into(),
        vs_baseline: "same as run 4".into(),
        verdict: verdict(&timer_marks(&|t| {
            t.busy.as_ref().ok().and_then(|b| {
                b.lateness.as_ref().map(|q| {
                    q.p99 <= 0.1 && q.count >= plan.due_jobs as u64 && b.actions_running >= 4.0
                })
            })
        })),
    });
    rows.push(Row {
        figure: format!(
            "4. idle CPU holding {} pending timers (over {} s)",
            thousands(plan.far_jobs as f64),
            plan.idle.as_secs()
        ),
        cells: timer_cells(&|t| match t.cpu_percent {
            Some(c) => format!("{c:.2}% of one core"),
            None => "?".into(),
        }),
        target: "< 1% of one core".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&timer_marks(&|t| t.cpu_percent.map(|c| c < 1.0))),
    });
    rows.push(Row {
        figure: "5. RSS idle, 1 s after ready (VmRSS)".into(),
        cells: main_cells(&|m| mb(m.idle_rss_kb)),
        target: "< 30 MB".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(None, &|m| {
            m.idle_rss_kb.is_some_and(|k| (k as f64) * 1024.0 < 30e6)
        })),
    });
    rows.push(Row {
        figure: format!(
            "3b. one Alertmanager notification of {} alerts: time to 2xx; peak RSS (VmHWM) before → after",
            thousands(plan.big_alerts as f64)
        ),
        cells: main_cells(&|m| match &m.big {
            Ok(b) => format!(
                "{:.0} ms for {:.1} MB; {} → {}",
                b.took.as_secs_f64() * 1000.0,
                b.bytes as f64 / 1e6,
                mb(b.hwm_before_kb),
                mb(b.hwm_after_kb)
            ),
            Err(e) => format!("refused: {e}"),
        }),
        target: "2xx, every alert kept".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(None, &|m| m.big.is_ok())),
    });
    rows.push(Row {
        figure: "5. peak RSS after runs 1–3 (VmHWM)".into(),
        cells: main_cells(&|m| mb(m.peak_rss_kb)),
        target: "< 150 MB".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(None, &|m| {
            m.peak_rss_kb.is_some_and(|k| (k as f64) * 1024.0 < 150e6)
        })),
    });
    rows.push(Row {
        figure: "5. start-up: spawn → first 200 from /readyz (fresh database, migrations included)"
            .into(),
        cells: main_cells(&|m| format!("{:.0} ms", m.ready.as_secs_f64() * 1000.0)),
        target: "< 300 ms on SQLite".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(Some(Backend::Sqlite), &|m| {
            m.ready < Duration::from_millis(300)
        })),
    });
    rows.push(Row {
        figure: format!(
            "5. start-up with {} jobs waiting; RSS then holding them",
            thousands((plan.far_jobs + plan.due_jobs) as f64)
        ),
        cells: timer_cells(&|t| {
            format!("{:.0} ms; {}", t.ready.as_secs_f64() * 1000.0, mb(t.rss_kb))
        }),
        target: "–".into(),
        vs_baseline: "–".into(),
        verdict: "–".into(),
    });
    rows.push(Row {
        figure: "Requests not accepted under load (non-2xx, transport errors, 200 with a fault reply), all runs".into(),
        cells: main_cells(&|m| {
            let n: u64 = all_reports(m).iter().map(|(_, r)| r.failures()).sum();
            let sent: u64 = all_reports(m).iter().map(|(_, r)| r.sent).sum();
            format!("{} of {}", thousands(n as f64), thousands(sent as f64))
        }),
        target: "none".into(),
        vs_baseline: "–".into(),
        verdict: verdict(&main_marks(None, &|m| {
            all_reports(m).iter().all(|(_, r)| r.failures() == 0)
        })),
    });

    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Klaxon benchmark ({} mode)\n",
        if plan.quick { "quick" } else { "full" }
    );
    let _ = writeln!(s, "Machine: {}\n", machine());
    if let Some(cpus) = i.klaxon_cpus {
        let _ = writeln!(
            s,
            "Klaxon pinned to CPUs {cpus} (`taskset -c {cpus}`); the load generator, fake Slack and PostgreSQL are not.\n"
        );
    }
    let _ = writeln!(
        s,
        "Order per back end: fresh database, start Klaxon, {} seeded incidents, run 1 (list), run 3 (alerts), run 2 (open: it leaves the largest outbox backlog), stop; then run 4 (timers) on another fresh database. Load: {} keep-alive HTTP/1.1 connections; saturation runs {} s after a warm-up, the fixed-rate run {} s.\n",
        plan.seed_incidents,
        plan.conns,
        plan.saturation.as_secs(),
        plan.fixed.as_secs()
    );
    let mut header = vec!["figure".to_string()];
    header.extend(i.runs.iter().map(|r| r.backend.name().to_string()));
    header.extend([
        "target".to_string(),
        format!(
            "vs baseline ({})",
            i.runs
                .iter()
                .map(|r| r.backend.name())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        "result".to_string(),
    ]);
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for r in &rows {
        let mut cols = vec![r.figure.clone()];
        cols.extend(r.cells.iter().cloned());
        cols.extend([r.target.clone(), r.vs_baseline.clone(), r.verdict.clone()]);
        let cols: Vec<String> = cols.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cols.join(" | "));
    }

    // Notes: what failed, what Klaxon logged, what the fake Slack received.
    let _ = writeln!(s);
    for r in i.runs {
        for (what, e) in [
            ("load runs", r.main.as_ref().err()),
            ("timer run", r.timers.as_ref().err()),
        ] {
            if let Some(e) = e {
                let _ = writeln!(s, "- {} {what}: {e}", r.backend.name());
            }
        }
        if let Ok(m) = &r.main {
            for (name, rep) in all_reports(m) {
                let problems = rep.problems();
                if !problems.is_empty() {
                    let list: Vec<String> = problems
                        .iter()
                        .map(|(k, v)| format!("{k} ×{}", thousands(*v as f64)))
                        .collect();
                    let _ = writeln!(
                        s,
                        "- {} {name}: not accepted: {}",
                        r.backend.name(),
                        list.join("; ")
                    );
                }
            }
            let _ = writeln!(
                s,
                "- {} answers: list {}; open {}; alerts {}",
                r.backend.name(),
                outcome_line(&m.list),
                outcome_line(&m.open),
                outcome_line(&m.alerts)
            );
            let _ = writeln!(
                s,
                "- {} main Klaxon stopped in {:.1} s ({})",
                r.backend.name(),
                m.stopped.0.as_secs_f64(),
                m.stopped.1
            );
        }
        if let Ok(t) = &r.timers {
            let _ = writeln!(
                s,
                "- {} timers: {} of {} due jobs ran; jobs pending afterwards: {}; {} rows inserted in {:.1} s; idle window {:.0} s; stopped in {:.1} s ({})",
                r.backend.name(),
                thousands(t.due_done as f64),
                thousands(plan.due_jobs as f64),
                t.pending_after.map(thousands).unwrap_or_else(|| "?".into()),
                thousands((plan.far_jobs + plan.due_jobs) as f64),
                t.insert.as_secs_f64(),
                t.idle.as_secs_f64(),
                t.stopped.0.as_secs_f64(),
                t.stopped.1
            );
        }
    }
    if let Some(c) = &i.baseline.cpu {
        let _ = writeln!(s, "- Baseline run CPU: {c}");
    }
    for r in i.runs {
        if let Ok(m) = &r.main {
            for (name, rep) in [
                ("list", &m.list),
                ("list at fixed rate", &m.list_fixed),
                ("alerts", &m.alerts),
                ("open", &m.open),
            ] {
                if let Some(c) = &rep.cpu {
                    let _ = writeln!(s, "- {} {name} run CPU: {c}", r.backend.name());
                }
            }
        }
    }
    if !i.slack_calls.is_empty() {
        let calls: Vec<String> = i
            .slack_calls
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
            .collect();
        let _ = writeln!(s, "- Fake Slack received: {}", calls.join(", "));
    }
    let _ = writeln!(
        s,
        "\nKlaxon's warnings and errors (RUST_LOG=warn, stdout JSON logs and stderr, in {}):\n",
        i.out.display()
    );
    let mut any = false;
    for r in i.runs {
        let mut files = Vec::new();
        if let Ok(m) = &r.main {
            files.push(m.log.clone());
        }
        if let Ok(t) = &r.timers {
            files.push(t.log.clone());
        }
        for f in files {
            for ext in ["log", "stderr"] {
                let path = f.with_extension(ext);
                let lines = summarize_log(&path);
                if lines.is_empty() {
                    continue;
                }
                any = true;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let _ = writeln!(s, "- {name}:");
                for (line, n) in lines.iter().take(12) {
                    let _ = writeln!(s, "  - ×{} {line}", thousands(*n as f64));
                }
                if lines.len() > 12 {
                    let _ = writeln!(s, "  - … {} more kinds", lines.len() - 12);
                }
            }
        }
    }
    if !any {
        let _ = writeln!(s, "- none");
    }
    s
}

fn all_reports(m: &MainPhase) -> Vec<(&'static str, &Report)> {
    vec![
        ("list warm-up", &m.list_warmup),
        ("list saturation", &m.list),
        ("list fixed rate", &m.list_fixed),
        ("alerts warm-up", &m.alerts_warmup),
        ("alerts saturation", &m.alerts),
        ("open warm-up", &m.open_warmup),
        ("open saturation", &m.open),
    ]
}

fn outcome_line(r: &Report) -> String {
    let parts: Vec<String> = r
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} ×{}", thousands(*v as f64)))
        .collect();
    format!(
        "{} in {:.1} s [{}]",
        thousands(r.sent as f64),
        r.elapsed.as_secs_f64(),
        parts.join(", ")
    )
}

pub fn drain_text(d: &crate::Drain) -> String {
    let first = d
        .pending_at_end
        .map(thousands)
        .unwrap_or_else(|| "?".into());
    let rate = d.slack_calls as f64 / d.waited.as_secs_f64().max(1e-9);
    match (d.drained_after, d.left) {
        (Some(t), _) => format!(
            "{first} waiting → all sent in {:.1} s ({} Slack calls/s)",
            t.as_secs_f64(),
            thousands(rate)
        ),
        (None, Some(left)) => format!(
            "{first} waiting → {} still waiting after {:.0} s ({} Slack calls/s meanwhile)",
            thousands(left),
            d.waited.as_secs_f64(),
            thousands(rate)
        ),
        (None, None) => format!("{first} waiting → ?"),
    }
}

fn cpu_text(r: &Report) -> String {
    match &r.cpu {
        Some(c) => format!(
            "Klaxon {:.0}% · PostgreSQL {:.0}% · load gen {:.0}% · fake Slack {:.0}% · other {:.0}%",
            c.server, c.postgres, c.bench, c.slack, c.other
        ),
        None => "?".into(),
    }
}

fn short_err(e: &str) -> String {
    let s: String = e.chars().take(60).collect();
    if s.starts_with("not run") {
        "not run".into()
    } else {
        format!("failed: {s}")
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "? GiB".into());
    format!("nproc {cores}, {cpu}, memory {mem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(secs_bound(0.002), "≤ 2.00 ms");
        assert_eq!(secs_bound(f64::INFINITY), "> 65 s");
    }
}
