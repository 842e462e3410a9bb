//! The history's weekly figures, no I/O: incidents per week by severity,
//! MTTA and MTTR per week (median and 90th percentile), and pages per person
//! per week (the on-call load).
//!
//! Weeks are ISO weeks in UTC (Monday 00:00 to Monday 00:00). An incident
//! counts in the week it opened; its time to acknowledge and to resolve count
//! there too, once it has them. Percentiles are nearest-rank (the value at
//! rank ⌈p·n⌉ of the n sorted values), so every figure shown is one that
//! really happened.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::incident::Severity;
use crate::time::Millis;

use super::DAY_MS;

/// One week in milliseconds.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// The times the figures need of one incident.
#[derive(Debug, Clone, Copy)]
pub struct IncidentTimes {
    pub severity: Severity,
    pub opened_at: Millis,
    pub acknowledged_at: Option<Millis>,
    pub resolved_at: Option<Millis>,
}

/// The Monday 00:00 UTC that starts the week `t` falls in.
pub fn week_start(t: Millis) -> Millis {
    let day = t.0.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
    let monday = day - (day + 3).rem_euclid(7);
    Millis(monday * DAY_MS)
}

/// The starts of the weeks from the one holding `from` to the one holding
/// `to`, oldest first; at most `max` (the latest ones).
pub fn weeks_between(from: Millis, to: Millis, max: usize) -> Vec<Millis> {
    let first = week_start(from).0;
    let last = week_start(to).0;
    let mut weeks: Vec<Millis> = (0..)
        .map(|i| first + i * WEEK_MS)
        .take_while(|w| *w <= last)
        .map(Millis)
        .collect();
    if weeks.len() > max {
        weeks.drain(..weeks.len() - max);
    }
    weeks
}

/// A median and a 90th percentile of some durations, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spread {
    pub count: usize,
    pub median: Option<Duration>,
    pub p90: Option<Duration>,
}

impl Spread {
    /// Of these durations in milliseconds (any order).
    pub fn of(mut ms: Vec<i64>) -> Spread {
        ms.sort_unstable();
        let at = |p: f64| {
            let rank = ((p * ms.len() as f64).ceil() as usize).max(1);
            ms.get(rank - 1)
                .map(|v| Duration::from_millis(u64::try_from(*v).unwrap_or(0)))
        };
        Spread {
            count: ms.len(),
            median: at(0.5),
            p90: at(0.9),
        }
    }
}

/// One week's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekFigures {
    pub start: Millis,
    /// Incidents opened that week, indexed by [`Severity::index`].
    pub by_severity: [u32; 4],
    /// Time to acknowledge of that week's acknowledged incidents.
    pub mtta: Spread,
    /// Time to resolve of that week's resolved incidents.
    pub mttr: Spread,
}

impl WeekFigures {
    pub fn total(&self) -> u32 {
        self.by_severity.iter().sum()
    }
}

/// One week being counted: incidents by severity, times to acknowledge and
/// to resolve (ms).
type Tally = ([u32; 4], Vec<i64>, Vec<i64>);

/// The figures of each week in `weeks` (week starts, as from [`weeks_between`]).
pub fn weekly(incidents: &[IncidentTimes], weeks: &[Millis]) -> Vec<WeekFigures> {
    let mut acc: BTreeMap<i64, Tally> = weeks
        .iter()
        .map(|w| (w.0, ([0; 4], Vec::new(), Vec::new())))
        .collect();
    for i in incidents {
        let Some((counts, ack, res)) = acc.get_mut(&week_start(i.opened_at).0) else {
            continue;
        };
        counts[i.severity.index()] += 1;
        if let Some(a) = i.acknowledged_at {
            ack.push((a.0 - i.opened_at.0).max(0));
        }
        if let Some(r) = i.resolved_at {
            res.push((r.0 - i.opened_at.0).max(0));
        }
    }
    acc.into_iter()
        .map(|(start, (by_severity, ack, res))| WeekFigures {
            start: Millis(start),
            by_severity,
            mtta: Spread::of(ack),
            mttr: Spread::of(res),
        })
        .collect()
}

/// Pages per person per week: one row per person paged in these weeks,
/// the most paged first (ties by name), each with a count per week.
pub fn pages_per_person(pages: &[(String, Millis)], weeks: &[Millis]) -> Vec<(String, Vec<u32>)> {
    let index: BTreeMap<i64, usize> = weeks.iter().enumerate().map(|(i, w)| (w.0, i)).collect();
    let mut people: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (user, at) in pages {
        if let Some(i) = index.get(&week_start(*at).0) {
            people
                .entry(user.as_str())
                .or_insert_with(|| vec![0; weeks.len()])[*i] += 1;
        }
    }
    let mut rows: Vec<(String, Vec<u32>)> = people
        .into_iter()
        .map(|(u, counts)| (u.to_string(), counts))
        .collect();
    rows.sort_by(|a, b| {
        let total = |r: &(String, Vec<u32>)| r.1.iter().sum::<u32>();
        total(b).cmp(&total(a)).then_with(|| a.0.cmp(&b.0))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn weeks_start_on_monday_midnight_utc() {
        // 2026-11-30 is a Monday; 2026-12-06 a Sunday.
        let monday = Millis::from_timestamp("2026-11-30T00:00:00Z".parse().unwrap());
        let sunday = Millis::from_timestamp("2026-12-06T23:59:59Z".parse().unwrap());
        assert_eq!(week_start(sunday), monday);
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(Millis(monday.0 - 1)).0, monday.0 - WEEK_MS);
        assert_eq!(
            weeks_between(Millis(monday.0 - 3 * WEEK_MS), sunday, 2).len(),
            2
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_so_each_is_a_real_value() {
        let s = Spread::of((1..=10).rev().map(|m| m * 60_000).collect());
        assert_eq!(s.count, 10);
        assert_eq!(s.median, Some(Duration::from_secs(5 * 60)));
        assert_eq!(s.p90, Some(Duration::from_secs(9 * 60)));
        assert_eq!(Spread::of(vec![]).median, None);
        assert_eq!(Spread::of(vec![7]).p90, Some(Duration::from_millis(7)));
    }

    #[test]
    fn an_incident_counts_in_the_week_it_opened_with_its_times() {
        let week = week_start(Millis(100 * 24 * H));
        let weeks = vec![week, Millis(week.0 + WEEK_MS)];
        let i = |open: i64, ack: Option<i64>, res: Option<i64>, severity| IncidentTimes {
            severity,
            opened_at: Millis(week.0 + open * H),
            acknowledged_at: ack.map(|a| Millis(week.0 + a * H)),
            resolved_at: res.map(|r| Millis(week.0 + r * H)),
        };
        let figures = weekly(
            &[
                i(1, Some(2), Some(5), Severity::P1),
                i(2, None, None, Severity::P0),
                // Opened in the second week, resolved later: counted there.
                i(7 * 24 + 1, Some(7 * 24 + 2), Some(9 * 24), Severity::P1),
                // Before the first week: not counted.
                i(-1, None, None, Severity::P3),
            ],
            &weeks,
        );
        assert_eq!(figures[0].by_severity, [1, 1, 0, 0]);
        assert_eq!(figures[0].mtta.median, Some(Duration::from_secs(3600)));
        assert_eq!(figures[0].mttr.count, 1);
        assert_eq!(figures[1].total(), 1);
        let pages = vec![
            ("U2".to_string(), Millis(week.0 + H)),
            ("U1".to_string(), Millis(week.0 + 2 * H)),
            ("U2".to_string(), Millis(week.0 + WEEK_MS + H)),
        ];
        assert_eq!(
            pages_per_person(&pages, &weeks),
            vec![
                ("U2".to_string(), vec![1, 1]),
                ("U1".to_string(), vec![1, 0])
            ]
        );
    }
}
