//! Time as Klaxon stores and shows it.
//!
//! The database holds instants as integer milliseconds since the Unix epoch (the
//! one representation both SQLite and PostgreSQL share through sqlx's `Any`
//! driver). This module turns those into the strings people read in Slack:
//! `17:04 UTC` for a time of day and `1h 23m` for a duration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Self {
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

    /// `2026-11-22 17:04 UTC`.
    pub fn date_time_utc(self) -> String {
        self.format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
    }

    /// `17:04 UTC`.
    pub fn time_utc(self) -> String {
        self.format(time::macros::format_description!("[hour]:[minute] UTC"))
    }

    /// `17:04:09`, for timelines where seconds matter.
    pub fn clock(self) -> String {
        self.format(time::macros::format_description!(
            "[hour]:[minute]:[second]"
        ))
    }

    fn format(self, fmt: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(fmt).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }
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
    }

    #[test]
    fn since_never_goes_negative() {
        assert_eq!(Millis(10).since(Millis(20)), Duration::ZERO);
        assert_eq!(Millis(2_500).since(Millis(500)), Duration::from_secs(2));
    }
}
