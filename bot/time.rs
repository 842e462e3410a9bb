//! Time as Klaxon stores, reads and shows it, and the one clock it reads.
//!
//! The database holds instants as integer milliseconds since the Unix epoch (the
//! one representation both SQLite and PostgreSQL share through sqlx's `Any`
//! driver): [`Millis`]. This module turns those into the strings people read in
//! Slack (`17:04 UTC`, `1h 23m`), and parses the durations people write in the
//! configuration and in commands (`90s`, `15m`) with one parser and one error text.
//!
//! Every part of Klaxon that asks "what time is it?" — the use cases, the
//! scheduler, the ladder arithmetic, the outbox — asks one [`Clock`]. In
//! production it is the system clock. Tests (and the demo) move it forward with
//! [`Clock::advance`], so a ladder with one-hour levels is tested in milliseconds
//! rather than with real waits; everything sleeping on the clock wakes at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// The system's wall-clock time. Prefer [`Clock::now`]: only the clock may call this.
    fn system_now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Millis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Millis(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Millis(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// The same instant as a [`jiff::Timestamp`] (the Unix epoch if out of jiff's range).
    pub fn timestamp(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The instant of a [`jiff::Timestamp`], to the millisecond (rounded down).
    pub fn from_timestamp(t: jiff::Timestamp) -> Self {
        Millis(t.as_millisecond())
    }

    /// `2026-11-22T17:04:09.123Z`: RFC 3339, as Alertmanager's API wants it.
    pub fn rfc3339(self) -> String {
        self.timestamp().to_string()
    }

    /// `2026-11-22 17:04 UTC`.
    pub fn date_time_utc(self) -> String {
        self.format("%Y-%m-%d %H:%M UTC")
    }

    /// `2026-11-22 17:04:09 UTC`, for records where seconds matter (a postmortem).
    pub fn date_time_seconds_utc(self) -> String {
        self.format("%Y-%m-%d %H:%M:%S UTC")
    }

    /// `17:04 UTC`.
    pub fn time_utc(self) -> String {
        self.format("%H:%M UTC")
    }

    /// `17:04:09`, for timelines where seconds matter.
    pub fn clock(self) -> String {
        self.format("%H:%M:%S")
    }

    /// `17:04 UTC` when `self` falls on the same UTC day as `now`, else
    /// `2026-11-29 17:04 UTC`: a time far off never shows without its date.
    pub fn time_utc_from(self, now: Millis) -> String {
        let day = |m: Millis| m.timestamp().to_zoned(jiff::tz::TimeZone::UTC).date();
        if day(self) == day(now) {
            self.time_utc()
        } else {
            self.date_time_utc()
        }
    }

    fn format(self, fmt: &str) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => t.strftime(fmt).to_string(),
            Err(_) => format!("@{}ms", self.0),
        }
    }
}

/// The clock every part of Klaxon reads. Cheap to clone; clones share one time.
///
/// It is the system clock plus an offset that only [`Clock::advance`] changes,
/// so time always flows and can also jump forward (tests, the demo). Anything
/// that waits for an instant ([`Clock::sleep_until`]) wakes when a jump passes it.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    /// Milliseconds added to the system time.
    offset: AtomicI64,
    /// Bumped on every jump, so sleepers re-check.
    jumps: watch::Sender<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            inner: Arc::new(ClockInner {
                offset: AtomicI64::new(0),
                jumps: watch::channel(0).0,
            }),
        }
    }

    /// Now, by this clock.
    pub fn now(&self) -> Millis {
        Millis(
            Millis::system_now()
                .0
                .saturating_add(self.inner.offset.load(Ordering::Acquire)),
        )
    }

    /// Now, as a [`jiff::Timestamp`] (for schedules and time zones).
    pub fn timestamp(&self) -> jiff::Timestamp {
        self.now().timestamp()
    }

    /// Moves this clock (and every clone of it) forward by `d`, and wakes every
    /// [`Clock::sleep_until`] whose instant has now passed. For tests and the demo.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.inner.offset.fetch_add(ms, Ordering::AcqRel);
        self.inner.jumps.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever the clock jumps (for `select!` loops).
    pub fn jumps(&self) -> watch::Receiver<u64> {
        self.inner.jumps.subscribe()
    }

    /// Waits until this clock reads `at` or later.
    pub async fn sleep_until(&self, at: Millis) {
        let mut jumps = self.jumps();
        loop {
            let left = at.since(self.now());
            if left.is_zero() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                changed = jumps.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(left).await;
                    }
                }
            }
        }
    }
}

/// Parses a human duration (`90s`, `15m`, `1h 30m`, `7d`); zero is refused.
///
/// The one parser for every duration in the configuration and in commands, so
/// every mistake gets the same explanation.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{text}` is not a duration; write it like \"90s\", \"15m\", \"1h\" or \"7d\""
        )),
    }
}

/// Serde support for durations written as text (`timeout = "10s"`), through
/// [`parse_duration`]: use with `#[serde(default, with = "crate::time::duration_text")]`
/// on an `Option<Duration>`.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// How long to wait before retry number `attempts` (1-based): 1 s, 2 s, 4 s …
/// up to `max`, with up to 20% jitter so retries from many places do not march
/// in step.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(20));
    let capped = base.min(max);
    let jitter = capped.mul_f64(rand::random::<f64>() * 0.2);
    (capped + jitter).min(max.max(Duration::from_secs(1)))
}

/// `45s`, `12m 5s`, `1h 23m`, `2d 3h`: the two largest units that are not zero.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        (secs % 86_400) / 3_600,
        (secs % 3_600) / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// `1 alert`, `2 alerts`: a count with its noun, in the right number.
pub fn plural(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    let grouped = group_thousands(n);
    if n == 1 {
        format!("{grouped} {singular}")
    } else {
        format!("{grouped} {plural}")
    }
}

/// `1,200`: a count as people read it.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_the_two_largest_nonzero_units() {
        assert_eq!(human_duration(Duration::from_secs(0)), "0s");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(12 * 60 + 5)), "12m 5s");
        assert_eq!(
            human_duration(Duration::from_secs(3600 + 23 * 60 + 9)),
            "1h 23m"
        );
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 3 * 3600)),
            "2d 3h"
        );
    }

    #[test]
    fn instants_format_in_utc() {
        // 2026-11-22T17:04:09Z
        let t = Millis(1_795_367_049_000);
        assert_eq!(t.date_time_utc(), "2026-11-22 17:04 UTC");
        assert_eq!(t.time_utc(), "17:04 UTC");
        assert_eq!(t.clock(), "17:04:09");
        assert_eq!(t.rfc3339(), "2026-11-22T17:04:09Z");
        assert_eq!(
            t.plus(Duration::from_secs(7 * 86_400)).time_utc_from(t),
            "2026-11-29 17:04 UTC",
            "a time on another day shows its date"
        );
        assert_eq!(
            t.plus(Duration::from_secs(60)).time_utc_from(t),
            "17:05 UTC"
        );
    }

    #[test]
    fn backoff_doubles_and_stays_under_the_cap() {
        let max = Duration::from_secs(60);
        assert!(
            backoff(1, max) >= Duration::from_secs(1)
                && backoff(1, max) <= Duration::from_millis(1_200)
        );
        assert!(backoff(3, max) >= Duration::from_secs(4));
        assert_eq!(backoff(30, max), max);
    }

    #[test]
    fn since_never_goes_negative() {
        assert_eq!(Millis(10).since(Millis(20)), Duration::ZERO);
        assert_eq!(Millis(2_500).since(Millis(500)), Duration::from_secs(2));
    }

    #[test]
    fn durations_parse_with_one_explanation_for_every_mistake() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5_400)));
        for bad in ["soon", "0s", "", "-5m"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains("is not a duration"), "{e}");
        }
    }

    #[test]
    fn counts_read_as_words_in_the_right_number() {
        assert_eq!(plural(1u64, "alert", "alerts"), "1 alert");
        assert_eq!(plural(2u64, "alert", "alerts"), "2 alerts");
        assert_eq!(plural(0u64, "alert", "alerts"), "0 alerts");
        assert_eq!(plural(1_200u64, "alert", "alerts"), "1,200 alerts");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[tokio::test]
    async fn a_clock_moved_forward_wakes_whoever_waits_for_a_passed_instant() {
        let clock = Clock::system();
        let start = clock.now();
        let due = start.plus(Duration::from_secs(3_600));
        let waiter = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(due).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "an hour has not passed yet");
        clock.advance(Duration::from_secs(3_600));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the jump")
            .expect("joined");
        assert!(clock.now() >= due);
    }
}
