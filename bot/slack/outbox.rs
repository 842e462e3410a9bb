//! The outbox sender: delivers queued messages to Slack, in order, at Slack's pace.
//!
//! It sleeps until the earliest pending message is due, a channel's next send
//! slot comes, or someone enqueues one (a [`Notify`]); then it delivers the
//! oldest pending message of every ordering key ("head"): one incident's
//! thread, one incident's pages, one person's direct messages. A thread reply
//! waits for its root's `ts`.
//!
//! - Pages go first. Within a pacing bucket (a channel, or a person's direct
//!   messages) pages are sent before anything else due, a page in a thread
//!   does not queue behind the thread's backlog, and a direct message is paced
//!   by the person's channel, not the incident's. A pass never sleeps for
//!   pacing, so a page enqueued meanwhile is next, and a page committed
//!   during a long pass through a backlog cuts the pass short
//!   ([`OutboxWake::urgent`]), so it waits for the calls in flight, not for
//!   up to a thousand others.
//! - 429: wait `Retry-After`, for that message and its bucket.
//! - 5xx, timeouts, bad tokens, errors Klaxon does not know: retry with
//!   exponential backoff, forever (pages at most [`PAGE_MAX_BACKOFF`] apart);
//!   the first success after such a failure makes every backed-off message
//!   due at once. A Slack outage delays messages; it never drops them.
//! - The bot cannot post in the channel (`not_in_channel` …): retried, and
//!   the opener is told how to fix it.
//! - Errors Slack documents as final for the message: the row is marked
//!   `failed` with the error (log and metric), and the incident's later
//!   messages go on.
//! - A page whose incident was acknowledged, reopened, moved to another ladder
//!   or resolved while it waited is dropped and recorded, not delivered late.
//!
//! Each message is claimed with a short lease first ([`LEASE`], renewed while
//! its call is in flight), so several senders (several replicas) never
//! deliver the same row, and a crashed sender's messages go out seconds after
//! the next start. Pacing is shared by the replicas too: each channel's send
//! slots live in the database ([`pacing`]), since Slack's limit belongs to
//! the channel.
//!
//! No doubles. `chat.postMessage` has no idempotency key, so every post
//! carries message metadata naming its outbox row, and the claim marks the
//! row "maybe posted" before the call. When the outcome is lost (a timeout,
//! a proxy's 5xx, a crash or a database failure before "sent" is recorded),
//! the next attempt first looks for the row's message in Slack
//! (`conversations.history` / `conversations.replies` with
//! `include_all_metadata`) and records it as sent when found. The heads of
//! one pass that are looked for in the same channel (or thread) share one
//! read ([`Lookups`]): after an outage, when the whole backlog is "maybe
//! posted", that is one read per channel per pass, not one per message
//! (Slack allows about 50 reads a minute; at Slack's own pace of a few
//! posts per pass a channel still reads about once per pass). The limits: a
//! call still in flight at Slack when the lookup runs (after the lease ran
//! out) is not found yet, and without the `*:history` scope the lookup is
//! skipped (logged).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::api::{CallError, SlackApi};
use crate::config::OutboxSettings;
use crate::incident::{ChannelId, EventKind, SlackUserId, TimelineEvent};
use crate::store::outbox::{self, MessageKind, NewMessage, OutboxWake, Pending, Posted};
use crate::store::pacing::{self, Pace};
use crate::store::{Store, StoreResult, incidents};
use crate::telemetry::{ChannelLabels, MethodLabels, Metrics, SlackErrorLabels, ViaLabels};
use crate::time::{Clock, Millis, backoff};
use crate::usecases::reach::SlackReach;

/// How many heads one pass looks at. The heads query costs about as much
/// for 1,024 as for 256 (it reads every pending key either way), so a long
/// pass spreads it over more calls; a page committed meanwhile cuts the pass
/// short ([`PAGE_CUTS_PASS_AFTER`]).
const BATCH: i64 = 1024;
/// A pass through a backlog stops taking new messages once a page was
/// committed after its heads query, as soon as it has run this long and four
/// times as long as that query took: the page then goes out after the calls
/// in flight, not after up to [`BATCH`] others. Not sooner: during a page
/// storm (every open pages) a page is committed every few milliseconds, and
/// cutting each pass at once would spend the sender on heads queries.
const PAGE_CUTS_PASS_AFTER: Duration = Duration::from_millis(250);
/// How many messages of one pacing bucket (a channel, one person's direct
/// messages) are in flight at once, when the bucket's pace allows that many
/// (Slack's own pace, about one a second per channel, allows one or a burst;
/// a backlog after an outage, or a generous `channel_rate`, uses them all).
/// Each is the head of a different ordering key.
const IN_FLIGHT: usize = 8;
/// The longest the sender sleeps with nothing due when it is the only one
/// (SQLite; within one process the [`OutboxWake`] wakes it at once).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// The same on a shared database, where other replicas enqueue rows and may
/// die holding claims on them.
const SHARED_POLL: Duration = Duration::from_millis(500);
/// The least wait before a post whose outcome was lost is looked up and
/// tried again: Slack may store a message a little after Klaxon stopped
/// waiting for its answer.
const UNKNOWN_OUTCOME_WAIT: Duration = Duration::from_secs(5);
/// How long a claim on a message lasts; renewed every [`RENEW_EVERY`] while
/// its Slack call is in flight, so a crashed sender's messages go out a few
/// seconds after the next start.
const LEASE: Duration = Duration::from_secs(2);
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// The longest a page waits between attempts while Slack fails: pages are
/// few, and each must go out soon after Slack answers again.
const PAGE_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Attempts at sharing a file before it is given up (the incident's later
/// messages wait behind it): with the backoff, several minutes.
const FILE_ATTEMPTS: i64 = 8;
/// How soon a thread's page looks again for its root.
const ROOT_WAIT_PAGE: Duration = Duration::from_millis(250);

/// One pass of [`OutboxSender::drain`]: the heads it read, delivered bucket
/// by bucket.
struct Pass {
    /// When its heads query started.
    started: std::time::Instant,
    /// The pass's lookups of messages whose outcome was lost.
    lookups: Lookups,
    /// When the soonest page (or root a page waits for) among the heads not
    /// due yet comes due: a page retried after a failure, or one waiting for
    /// its root, cuts the pass short as a new page does.
    page_due: Option<Millis>,
    /// How long it runs before a page committed after its heads query stops
    /// it taking new messages: [`PAGE_CUTS_PASS_AFTER`], or four heads
    /// queries when those are slower (a large backlog on a busy database),
    /// so the sender still spends most of its time delivering.
    page_cuts_after: Duration,
}

impl Pass {
    /// Whether the pass should stop taking new messages: a page waits that
    /// its heads do not hold (or one they hold came due at `now`), and the
    /// pass has run long enough.
    fn cut_short(&self, wake: &OutboxWake, now: Millis) -> bool {
        let page_waits = wake.urgent_waiting() || self.page_due.is_some_and(|due| due <= now);
        page_waits && self.started.elapsed() >= self.page_cuts_after
    }
}

/// Where a message whose outcome was lost is looked for: a channel (for a
/// direct message, its person: the channel is the one opened for them), or a
/// thread in it.
type Place = (String, Option<String>);

/// The lookups of one pass: every head whose outcome was lost (a timeout, a
/// 5xx, a crash after its claim) is looked for in Slack before it is posted
/// again, and the heads of one channel (or thread) share one read of it. After
/// an outage that is the whole backlog: one `conversations.history` read per
/// channel (and per person paged) per pass, not one per message, each
/// reading everything posted since. A row is only claimed as it was read
/// (`outbox::claim` checks its attempts), so a read made before another
/// replica tried the row is never used for it.
struct Lookups {
    by_place: HashMap<Place, Lookup>,
}

/// One shared read: the rows it looks for (outbox id, creation time) and,
/// once the first of them asked, what Slack answered.
struct Lookup {
    wanted: Vec<(i64, Millis)>,
    read: tokio::sync::OnceCell<Result<HashMap<i64, String>, CallError>>,
}

impl Lookups {
    fn new(heads: &[Pending]) -> Lookups {
        let mut by_place: HashMap<Place, Lookup> = HashMap::new();
        for row in heads.iter().filter(|r| r.maybe_posted) {
            if let Some(place) = Self::place(row) {
                by_place
                    .entry(place)
                    .or_insert_with(|| Lookup {
                        wanted: Vec::new(),
                        read: tokio::sync::OnceCell::new(),
                    })
                    .wanted
                    .push((row.id, row.created_at));
            }
        }
        Lookups { by_place }
    }

    /// Where `row` is posted; `None` for a message that is never looked for.
    fn place(row: &Pending) -> Option<Place> {
        match row.kind {
            MessageKind::Root | MessageKind::Post => Some((row.channel.clone(), None)),
            MessageKind::Reply => row
                .thread_ts
                .clone()
                .map(|ts| (row.channel.clone(), Some(ts))),
            MessageKind::Direct => row.user.as_ref().map(|u| (format!("dm:{u}"), None)),
            _ => None,
        }
    }

    /// The `ts` of `row`'s message when Slack has it in `channel` (the
    /// channel its post names; or its thread): from the pass's shared read of
    /// that place, else from a read of its own.
    async fn find(
        &self,
        api: &SlackApi,
        channel: &str,
        row: &Pending,
    ) -> Result<Option<String>, CallError> {
        let thread = match row.kind {
            MessageKind::Reply => row.thread_ts.as_deref(),
            _ => None,
        };
        // A post naming another channel than its row's is looked for alone;
        // a person's direct messages all go to the one channel opened for them.
        let same_channel = row.kind == MessageKind::Direct || channel == row.channel;
        let shared = Self::place(row)
            .filter(|_| same_channel)
            .and_then(|place| self.by_place.get(&place))
            .filter(|l| l.wanted.iter().any(|(id, _)| *id == row.id));
        match shared {
            Some(lookup) => lookup
                .read
                .get_or_init(|| api.find_posted(channel, thread, &lookup.wanted))
                .await
                .clone()
                .map(|found| found.get(&row.id).cloned()),
            None => api
                .find_posted(channel, thread, &[(row.id, row.created_at)])
                .await
                .map(|mut found| found.remove(&row.id)),
        }
    }
}

#[derive(Debug)]
pub struct OutboxSender {
    store: Store,
    clock: Clock,
    reach: Arc<SlackReach>,
    api: Arc<SlackApi>,
    settings: OutboxSettings,
    metrics: Arc<Metrics>,
    wake: Arc<OutboxWake>,
    owner: String,
    /// Set when a call failed for a reason on Slack's side (or the way to it);
    /// the next success makes every backed-off message due at once.
    outage: std::sync::atomic::AtomicBool,
}

/// Which pacing bucket a message draws from: Slack paces `chat.postMessage`
/// per channel ("Rate limits": about one message a second per channel, short
/// bursts allowed), and a direct message goes to the person's own channel.
fn pace_key(row: &Pending) -> String {
    match (row.kind, row.user.as_deref()) {
        (MessageKind::Direct, Some(user)) => format!("dm:{user}"),
        _ => row.channel.clone(),
    }
}

impl OutboxSender {
    pub fn new(
        store: Store,
        clock: Clock,
        reach: Arc<SlackReach>,
        api: Arc<SlackApi>,
        settings: OutboxSettings,
        metrics: Arc<Metrics>,
        wake: Arc<OutboxWake>,
    ) -> OutboxSender {
        let owner = format!("{}-{}", std::process::id(), rand::random::<u32>());
        OutboxSender {
            store,
            clock,
            reach,
            api,
            settings,
            metrics,
            wake,
            owner,
            outage: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs until `shutdown` turns true; the delivery in flight then finishes first.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut jumps = self.clock.jumps();
        loop {
            if *shutdown.borrow() {
                break;
            }
            // On a shared database other replicas enqueue and claim messages
            // this one hears nothing of: look again soon.
            let idle = if self.store.backend().is_shared() {
                SHARED_POLL
            } else {
                MAX_IDLE
            };
            let sleep_for = match self.drain(&shutdown).await {
                Ok(next_due) => {
                    failures = 0;
                    self.metrics
                        .outbox_last_run
                        .set(self.clock.now().0 as f64 / 1000.0);
                    next_due
                        .map(|due| due.since(self.clock.now()))
                        .unwrap_or(idle)
                        .min(idle)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures, self.settings.max_backoff.min(MAX_IDLE));
                    tracing::warn!(error = %e, retry_in = ?wait, "outbox: database unavailable");
                    wait
                }
            };
            let until = self.clock.now().plus(sleep_for);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.clock.sleep_until(until) => {}
                _ = jumps.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::debug!("outbox sender stopped");
    }

    /// Delivers everything due that Slack's pace allows now, pages first;
    /// returns when to look again (the next message due, or the next send
    /// slot of a paced channel). It never sleeps for pacing: a page enqueued
    /// meanwhile wakes the sender and goes out ahead of the backlog.
    pub async fn drain(&self, shutdown: &watch::Receiver<bool>) -> StoreResult<Option<Millis>> {
        loop {
            let now = self.clock.now();
            // Pages committed from here on are not in these heads: they cut the pass short.
            self.wake.take_urgent();
            let looked = std::time::Instant::now();
            let heads = outbox::heads(self.store.pool(), BATCH, now).await?;
            let query_took = looked.elapsed();
            // A message another sender holds a live claim on is not ours to
            // try: look again when that claim runs out (its sender may die).
            let held_elsewhere = |p: &Pending| match &p.lease {
                Some((owner, until)) if owner != &self.owner && *until > now => Some(*until),
                _ => None,
            };
            let (due, later): (Vec<Pending>, Vec<Pending>) = heads
                .into_iter()
                .partition(|p| p.next_attempt_at <= now && held_elsewhere(p).is_none());
            let next_due = later
                .iter()
                .map(|p| {
                    held_elsewhere(p)
                        .unwrap_or(p.next_attempt_at)
                        .max(p.next_attempt_at)
                })
                .min();
            if due.is_empty() || *shutdown.borrow() {
                return Ok(next_due);
            }
            let pass = Pass {
                started: looked,
                page_cuts_after: PAGE_CUTS_PASS_AFTER.max(query_took * 4),
                lookups: Lookups::new(&due),
                page_due: later
                    .iter()
                    .filter(|p| (p.page || p.urgent) && held_elsewhere(p).is_none())
                    .map(|p| p.next_attempt_at)
                    .min(),
            };
            let pass = &pass;
            let mut by_pace: HashMap<String, Vec<Pending>> = HashMap::new();
            for p in due {
                by_pace.entry(pace_key(&p)).or_default().push(p);
            }
            let results = futures_util::future::join_all(by_pace.into_iter().map(
                |(key, mut rows)| async move {
                    // Urgent first (pages, and roots pages wait for), the
                    // most severe incident's first among those, then the oldest due.
                    rows.sort_by(|a, b| {
                        (!a.urgent, a.severity_rank(), a.next_attempt_at, a.id).cmp(&(
                            !b.urgent,
                            b.severity_rank(),
                            b.next_attempt_at,
                            b.id,
                        ))
                    });
                    self.deliver_bucket(&key, rows, pass, shutdown).await
                },
            ))
            .await;
            let mut progressed = false;
            let mut paced: Option<Duration> = None;
            for r in results {
                let (delivered, wait) = r?;
                progressed |= delivered > 0;
                if let Some(w) = wait {
                    paced = Some(paced.map_or(w, |p| p.min(w)));
                }
            }
            if !progressed {
                let slot = paced.map(|w| self.clock.now().plus(w));
                return Ok(match (next_due, slot) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                });
            }
        }
    }

    /// Delivers the due heads of one pacing bucket, in the order given, up to
    /// [`IN_FLIGHT`] at once while the bucket's pace allows: each head is the
    /// oldest message of its own ordering key, so sending heads side by side
    /// never reorders an incident's thread, a person's direct messages or a
    /// page's ladder. Returns how many were delivered and, when the pace
    /// stopped it, how long until the bucket's next slot.
    ///
    /// A database error stops new deliveries; the ones in flight finish
    /// (their claims are recorded) before the error is returned. So does a
    /// page committed during the pass ([`Pass::cut_short`]): the rows left are
    /// in the next pass, behind the page.
    async fn deliver_bucket(
        &self,
        key: &str,
        rows: Vec<Pending>,
        pass: &Pass,
        shutdown: &watch::Receiver<bool>,
    ) -> StoreResult<(usize, Option<Duration>)> {
        // Rows still to send that need a slot, and slots taken but not used yet.
        let mut needing = rows
            .iter()
            .filter(|r| r.kind != MessageKind::Ephemeral)
            .count();
        let mut credit = 0usize;
        let mut rows = rows.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut tally = Tally::default();
        let mut paced = None;
        loop {
            // At shutdown: finish the calls in flight, leave the rest for the next start.
            while in_flight.len() < IN_FLIGHT
                && paced.is_none()
                && tally.failed.is_none()
                && !*shutdown.borrow()
                // Slots already taken are used first: a cut must not waste them.
                && !(credit == 0 && pass.cut_short(&self.wake, self.clock.now()))
            {
                let Some(row) = rows.next() else { break };
                // The slot is taken before the claim: a message another
                // sender holds, or one that turns out not to need a
                // call, costs a slot, never a burst over the limit.
                if row.kind != MessageKind::Ephemeral && credit == 0 {
                    let want = needing.min(IN_FLIGHT);
                    match self
                        .take_slot_driving(key, want, &mut in_flight, &mut tally)
                        .await
                    {
                        Ok(Ok(taken)) => credit = taken,
                        Ok(Err(wait)) => {
                            paced = Some(wait);
                            break;
                        }
                        Err(e) => {
                            tally.failed.get_or_insert(e);
                            break;
                        }
                    }
                    if tally.failed.is_some() {
                        break;
                    }
                }
                if row.kind != MessageKind::Ephemeral {
                    credit -= 1;
                    needing -= 1;
                }
                in_flight.push(self.deliver(row, pass));
            }
            match in_flight.next().await {
                None => break,
                Some(done) => tally.add(done),
            }
        }
        match tally.failed {
            Some(e) => Err(e),
            None => Ok((tally.delivered, paced)),
        }
    }

    /// [`Self::take_slots`], while the deliveries in flight go on: one of them
    /// may hold the connection the reservation waits for (SQLite has one).
    async fn take_slot_driving<F: Future<Output = StoreResult<bool>>>(
        &self,
        key: &str,
        want: usize,
        in_flight: &mut FuturesUnordered<F>,
        tally: &mut Tally,
    ) -> StoreResult<Result<usize, Duration>> {
        let slot = self.take_slots(key, want);
        tokio::pin!(slot);
        loop {
            tokio::select! {
                r = &mut slot => return r,
                Some(done) = in_flight.next(), if !in_flight.is_empty() => tally.add(done),
            }
        }
    }

    /// Delivers one message (or learns it need not go); `false` when another
    /// sender claimed it first.
    async fn deliver(&self, row: Pending, pass: &Pass) -> StoreResult<bool> {
        let now = self.clock.now();
        // Whether this pass will post it: then the claim marks it "maybe
        // posted" before the call (see `outbox::claim`).
        let will_post = matches!(
            row.kind,
            MessageKind::Root | MessageKind::Reply | MessageKind::Direct | MessageKind::Post
        ) && row.stale_page().is_none()
            && (row.kind != MessageKind::Reply || row.thread_ts.is_some());
        if !outbox::claim(
            self.store.pool(),
            &row,
            &self.owner,
            now,
            now.plus(LEASE),
            will_post,
        )
        .await?
        {
            if row.page {
                // It may have gone stale since the heads were read: the next
                // pass reads it as such and drops it (and records why).
                self.wake.message();
            }
            return Ok(false);
        }
        self.deliver_claimed(row, will_post, pass).await?;
        Ok(true)
    }

    /// Delivers a message this sender holds the claim on.
    async fn deliver_claimed(&self, row: Pending, will_post: bool, pass: &Pass) -> StoreResult<()> {
        let now = self.clock.now();
        if let Some(why) = row.stale_page() {
            return self.drop_stale_page(&row, why, now).await;
        }
        // Root refreshes (and other updates of one message) that queued up while
        // the channel was busy: only the newest goes out.
        if outbox::superseded(self.store.pool(), &row).await? {
            self.metrics.slack_updates_coalesced.inc();
            return outbox::mark_dropped(
                self.store.pool(),
                row.id,
                "superseded by a newer update of the same message",
            )
            .await;
        }
        if row.kind == MessageKind::File {
            return self.deliver_file(&row).await;
        }
        let mut body: Value = match serde_json::from_str(&row.payload) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .give_up(&row, "chat.postMessage", &format!("invalid_payload: {e}"))
                    .await;
            }
        };
        if row.kind == MessageKind::Update && row.ref_ts.is_none() {
            if row.ref_failed {
                return self
                    .give_up(&row, "chat.update", "updated_message_never_posted")
                    .await;
            }
            return outbox::retry_later(
                self.store.pool(),
                row.id,
                now.plus(Duration::from_secs(1)),
                "waiting_for_updated_message",
                false,
                Posted::Unchanged,
            )
            .await;
        }
        let thread_kind = matches!(row.kind, MessageKind::Reply | MessageKind::UpdateRoot);
        if thread_kind && row.thread_ts.is_none() {
            let root_failed = match row.incident {
                Some(r) => outbox::root_failed(self.store.pool(), r).await?,
                None => true,
            };
            if root_failed {
                return self
                    .give_up(&row, "chat.postMessage", "thread_root_never_posted")
                    .await;
            }
            // The root is not out yet (a page has its own order, so it may get
            // here first; else this is a race with another sender): look again
            // shortly.
            let wait = if row.page {
                ROOT_WAIT_PAGE
            } else {
                Duration::from_secs(1)
            };
            return outbox::retry_later(
                self.store.pool(),
                row.id,
                now.plus(wait),
                "waiting_for_thread_root",
                false,
                Posted::Unchanged,
            )
            .await;
        }
        let set = |body: &mut Value, k: &str, v: &str| {
            if let Some(o) = body.as_object_mut() {
                o.insert(k.to_string(), json!(v));
            }
        };
        let method = match row.kind {
            MessageKind::Root => "chat.postMessage",
            MessageKind::Reply => "chat.postMessage",
            MessageKind::UpdateRoot | MessageKind::Update => "chat.update",
            MessageKind::Ephemeral => "chat.postEphemeral",
            MessageKind::Direct | MessageKind::Post => "chat.postMessage",
            MessageKind::File => "files.completeUploadExternal",
        };
        set(&mut body, "channel", &row.channel);
        match row.kind {
            MessageKind::Reply => set(
                &mut body,
                "thread_ts",
                row.thread_ts.as_deref().unwrap_or(""),
            ),
            MessageKind::UpdateRoot => set(&mut body, "ts", row.thread_ts.as_deref().unwrap_or("")),
            MessageKind::Update => {
                // The message updated may live in another channel (the room's copy of the root).
                if let Some(channel) = &row.ref_channel {
                    set(&mut body, "channel", channel);
                }
                set(&mut body, "ts", row.ref_ts.as_deref().unwrap_or(""))
            }
            MessageKind::Ephemeral => set(&mut body, "user", row.user.as_deref().unwrap_or("")),
            MessageKind::Direct => {
                let user = row.user.clone().unwrap_or_default();
                let open = json!({"users": user});
                match self
                    .holding(row.id, self.api.call("conversations.open", &open))
                    .await
                {
                    Ok(answer) => {
                        let dm = answer
                            .pointer("/channel/id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        set(&mut body, "channel", &dm);
                    }
                    Err(e) => return self.handle_error(&row, "conversations.open", e).await,
                }
            }
            MessageKind::Root | MessageKind::Post | MessageKind::File => {}
        }
        if will_post {
            // Slack keeps the metadata with the message: the way to find it
            // again when this call's outcome is lost.
            if let Some(o) = body.as_object_mut() {
                o.insert(
                    "metadata".into(),
                    crate::slack::api::message_metadata(row.id, row.created_at),
                );
            }
            if row.maybe_posted {
                let channel = body
                    .get("channel")
                    .and_then(Value::as_str)
                    .unwrap_or(&row.channel)
                    .to_string();
                match self
                    .holding(row.id, pass.lookups.find(&self.api, &channel, &row))
                    .await
                {
                    Ok(Some(ts)) => {
                        tracing::info!(
                            incident = row.incident.map(|r| r.to_string()).unwrap_or_default(),
                            channel = %channel,
                            ts,
                            "a message whose outcome was lost is in Slack already; not posting it again"
                        );
                        self.metrics.slack_doubles_avoided.inc();
                        return self.record_sent(&row, method, Some(&ts)).await;
                    }
                    Ok(None) => {}
                    Err(CallError::Scope(needed)) => {
                        tracing::warn!(
                            scope = %needed,
                            channel = %channel,
                            "cannot look for a message whose outcome was lost (the Slack app lacks this scope): posting it again, which may show it twice"
                        );
                    }
                    // The lookup failed, not the post: the row stays "maybe
                    // posted" (a 429 on the read must not make it post blindly).
                    Err(e) => {
                        let lookup = match row.kind {
                            MessageKind::Reply => "conversations.replies",
                            _ => "conversations.history",
                        };
                        return self.handle_error(&row, lookup, e).await;
                    }
                }
            }
        }
        match self.holding(row.id, self.api.call(method, &body)).await {
            Ok(answer) => {
                if self.outage.swap(false, std::sync::atomic::Ordering::AcqRel) {
                    let hurried = outbox::retry_now(self.store.pool(), self.clock.now()).await?;
                    if hurried > 0 {
                        tracing::info!(
                            messages = hurried,
                            "Slack answers again: sending what waited out the failures now"
                        );
                    }
                }
                let ts = answer
                    .get("ts")
                    .or_else(|| answer.get("message_ts"))
                    .and_then(Value::as_str);
                if !matches!(row.kind, MessageKind::Direct | MessageKind::Ephemeral)
                    && self.reach.unblock(&row.channel)
                {
                    let waiting = outbox::retry_channel_now(
                        self.store.pool(),
                        &row.channel,
                        self.clock.now(),
                    )
                    .await?;
                    tracing::info!(channel = %row.channel, waiting, "Klaxon can post in this channel again");
                }
                self.record_sent(&row, method, ts).await
            }
            Err(e) => self.handle_error(&row, method, e).await,
        }
    }

    /// Shares a file (a [`MessageKind::File`] row): in the incident's thread
    /// once its root is out, when the payload says so. Slack's upload flow has
    /// no idempotency key: a crash between its last call and recording the
    /// outcome shares the file again on the next attempt.
    async fn deliver_file(&self, row: &Pending) -> StoreResult<()> {
        let now = self.clock.now();
        let file: outbox::FilePayload = match serde_json::from_str(&row.payload) {
            Ok(f) => f,
            Err(e) => {
                return self
                    .give_up(
                        row,
                        "files.completeUploadExternal",
                        &format!("invalid_payload: {e}"),
                    )
                    .await;
            }
        };
        if file.in_thread && row.thread_ts.is_none() {
            let root_failed = match row.incident {
                Some(r) => outbox::root_failed(self.store.pool(), r).await?,
                None => true,
            };
            if root_failed {
                return self
                    .give_up(
                        row,
                        "files.completeUploadExternal",
                        "thread_root_never_posted",
                    )
                    .await;
            }
            return outbox::retry_later(
                self.store.pool(),
                row.id,
                now.plus(Duration::from_secs(1)),
                "waiting_for_thread_root",
                false,
                Posted::Unchanged,
            )
            .await;
        }
        let thread = if file.in_thread {
            row.thread_ts.as_deref()
        } else {
            None
        };
        match self
            .holding(row.id, self.api.upload_file(&row.channel, thread, &file))
            .await
        {
            Ok(id) => {
                tracing::info!(
                    incident = row.incident.map(|r| r.to_string()).unwrap_or_default(),
                    file = %id,
                    bytes = file.content.len(),
                    "file shared"
                );
                self.record_sent(row, "files.completeUploadExternal", None)
                    .await
            }
            // A file Slack will not take here must not hold up the
            // incident's messages, nor mark a channel blocked where
            // messages do go (`chat:write.public` posts without membership;
            // a file needs it).
            Err(CallError::NoAccess(code) | CallError::Permanent(code)) => {
                self.file_refused(row, &file, &code).await
            }
            Err(CallError::Scope(needed)) => {
                self.file_refused(row, &file, &format!("missing_scope {needed}"))
                    .await
            }
            // Messages of its incident wait behind it: a file Slack keeps
            // failing on is given up after a while, and said so.
            Err(CallError::Transient(code) | CallError::Auth(code))
                if row.attempts + 1 >= FILE_ATTEMPTS =>
            {
                self.file_refused(row, &file, &code).await
            }
            Err(e) => {
                self.handle_error(row, "files.completeUploadExternal", e)
                    .await
            }
        }
    }

    /// Gives up on a file Slack refused, and says so where it was to go (the
    /// thread: a message needs no membership there).
    async fn file_refused(
        &self,
        row: &Pending,
        file: &outbox::FilePayload,
        code: &str,
    ) -> StoreResult<()> {
        tracing::error!(
            channel = %row.channel,
            incident = row.incident.map(|r| r.to_string()).unwrap_or_default(),
            error = code,
            "slack refused a file; marked failed"
        );
        self.metrics
            .slack_api_errors
            .get_or_create(&SlackErrorLabels {
                method: "files.completeUploadExternal".into(),
                error: code.to_string(),
            })
            .inc();
        self.metrics.slack_permanent_failures.inc();
        let mut tx = self.store.begin().await?;
        outbox::mark_failed(&mut *tx, row.id, code).await?;
        if let (Some(r), Some(channel)) = (row.incident, ChannelId::parse(&row.channel)) {
            let why = match code {
                "not_in_channel" | "channel_not_found" => {
                    ": sharing a file needs the bot in the channel (`/invite @Klaxon`); posting does not"
                }
                c if c.starts_with("missing_scope") => {
                    ": the Slack app needs the `files:write` scope (reinstall it)"
                }
                _ => "",
            };
            outbox::enqueue(
                &mut tx,
                &NewMessage {
                    incident: Some(r),
                    kind: if file.in_thread {
                        MessageKind::Reply
                    } else {
                        MessageKind::Post
                    },
                    channel: &channel,
                    user: None,
                    payload: crate::blocks::text_message(&format!(
                        "⚠️ Slack did not take the file `{}` (`{}`{why}). Ask for it again once that is fixed; where `KLAXON_HISTORY_TOKEN` is set, Klaxon also serves it at `/incidents/{r}/postmortem.md`.",
                        crate::templates::slack_escape(&file.filename),
                        crate::templates::slack_escape(code),
                    )),
                    updates: None,
                    page: false,
                },
                self.clock.now(),
            )
            .await?;
        }
        let enqueued = tx.commit().await?;
        self.wake.after_commit(enqueued);
        Ok(())
    }

    /// Records that Slack has the message (`ts` for posts), and for a root
    /// the incident's thread.
    async fn record_sent(&self, row: &Pending, method: &str, ts: Option<&str>) -> StoreResult<()> {
        self.metrics
            .slack_messages_sent
            .get_or_create(&MethodLabels {
                method: method.into(),
            })
            .inc();
        let sent_at = self.clock.now();
        if row.page {
            let via = if row.kind == MessageKind::Direct {
                "direct"
            } else {
                "thread"
            };
            self.metrics
                .page_delivery
                .get_or_create(&ViaLabels { via: via.into() })
                .observe(sent_at.since(row.created_at).as_secs_f64());
        }
        // A root's `ts` is the incident's thread: both rows change together,
        // the incident's first (the store's lock order). Any other message is
        // one statement, which needs no transaction around it.
        if row.kind == MessageKind::Root
            && let (Some(r), Some(ts)) = (row.incident, ts)
        {
            let mut tx = self.store.begin().await?;
            incidents::set_thread_ts(&mut *tx, r, ts).await?;
            outbox::mark_sent(&mut *tx, row.id, Some(ts), sent_at).await?;
            tx.commit().await?;
            if row.urgent {
                // A page in its thread waited for it (`outbox::hurry_root`):
                // it is due now, and no heads of this pass hold it.
                self.wake.urgent();
            }
        } else {
            outbox::mark_sent(self.store.pool(), row.id, ts, sent_at).await?;
        }
        Ok(())
    }

    /// Leaves a page unsent because its incident no longer needs it, and says so
    /// in the timeline (the resolution summary shows it).
    async fn drop_stale_page(&self, row: &Pending, why: &str, now: Millis) -> StoreResult<()> {
        let mut tx = self.store.begin().await?;
        outbox::mark_dropped(&mut *tx, row.id, why).await?;
        if let Some(r) = row.incident {
            let to = row.user.as_deref().and_then(SlackUserId::parse);
            let text = match (row.kind, &to) {
                (MessageKind::Direct, Some(_)) => format!("held back the page ({why}) for"),
                _ => format!("did not post a page in the thread ({why})"),
            };
            incidents::add_event(
                &mut *tx,
                r,
                &TimelineEvent {
                    at: now,
                    kind: EventKind::Escalated,
                    actor: None,
                    text,
                    subject: to,
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.metrics.pages_dropped.inc();
        tracing::info!(
            incident = row.incident.map(|r| r.to_string()).unwrap_or_default(),
            why,
            "page dropped before sending"
        );
        Ok(())
    }

    async fn handle_error(&self, row: &Pending, method: &str, e: CallError) -> StoreResult<()> {
        self.metrics
            .slack_api_errors
            .get_or_create(&SlackErrorLabels {
                method: method.into(),
                error: e.code(),
            })
            .inc();
        let now = self.clock.now();
        if let CallError::NoAccess(code) = &e
            && self.room_gone(row, code).await?
        {
            return Ok(());
        }
        match &e {
            CallError::RateLimited(wait) => {
                tracing::info!(method, channel = %row.channel, wait = ?wait, "slack rate limit; waiting");
                pacing::block_until(
                    self.store.pool(),
                    &pace_key(row),
                    self.pace(),
                    now.plus(*wait),
                )
                .await?;
                // A refused post was not posted; a refused lookup says nothing.
                let posted = match method {
                    "chat.postMessage" => Posted::No,
                    _ => Posted::Unchanged,
                };
                outbox::retry_later(
                    self.store.pool(),
                    row.id,
                    now.plus(*wait),
                    "ratelimited",
                    false,
                    posted,
                )
                .await
            }
            CallError::Transient(code) | CallError::Auth(code) => {
                self.outage
                    .store(true, std::sync::atomic::Ordering::Release);
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                let cap = if row.page {
                    self.settings.max_backoff.min(PAGE_MAX_BACKOFF)
                } else {
                    self.settings.max_backoff
                };
                let wait = backoff(attempts, cap);
                if matches!(e, CallError::Auth(_)) {
                    tracing::error!(method, error = %code, retry_in = ?wait, "slack rejected the bot token; check KLAXON_SLACK_BOT_TOKEN");
                } else {
                    tracing::warn!(method, error = %code, attempts, retry_in = ?wait, "slack call failed; will retry");
                }
                // No answer, or not Slack's: a post may have gone through.
                let posted = match method {
                    "chat.postMessage" if e.may_have_posted() => Posted::Unknown,
                    "chat.postMessage" => Posted::No,
                    _ => Posted::Unchanged,
                };
                let wait = if posted == Posted::Unknown && e.may_still_be_in_flight() {
                    wait.max(UNKNOWN_OUTCOME_WAIT)
                } else {
                    wait
                };
                outbox::retry_later(
                    self.store.pool(),
                    row.id,
                    now.plus(wait),
                    code,
                    true,
                    posted,
                )
                .await
            }
            CallError::Scope(needed)
                if matches!(row.kind, MessageKind::Ephemeral | MessageKind::Direct) =>
            {
                tracing::error!(method, scope = %needed, "the Slack app lacks a scope Klaxon needs for this message: add it under OAuth & Permissions and reinstall the app");
                // A page waiting for a reinstall pages nobody: the thread says so now.
                self.give_up(row, method, &format!("missing_scope {needed}"))
                    .await
            }
            CallError::Scope(needed) => {
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                let wait = backoff(attempts, self.settings.max_backoff);
                tracing::error!(method, scope = %needed, retry_in = ?wait, "the Slack app lacks a scope Klaxon needs to post: add it under OAuth & Permissions and reinstall the app; the message waits");
                outbox::retry_later(
                    self.store.pool(),
                    row.id,
                    now.plus(wait),
                    "missing_scope",
                    true,
                    Posted::No,
                )
                .await
            }
            CallError::NoAccess(code)
                if matches!(row.kind, MessageKind::Ephemeral | MessageKind::Direct) =>
            {
                // A note for one person, or a DM: useless if it waits for an invitation.
                self.give_up(row, method, code).await
            }
            CallError::NoAccess(code) => {
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                let wait = backoff(attempts, self.settings.max_backoff);
                tracing::warn!(
                    method,
                    channel = %row.channel,
                    error = %code,
                    retry_in = ?wait,
                    "Klaxon cannot post in this channel: invite the bot there (/invite @Klaxon), unarchive it, or fix the channel ID; the message waits"
                );
                self.reach.block(&row.channel, code);
                self.metrics
                    .slack_channel_ok
                    .get_or_create(&ChannelLabels {
                        channel: row.channel.clone(),
                    })
                    .set(0);
                if row.attempts == 0 && row.kind == MessageKind::Root {
                    self.tell_opener(row, code).await?;
                }
                outbox::retry_later(
                    self.store.pool(),
                    row.id,
                    now.plus(wait),
                    code,
                    true,
                    Posted::No,
                )
                .await
            }
            CallError::Permanent(code) => self.give_up(row, method, code).await,
        }
    }

    /// When `row` went to an incident's own channel and Slack says that
    /// channel is archived (by Klaxon or by a person) or gone: the room is
    /// recorded as archived, a message for it goes to the incident's thread
    /// instead, an update of a message there is dropped, and the thread says
    /// so once. `false`: not a room's message, handle the error as usual.
    async fn room_gone(&self, row: &Pending, code: &str) -> StoreResult<bool> {
        if !matches!(code, "is_archived" | "channel_not_found") {
            return Ok(false);
        }
        let target = match row.kind {
            MessageKind::Update => row.ref_channel.as_deref().unwrap_or(&row.channel),
            _ => row.channel.as_str(),
        };
        let Some(r) = row.incident else {
            return Ok(false);
        };
        let Some(incident) = incidents::get(self.store.pool(), r).await? else {
            return Ok(false);
        };
        let Some(room) = incident
            .room
            .as_ref()
            .filter(|room| room.channel.as_str() == target)
        else {
            return Ok(false);
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if !room.archived {
            incidents::set_room_archived(&mut *tx, r, now).await?;
            incidents::add_event(
                &mut *tx,
                r,
                &TimelineEvent {
                    at: now,
                    kind: EventKind::Channel,
                    actor: None,
                    text: format!("found its own channel archived ({code}); went on in the thread"),
                    subject: None,
                },
            )
            .await?;
            outbox::enqueue(
                &mut tx,
                &NewMessage {
                    incident: Some(r),
                    kind: MessageKind::Reply,
                    channel: &incident.channel,
                    user: None,
                    payload: crate::blocks::text_message(&format!(
                        "🗄️ {r}'s own channel <#{}> is archived (`{}`): the incident goes on in this thread.",
                        room.channel,
                        crate::templates::slack_escape(code)
                    )),
                    updates: None,
                    page: false,
                },
                now,
            )
            .await?;
        }
        match row.kind {
            MessageKind::Post => {
                outbox::reroute(
                    &mut *tx,
                    row.id,
                    MessageKind::Reply,
                    &incident.channel,
                    None,
                    now,
                )
                .await?
            }
            MessageKind::File => {
                let payload = serde_json::from_str::<outbox::FilePayload>(&row.payload)
                    .ok()
                    .map(|mut f| {
                        f.in_thread = true;
                        serde_json::to_string(&f).unwrap_or_default()
                    });
                outbox::reroute(
                    &mut *tx,
                    row.id,
                    MessageKind::File,
                    &incident.channel,
                    payload.as_deref(),
                    now,
                )
                .await?
            }
            _ => {
                outbox::mark_dropped(&mut *tx, row.id, "its channel was archived").await?;
            }
        }
        let enqueued = tx.commit().await?;
        tracing::info!(incident = %r, channel = %room.channel, error = code, "the incident's own channel is archived; its messages go to the thread");
        self.wake.after_commit(enqueued);
        Ok(true)
    }

    /// Tells whoever opened an incident, by direct message, that its thread
    /// cannot appear yet and how to fix it (the answer to their command may
    /// have gone out before Slack refused).
    async fn tell_opener(&self, row: &Pending, code: &str) -> StoreResult<()> {
        let Some(r) = row.incident else {
            return Ok(());
        };
        let Some(incident) = incidents::get(self.store.pool(), r).await? else {
            return Ok(());
        };
        let Some(opener) = incident.opened_by else {
            return Ok(());
        };
        let text = format!(
            "⚠️ Klaxon could not post {r} in <#{}>: Slack says `{}`. Nothing is lost: the thread \
             appears as soon as Klaxon can post there. {}",
            incident.channel,
            crate::templates::slack_escape(code),
            crate::usecases::reach::how_to_fix(code)
        );
        outbox::enqueue_alone(
            self.store.pool(),
            &NewMessage {
                incident: None,
                kind: MessageKind::Direct,
                channel: &incident.channel,
                user: Some(&opener),
                payload: crate::blocks::text_message(&text),
                updates: None,
                page: false,
            },
            self.clock.now(),
        )
        .await?;
        self.wake.message();
        Ok(())
    }

    async fn give_up(&self, row: &Pending, method: &str, error: &str) -> StoreResult<()> {
        tracing::error!(
            method,
            channel = %row.channel,
            incident = row.incident.map(|r| r.to_string()).unwrap_or_default(),
            error,
            "slack will not accept this message; marked failed"
        );
        self.metrics.slack_permanent_failures.inc();
        let (Some(r), Some(user), true, MessageKind::Direct) = (
            row.incident,
            row.user.as_deref().and_then(SlackUserId::parse),
            row.page,
            row.kind,
        ) else {
            return outbox::mark_failed(self.store.pool(), row.id, error).await;
        };
        // A page that cannot reach its person: the thread must say so, or the
        // channel believes they were paged.
        let mut tx = self.store.begin().await?;
        outbox::mark_failed(&mut *tx, row.id, error).await?;
        let now = self.clock.now();
        incidents::add_event(
            &mut *tx,
            r,
            &TimelineEvent {
                at: now,
                kind: EventKind::Escalated,
                actor: None,
                text: format!("could not deliver the page ({error}) to"),
                subject: Some(user.clone()),
            },
        )
        .await?;
        if let Some(channel) = ChannelId::parse(&row.channel) {
            outbox::enqueue(
                &mut tx,
                &NewMessage {
                    incident: Some(r),
                    kind: MessageKind::Reply,
                    channel: &channel,
                    user: None,
                    payload: crate::blocks::text_message(&format!(
                        "⚠️ The page did not reach <@{user}>: Slack refused the direct message (`{}`{}). Page someone else: `/incident escalate {r}`.",
                        crate::templates::slack_escape(error),
                        dm_refusal_meaning(error)
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )),
                    updates: None,
                    page: false,
                },
                now,
            )
            .await?;
        }
        let enqueued = tx.commit().await?;
        self.wake.after_commit(enqueued);
        Ok(())
    }

    /// Runs a Slack call, renewing the message's lease while it is in flight.
    async fn holding<T>(&self, id: i64, call: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(call);
        let mut tick = tokio::time::interval_at(Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            tokio::select! {
                out = &mut call => return out,
                _ = tick.tick() => {
                    let until = self.clock.now().plus(LEASE);
                    if let Err(e) = outbox::renew_lease(self.store.pool(), id, &self.owner, until).await {
                        tracing::warn!(error = %e, "could not renew an outbox lease");
                    }
                }
            }
        }
    }

    /// This install's pace per bucket (`[outbox] channel_rate`, `channel_burst`).
    fn pace(&self) -> Pace {
        Pace::new(self.settings.channel_rate, self.settings.channel_burst)
    }

    /// Takes send slots of the pacing bucket `key`, shared with every
    /// replica: `want` at once when the bucket's burst allows them all, else
    /// one. `Ok(n)`: `n` slots taken; `Err(wait)`: none, the next in `wait`.
    async fn take_slots(&self, key: &str, want: usize) -> StoreResult<Result<usize, Duration>> {
        let (pace, now) = (self.pace(), self.clock.now());
        let want = want.min(usize::try_from(pace.burst).unwrap_or(1));
        if want > 1 && pacing::reserve_all(self.store.pool(), key, pace, now, want as i64).await? {
            return Ok(Ok(want));
        }
        Ok(
            match pacing::reserve(self.store.pool(), key, pace, now).await? {
                None => Ok(1),
                Some(ms) => Err(Duration::from_millis(u64::try_from(ms).unwrap_or(1))),
            },
        )
    }
}

/// The outcomes of one bucket's deliveries so far: how many went out, and
/// the first database error (which stops new deliveries).
#[derive(Default)]
struct Tally {
    delivered: usize,
    failed: Option<crate::store::StoreError>,
}

impl Tally {
    fn add(&mut self, done: StoreResult<bool>) {
        match done {
            Ok(true) => self.delivered += 1,
            Ok(false) => {}
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// What Slack's refusal of a direct message means, for the thread (Slack's
/// `conversations.open` and `chat.postMessage` error codes).
fn dm_refusal_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "user_disabled" | "account_inactive" => "their account is deactivated",
        "user_not_found" | "users_not_found" => "Slack does not know this user",
        "cannot_dm_bot" => "this user is a bot",
        "not_allowed_token_type" => "the Slack app lacks the `im:write` scope",
        c if c.starts_with("missing_scope") => {
            "the Slack app lacks a scope it needs (named above): add it and reinstall the app"
        }
        "user_is_restricted" | "messages_tab_disabled" => {
            "the user cannot receive direct messages from apps"
        }
        _ => return None,
    })
}
