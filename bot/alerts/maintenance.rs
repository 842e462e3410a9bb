//! Maintenance windows: planned time when a route's alerts are expected and
//! must not page anyone.
//!
//! A window covers one alert route (by name) from a start to an end. While it
//! is active, new alert groups of the route are kept but open no incident,
//! and the ladders of the route's running incidents pause (see
//! `crate::usecases::maintenance`, which also handles windows started by hand
//! with `/incident maintenance start`). This module holds the windows written
//! in the configuration, `[[maintenance]]`: one fixed window (`start`, `end`)
//! or a recurring one (`cron` and `duration`), read in a time zone.
//!
//! Cron expressions have five fields (minute hour day-of-month month
//! day-of-week; seconds may be given as a sixth, first field). Days of the
//! week are written by name (`SUN`, `MON-FRI`): cron dialects number them
//! differently, so digits there are refused rather than guessed.

use std::str::FromStr;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::time::Millis;

/// The longest `reason` of a configured window.
pub const MAX_REASON_CHARS: usize = 500;

/// One `[[maintenance]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub name: String,
    pub route: String,
    pub reason: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub cron: Option<String>,
    pub duration: Option<String>,
    pub time_zone: Option<String>,
}

/// When a configured window is active.
#[derive(Debug, Clone)]
pub enum When {
    /// Once, from `starts` to `ends`.
    Once { starts: Millis, ends: Millis },
    /// Every time the cron schedule fires (in `time_zone`), for `duration`.
    Recurring {
        cron: Box<jiff_cron::Schedule>,
        duration: Duration,
        time_zone: TimeZone,
    },
}

/// A validated `[[maintenance]]` window.
#[derive(Debug, Clone)]
pub struct ScheduledWindow {
    /// Names the schedule in messages and keeps its occurrences apart.
    pub name: String,
    /// The alert route it covers (`default` for the built-in route).
    pub route: String,
    pub reason: Option<String>,
    pub when: When,
}

impl ScheduledWindow {
    /// The occurrence active at `at`, else the next one to start after it;
    /// `None` when none is left (a fixed window in the past).
    pub fn current_or_next(&self, at: Millis) -> Option<(Millis, Millis)> {
        match &self.when {
            When::Once { starts, ends } => (*ends > at).then_some((*starts, *ends)),
            When::Recurring {
                cron,
                duration,
                time_zone,
            } => {
                // The first start after `at - duration` is either active now or next.
                let from = jiff::Timestamp::from_millisecond(at.minus(*duration).0)
                    .ok()?
                    .to_zoned(time_zone.clone());
                let start = cron.after(from).next()?;
                let starts = Millis(start.timestamp().as_millisecond());
                Some((starts, starts.plus(*duration)))
            }
        }
    }
}

/// Validates the `[[maintenance]]` tables; every problem as `(key, message)`.
/// `routes` are the names a window may cover.
pub fn from_raw(
    raw: Vec<RawMaintenance>,
    routes: &[&str],
) -> Result<Vec<ScheduledWindow>, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut out: Vec<ScheduledWindow> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let before = problems.len();
        let mut problem = |key: &str, message: String| {
            problems.push((format!("maintenance[{i}].{key}"), message));
        };
        let name = r.name.trim().to_string();
        if name.is_empty() {
            problem("name", "a window needs a name, for its messages".into());
        } else if out.iter().any(|w| w.name == name) {
            problem("name", format!("`{name}` names two windows"));
        }
        if !routes.contains(&r.route.as_str()) {
            problem(
                "route",
                format!(
                    "no alert route is named `{}` (routes: {})",
                    r.route,
                    routes.join(", ")
                ),
            );
        }
        let time_zone = match r.time_zone.as_deref() {
            None => Some(TimeZone::UTC),
            Some(tz) => TimeZone::get(tz).ok().or_else(|| {
                problem(
                    "time_zone",
                    format!("`{tz}` is not a time zone; use an IANA name like Europe/Berlin"),
                );
                None
            }),
        };
        let when = match (&r.start, &r.end, &r.cron, &r.duration) {
            (Some(start), Some(end), None, None) => time_zone.and_then(|tz| {
                let starts = instant(start, &tz).map_err(|e| problem("start", e)).ok();
                let ends = instant(end, &tz).map_err(|e| problem("end", e)).ok();
                match (starts, ends) {
                    (Some(s), Some(e)) if e > s => Some(When::Once { starts: s, ends: e }),
                    (Some(_), Some(_)) => {
                        problem("end", "the window ends before it starts".into());
                        None
                    }
                    _ => None,
                }
            }),
            (None, None, Some(cron), Some(duration)) => {
                let d = crate::time::parse_duration(duration)
                    .map_err(|e| problem("duration", e))
                    .ok();
                let c = parse_cron(cron).map_err(|e| problem("cron", e)).ok();
                match (c, d, time_zone) {
                    (Some(cron), Some(duration), Some(time_zone)) => {
                        let next: Vec<jiff::Zoned> =
                            cron.upcoming(time_zone.clone()).take(2).collect();
                        let gap = match next.as_slice() {
                            [a, b] => Some(b.timestamp().duration_since(a.timestamp())),
                            _ => None,
                        };
                        if next.is_empty() {
                            problem(
                                "cron",
                                format!("`{}` never fires", r.cron.as_deref().unwrap_or_default()),
                            );
                            None
                        } else if let Some(gap) =
                            gap.filter(|g| g.as_secs_f64() <= duration.as_secs_f64())
                        {
                            problem(
                                "duration",
                                format!(
                                    "each window would last until the next one starts (`{}` fires every {}): it would never end",
                                    r.cron.as_deref().unwrap_or_default(),
                                    crate::time::human_duration(gap.unsigned_abs())
                                ),
                            );
                            None
                        } else {
                            Some(When::Recurring {
                                cron: Box::new(cron),
                                duration,
                                time_zone,
                            })
                        }
                    }
                    _ => None,
                }
            }
            _ => {
                problem(
                    "(window)",
                    "give either `start` and `end`, or `cron` and `duration`".into(),
                );
                None
            }
        };
        if r.reason
            .as_deref()
            .is_some_and(|x| x.trim().chars().count() > MAX_REASON_CHARS)
        {
            problem(
                "reason",
                format!("is longer than {MAX_REASON_CHARS} characters"),
            );
        }
        if problems.len() == before
            && let Some(when) = when
        {
            out.push(ScheduledWindow {
                name,
                route: r.route,
                reason: r
                    .reason
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
                when,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// An instant written as RFC 3339 (`2026-12-24T22:00:00Z`) or as a civil
/// date and time in the window's time zone (`2026-12-24 22:00`).
fn instant(text: &str, tz: &TimeZone) -> Result<Millis, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(Millis(t.as_millisecond()));
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(tz.clone()).ok())
        .map(|z| Millis(z.timestamp().as_millisecond()))
        .ok_or_else(|| {
            format!("`{text}` is not a date and time; write it like 2026-12-24 22:00 or 2026-12-24T21:00:00Z")
        })
}

/// Parses a five-field (or six, with seconds first) cron expression.
fn parse_cron(text: &str) -> Result<jiff_cron::Schedule, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let full = match fields.len() {
        5 => format!("0 {}", fields.join(" ")),
        6 => fields.join(" "),
        _ => {
            return Err(format!(
                "`{text}` is not a cron expression: five fields, minute hour day-of-month month day-of-week (like `0 2 * * SUN`), or six with seconds first"
            ));
        }
    };
    let day_of_week = full.split_whitespace().nth(5).unwrap_or("*");
    if day_of_week.bytes().any(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}`: write days of the week by name (SUN, MON-FRI): cron dialects number them differently"
        ));
    }
    jiff_cron::Schedule::from_str(&full).map_err(|e| {
        format!("`{text}` is not a cron expression ({e}); write five fields like `0 2 * * SUN`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(cron: Option<&str>, start: Option<&str>, end: Option<&str>) -> RawMaintenance {
        RawMaintenance {
            name: "patching".into(),
            route: "database".into(),
            cron: cron.map(str::to_string),
            duration: cron.map(|_| "2h".to_string()),
            start: start.map(str::to_string),
            end: end.map(str::to_string),
            time_zone: Some("Europe/Berlin".into()),
            ..RawMaintenance::default()
        }
    }

    fn at(text: &str) -> Millis {
        Millis(
            text.parse::<jiff::Timestamp>()
                .expect("instant")
                .as_millisecond(),
        )
    }

    #[test]
    fn a_weekly_window_is_active_for_its_duration_in_its_time_zone() {
        let w = from_raw(vec![raw(Some("0 2 * * SUN"), None, None)], &["database"])
            .expect("valid")
            .remove(0);
        // Sunday 2026-11-29 02:00 in Berlin is 01:00 UTC.
        let during = w.current_or_next(at("2026-11-29T02:30:00Z")).expect("one");
        assert_eq!(
            during,
            (at("2026-11-29T01:00:00Z"), at("2026-11-29T03:00:00Z"))
        );
        let after = w.current_or_next(at("2026-11-29T03:00:00Z")).expect("next");
        assert_eq!(after.0, at("2026-12-06T01:00:00Z"));
    }

    #[test]
    fn a_fixed_window_reads_civil_time_in_its_zone_and_ends_for_good() {
        let w = from_raw(
            vec![raw(
                None,
                Some("2026-12-24 22:00"),
                Some("2026-12-25 02:00"),
            )],
            &["database"],
        )
        .expect("valid")
        .remove(0);
        assert_eq!(
            w.current_or_next(at("2026-12-01T00:00:00Z")),
            Some((at("2026-12-24T21:00:00Z"), at("2026-12-25T01:00:00Z")))
        );
        assert_eq!(w.current_or_next(at("2026-12-25T01:00:00Z")), None);
    }

    #[test]
    fn numbered_days_of_the_week_unknown_routes_and_half_windows_are_refused() {
        let problems = from_raw(
            vec![
                raw(Some("0 2 * * 0"), None, None),
                RawMaintenance {
                    route: "nope".into(),
                    ..raw(None, Some("2026-12-24 22:00"), None)
                },
            ],
            &["database"],
        )
        .expect_err("refused");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "maintenance[0].cron",
                "maintenance[1].route",
                "maintenance[1].(window)"
            ]
        );
    }
}
