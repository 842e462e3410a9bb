//! On-call schedules: who is on call at a given instant.
//!
//! A schedule rotates through its people, one shift per `period`, starting at
//! `handoff` in the schedule's time zone. Shifts are calendar arithmetic in that
//! zone, so a weekly handoff at 09:00 stays at 09:00 local time across daylight
//! saving changes. Overrides (someone covers a window) win over the rotation.
//! Everything takes the instant as a parameter: the clock is the caller's.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use crate::incident::SlackUserId;

/// A window in which someone covers for the rotation.
#[derive(Debug, Clone)]
pub struct Override {
    pub user: SlackUserId,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub tz: TimeZone,
    pub rotation: Vec<SlackUserId>,
    pub period: Span,
    pub handoff: Zoned,
    pub overrides: Vec<Override>,
}

/// Who is on call, until when, and whether it is an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCall {
    pub user: SlackUserId,
    pub until: Timestamp,
    pub covering: bool,
}

/// A civil date-time in `tz`, as written in the config (`2026-01-05T09:00`).
pub fn parse_local(s: &str, tz: &TimeZone) -> Result<Zoned, String> {
    let dt: DateTime = s.parse().map_err(|_| {
        format!("`{s}` is not a local date-time; write it like \"2026-01-05T09:00\"")
    })?;
    dt.to_zoned(tz.clone())
        .map_err(|e| format!("`{s}` does not exist in this time zone: {e}"))
}

/// A rotation period (`1w`, `1d`, `12h`), strictly positive.
pub fn parse_period(s: &str) -> Result<Span, String> {
    let span: Span = s
        .parse()
        .map_err(|_| format!("`{s}` is not a period; write it like \"1w\", \"1d\" or \"12h\""))?;
    if span.is_zero() || span.is_negative() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(span)
}

impl Schedule {
    /// Start of shift `k` (shift 0 starts at the handoff).
    fn shift_start(&self, k: i64) -> Option<Zoned> {
        let span = self.period.checked_mul(k).ok()?;
        self.handoff.checked_add(span).ok()
    }

    /// The index of the shift that contains `at`.
    fn shift_index(&self, at: Timestamp) -> Option<i64> {
        let approx = self
            .period
            .to_duration(&self.handoff)
            .ok()?
            .as_secs()
            .max(1);
        let elapsed = at.duration_since(self.handoff.timestamp()).as_secs();
        let mut k = elapsed.div_euclid(approx);
        // The estimate is off by at most a shift or two around DST changes: correct it.
        for _ in 0..8 {
            if self.shift_start(k)?.timestamp() > at {
                k -= 1;
            } else if self.shift_start(k + 1)?.timestamp() <= at {
                k += 1;
            } else {
                return Some(k);
            }
        }
        None
    }

    /// Who is on call at `at`; `None` when the rotation is empty and nobody covers.
    pub fn on_call(&self, at: Timestamp) -> Option<OnCall> {
        if let Some(o) = self.overrides.iter().find(|o| o.start <= at && at < o.end) {
            return Some(OnCall {
                user: o.user.clone(),
                until: o.end,
                covering: true,
            });
        }
        if self.rotation.is_empty() {
            return None;
        }
        let k = self.shift_index(at)?;
        let len = i64::try_from(self.rotation.len()).ok()?;
        let idx = usize::try_from(k.rem_euclid(len)).ok()?;
        let until = self.shift_start(k + 1)?.timestamp();
        // A later override that starts before the shift ends cuts it short.
        let until = self
            .overrides
            .iter()
            .filter(|o| o.start > at && o.start < until)
            .map(|o| o.start)
            .min()
            .unwrap_or(until);
        Some(OnCall {
            user: self.rotation[idx].clone(),
            until,
            covering: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> SlackUserId {
        SlackUserId::parse(s).expect("valid id")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn weekly_berlin() -> Schedule {
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        Schedule {
            name: "primary".into(),
            handoff: parse_local("2026-01-05T09:00", &tz).expect("handoff"),
            tz,
            rotation: vec![user("U0ALICE"), user("U0BOB"), user("U0CAROL")],
            period: parse_period("1w").expect("period"),
            overrides: vec![],
        }
    }

    #[test]
    fn weekly_rotation_hands_off_at_the_local_handoff_time() {
        let s = weekly_berlin();
        // Monday 2026-01-05 09:00 CET = 08:00Z.
        assert_eq!(
            s.on_call(ts("2026-01-05T08:00:00Z")).map(|o| o.user),
            Some(user("U0ALICE"))
        );
        assert_eq!(
            s.on_call(ts("2026-01-12T07:59:59Z")).map(|o| o.user),
            Some(user("U0ALICE"))
        );
        assert_eq!(
            s.on_call(ts("2026-01-12T08:00:00Z")).map(|o| o.user),
            Some(user("U0BOB"))
        );
        assert_eq!(
            s.on_call(ts("2026-01-19T08:00:00Z")).map(|o| o.user),
            Some(user("U0CAROL"))
        );
        assert_eq!(
            s.on_call(ts("2026-01-26T08:00:00Z")).map(|o| o.user),
            Some(user("U0ALICE"))
        );
        assert_eq!(
            s.on_call(ts("2026-01-06T12:00:00Z")).map(|o| o.until),
            Some(ts("2026-01-12T08:00:00Z"))
        );
    }

    #[test]
    fn handoff_stays_at_nine_local_across_daylight_saving() {
        let s = weekly_berlin();
        // DST starts 2026-03-29; the handoff on Monday 2026-03-30 is 09:00 CEST = 07:00Z.
        let before = s.on_call(ts("2026-03-30T06:59:00Z")).expect("on call");
        let after = s.on_call(ts("2026-03-30T07:00:00Z")).expect("on call");
        assert_ne!(before.user, after.user);
        assert_eq!(before.until, ts("2026-03-30T07:00:00Z"));
        // And back in winter time on 2026-11-02: 09:00 CET = 08:00Z.
        let nov = s.on_call(ts("2026-11-02T07:30:00Z")).expect("on call");
        assert_eq!(nov.until, ts("2026-11-02T08:00:00Z"));
    }

    #[test]
    fn instants_before_the_first_handoff_count_backwards_through_the_rotation() {
        let s = weekly_berlin();
        assert_eq!(
            s.on_call(ts("2026-01-04T12:00:00Z")).map(|o| o.user),
            Some(user("U0CAROL"))
        );
    }

    #[test]
    fn an_override_wins_and_cuts_the_shift_before_it_short() {
        let mut s = weekly_berlin();
        s.overrides.push(Override {
            user: user("U0DAVE"),
            start: ts("2026-01-07T17:00:00Z"),
            end: ts("2026-01-08T08:00:00Z"),
        });
        let during = s.on_call(ts("2026-01-07T20:00:00Z")).expect("on call");
        assert_eq!(during.user, user("U0DAVE"));
        assert!(during.covering);
        assert_eq!(during.until, ts("2026-01-08T08:00:00Z"));
        let before = s.on_call(ts("2026-01-07T10:00:00Z")).expect("on call");
        assert_eq!(before.user, user("U0ALICE"));
        assert_eq!(before.until, ts("2026-01-07T17:00:00Z"));
        assert_eq!(
            s.on_call(ts("2026-01-08T08:00:00Z")).map(|o| o.user),
            Some(user("U0ALICE"))
        );
    }

    #[test]
    fn an_empty_rotation_has_nobody_on_call_unless_someone_covers() {
        let mut s = weekly_berlin();
        s.rotation.clear();
        assert_eq!(s.on_call(ts("2026-01-07T10:00:00Z")), None);
        s.overrides.push(Override {
            user: user("U0DAVE"),
            start: ts("2026-01-07T00:00:00Z"),
            end: ts("2026-01-08T00:00:00Z"),
        });
        assert_eq!(
            s.on_call(ts("2026-01-07T10:00:00Z")).map(|o| o.user),
            Some(user("U0DAVE"))
        );
    }

    #[test]
    fn daily_and_twelve_hour_periods_rotate_too() {
        let tz = TimeZone::get("America/New_York").expect("tz");
        let s = Schedule {
            name: "follow-the-sun".into(),
            handoff: parse_local("2026-03-07T08:00", &tz).expect("handoff"),
            tz,
            rotation: vec![user("U0DAY"), user("U0NIGHT")],
            period: parse_period("12h").expect("period"),
            overrides: vec![],
        };
        // 12h is a fixed duration: across New York's DST start (2026-03-08) shifts stay 12 hours long.
        assert_eq!(
            s.on_call(ts("2026-03-07T13:00:00Z")).map(|o| o.user),
            Some(user("U0DAY"))
        );
        assert_eq!(
            s.on_call(ts("2026-03-08T01:00:00Z")).map(|o| o.user),
            Some(user("U0NIGHT"))
        );
        assert_eq!(
            s.on_call(ts("2026-03-08T13:00:00Z")).map(|o| o.user),
            Some(user("U0DAY"))
        );
    }

    #[test]
    fn bad_periods_and_times_are_explained() {
        assert!(parse_period("0d").is_err());
        assert!(parse_period("weekly").is_err());
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        assert!(parse_local("monday 9am", &tz).is_err());
    }
}
