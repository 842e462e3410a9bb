//! Slack's per-channel pace, shared by every replica.
//!
//! Slack allows about one `chat.postMessage` a second per channel, with short
//! bursts ("Rate limits", Web API docs); the limit belongs to the channel, so
//! replicas on one database must draw from one bucket, or two of them post
//! twice as fast and the 429s slow everyone. Each bucket (a channel, or one
//! person's direct messages) is a single row holding its GCRA "theoretical
//! arrival time" (the generic cell rate algorithm: a token bucket kept as one
//! timestamp), and a send slot is taken with one conditional upsert, so no
//! lock is held across a Slack call.

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::time::Millis;

/// A bucket's pace: `interval_ms` between sends once the burst is spent, and
/// `burst` sends at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Milliseconds between sends at the sustained rate (at least 1).
    pub interval_ms: i64,
    /// Sends allowed back to back (at least 1).
    pub burst: i64,
}

impl Pace {
    /// From a rate in messages per second and a burst size.
    pub fn new(rate_per_second: f64, burst: u32) -> Pace {
        let interval = if rate_per_second > 0.0 {
            (1000.0 / rate_per_second).round()
        } else {
            1000.0
        };
        Pace {
            interval_ms: (interval as i64).max(1),
            burst: i64::from(burst.max(1)),
        }
    }

    /// How far ahead of now a bucket's arrival time may run (GCRA's tolerance).
    fn tolerance_ms(self) -> i64 {
        (self.burst - 1) * self.interval_ms
    }
}

/// Takes a send slot in `bucket` at `now`: `None` when taken, or how many
/// milliseconds until the next slot (nothing is taken then).
pub async fn reserve<'c, E>(
    ex: E,
    bucket: &str,
    pace: Pace,
    now: Millis,
) -> StoreResult<Option<i64>>
where
    E: Executor<'c, Database = Any> + Copy,
{
    if reserve_all(ex, bucket, pace, now, 1).await? {
        return Ok(None);
    }
    let row = sqlx::query("SELECT tat FROM slack_pacing WHERE bucket = $1")
        .bind(bucket)
        .fetch_optional(ex)
        .await?;
    let tat: i64 = match row {
        Some(row) => col(&row, "tat")?,
        None => return Ok(None),
    };
    Ok(Some((tat - pace.tolerance_ms() - now.0).max(1)))
}

/// Takes `slots` send slots of `bucket` at once, or none: `true` when all
/// were taken (then they may be used back to back). What one statement can
/// grant of a burst, so a sender with several messages for one bucket asks
/// once instead of once each; when it is refused, [`reserve`] says how long
/// until the next single slot.
pub async fn reserve_all<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    bucket: &str,
    pace: Pace,
    now: Millis,
    slots: i64,
) -> StoreResult<bool> {
    // GCRA for the last of the slots: max(tat, now) + (slots - 1) * interval - now <= tolerance.
    let taken = sqlx::query(
        "INSERT INTO slack_pacing (bucket, tat) SELECT $1, $2 + $3 * $5 WHERE ($5 - 1) * $3 <= $4 \
         ON CONFLICT (bucket) DO UPDATE SET \
             tat = (CASE WHEN slack_pacing.tat > $2 THEN slack_pacing.tat ELSE $2 END) + $3 * $5 \
         WHERE (CASE WHEN slack_pacing.tat > $2 THEN slack_pacing.tat ELSE $2 END) + ($5 - 1) * $3 - $2 <= $4 \
         RETURNING tat",
    )
    .bind(bucket)
    .bind(now.0)
    .bind(pace.interval_ms)
    .bind(pace.tolerance_ms())
    .bind(slots.max(1))
    .fetch_optional(ex)
    .await?;
    Ok(taken.is_some())
}

/// Slack answered 429 for `bucket`: no replica sends there before `until`.
pub async fn block_until<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    bucket: &str,
    pace: Pace,
    until: Millis,
) -> StoreResult<()> {
    // The first slot after the block is at `until`: tat - tolerance = until.
    let tat = until.0 + pace.tolerance_ms();
    sqlx::query(
        "INSERT INTO slack_pacing (bucket, tat) VALUES ($1, $2) \
         ON CONFLICT (bucket) DO UPDATE SET tat = $2 WHERE slack_pacing.tat < $2",
    )
    .bind(bucket)
    .bind(tat)
    .execute(ex)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_of_one_message_a_second_with_a_burst_of_three_tolerates_two_seconds_ahead() {
        let pace = Pace::new(1.0, 3);
        assert_eq!(pace.interval_ms, 1000);
        assert_eq!(pace.tolerance_ms(), 2000);
        assert_eq!(Pace::new(0.0, 0).burst, 1, "nonsense settings still pace");
    }
}
