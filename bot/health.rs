//! Klaxon watching itself, so a broken install shows before the first real
//! incident: the database answering, Slack accepting the bot token
//! (`auth.test`) with every scope Klaxon uses, the bot able to post in every configured channel
//! (`conversations.info`), and no job left due too long. At start and then
//! every [`EVERY`] (Slack every [`SLACK_EVERY`]); the results go to the log
//! (warn on a problem, info when it clears), to the metrics the shipped alert
//! rules watch, and to `/readyz`'s detail.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::jobs::Lane;
use crate::slack::api::{CallError, REQUIRED_SCOPES, SlackApi};
use crate::store::{jobs, outbox};
use crate::telemetry::{ChannelLabels, LaneLabels};
use crate::usecases::Ctx;
use crate::usecases::reach::{Auth, SocketLink};

/// How often the database and the jobs are looked at.
pub const EVERY: Duration = Duration::from_secs(15);
/// How often Slack's credentials and channels are checked.
pub const SLACK_EVERY: Duration = Duration::from_secs(60);
/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the checks until `stop` turns true.
pub async fn watch(ctx: Ctx, slack: Arc<SlackApi>, mut stop: watch::Receiver<bool>) {
    let mut last_slack: Option<tokio::time::Instant> = None;
    loop {
        check_database(&ctx).await;
        if last_slack.is_none_or(|t| t.elapsed() >= SLACK_EVERY) {
            check_slack(&ctx, &slack).await;
            last_slack = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Pings the database and measures how long the oldest due job has waited.
pub async fn check_database(ctx: &Ctx) {
    let up = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, ctx.store.ping()).await,
        Ok(Ok(()))
    );
    ctx.metrics.database_up.set(i64::from(up));
    if !up {
        return;
    }
    let now = ctx.clock.now();
    for lane in Lane::ALL {
        let oldest = tokio::time::timeout(
            CHECK_TIMEOUT,
            jobs::oldest_due(ctx.store.pool(), lane.as_str(), now),
        )
        .await;
        if let Ok(Ok(oldest)) = oldest {
            let waited = oldest.map_or(0.0, |due| now.since(due).as_secs_f64());
            ctx.metrics
                .jobs_oldest_due
                .get_or_create(&LaneLabels {
                    lane: lane.as_str().into(),
                })
                .set(waited);
        }
    }
    if let Ok(Err(e)) = tokio::time::timeout(
        CHECK_TIMEOUT,
        crate::usecases::heartbeats::refresh_metrics(ctx),
    )
    .await
    {
        tracing::debug!(error = %e, "could not read the heartbeats for the metrics");
    }
}

/// The channels the configuration posts in: the incident channel and every
/// alert route's channel.
pub fn configured_channels(ctx: &Ctx) -> Vec<String> {
    let settings = &ctx.settings;
    let mut channels: Vec<String> = settings
        .slack
        .incident_channel
        .iter()
        .chain(
            settings
                .alerts
                .routes
                .routes()
                .iter()
                .filter_map(|r| r.channel.as_ref()),
        )
        .map(|c| c.as_str().to_string())
        .collect();
    channels.sort();
    channels.dedup();
    channels
}

/// `auth.test`, then `conversations.info` for each configured channel.
pub async fn check_slack(ctx: &Ctx, slack: &SlackApi) {
    let reach = &ctx.reach;
    if slack.is_console() {
        reach.set_auth(Auth::Console);
        ctx.metrics.slack_auth_ok.set(1);
        return;
    }
    let before = reach.auth();
    let answer = tokio::time::timeout(CHECK_TIMEOUT, slack.auth_test()).await;
    let (auth, missing) = match answer {
        Ok(Ok(info)) => (
            Auth::Ok(format!("workspace {}, bot user {}", info.team, info.user)),
            info.missing_scopes(),
        ),
        Ok(Err(CallError::Auth(code))) => (Auth::Failed(code), Vec::new()),
        Ok(Err(e)) => (Auth::Unreachable(e.code()), Vec::new()),
        Err(_) => (Auth::Unreachable("timeout".into()), Vec::new()),
    };
    match (&auth, &before) {
        (Auth::Ok(who), Auth::Ok(_)) => tracing::debug!(who, "Slack accepts the bot token"),
        (Auth::Ok(who), _) => tracing::info!(who, "Slack accepts the bot token"),
        (Auth::Failed(why), _) => tracing::error!(
            error = %why,
            "Slack refuses the bot token (auth.test): check KLAXON_SLACK_BOT_TOKEN (OAuth & Permissions → Bot User OAuth Token) and that the app is installed; messages wait in the outbox meanwhile"
        ),
        (Auth::Unreachable(why), _) => tracing::warn!(
            error = %why,
            api = %ctx.settings.slack.api_url,
            "Klaxon gets no answer from Slack's API (auth.test): check the way out to it (a proxy, a firewall) and KLAXON_SLACK_API_URL; messages wait in the outbox meanwhile"
        ),
        _ => {}
    }
    ctx.metrics
        .slack_reachable
        .set(i64::from(!matches!(auth, Auth::Unreachable(_))));
    if !missing.is_empty() && missing != reach.missing_scopes() {
        let uses: Vec<String> = REQUIRED_SCOPES
            .iter()
            .filter(|(scope, _)| missing.contains(scope))
            .map(|(scope, used_for)| format!("{scope} ({used_for})"))
            .collect();
        tracing::warn!(
            missing = %uses.join(", "),
            "the bot token lacks scopes Klaxon uses: add them under OAuth & Permissions (or re-create the app from deploy/slack-app-manifest.yml) and reinstall the app"
        );
    }
    ctx.metrics
        .slack_scopes_missing
        .set(i64::try_from(missing.len()).unwrap_or(i64::MAX));
    // Only Slack's own refusal says the token is bad; without an answer the
    // last verdict stands.
    match &auth {
        Auth::Ok(_) => {
            ctx.metrics.slack_auth_ok.set(1);
        }
        Auth::Failed(_) => {
            ctx.metrics.slack_auth_ok.set(0);
        }
        Auth::Unknown | Auth::Console | Auth::Unreachable(_) => {}
    }
    let auth_ok = matches!(auth, Auth::Ok(_));
    let public_without_invitation = !missing.contains(&"chat:write.public");
    reach.set_missing_scopes(&missing);
    reach.set_auth(auth);
    if !auth_ok {
        return;
    }
    for channel in configured_channels(ctx) {
        let problem = match tokio::time::timeout(
            CHECK_TIMEOUT,
            slack.call("conversations.info", &json!({"channel": channel})),
        )
        .await
        {
            Err(_) => continue,
            Ok(Ok(answer)) => {
                let flag = |k: &str| {
                    answer
                        .pointer(&format!("/channel/{k}"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                };
                // Slack: a bot may post in a public channel it is not in only
                // with chat:write.public; a private one needs the invitation.
                let may_post_uninvited = !flag("is_private") && public_without_invitation;
                if flag("is_archived") {
                    Some("is_archived".to_string())
                } else if !flag("is_member") && !may_post_uninvited {
                    Some("not_in_channel".to_string())
                } else {
                    None
                }
            }
            Ok(Err(CallError::NoAccess(code))) => Some(code),
            Ok(Err(e)) => {
                tracing::warn!(channel, error = %e.code(), "could not check the channel with conversations.info (the app needs the channels:read and groups:read scopes)");
                continue;
            }
        };
        let labels = ChannelLabels {
            channel: channel.clone(),
        };
        match problem {
            Some(why) => {
                if ctx.reach.blocked_channels().get(&channel) != Some(&why) {
                    tracing::warn!(
                        channel,
                        error = %why,
                        "Klaxon cannot post in this channel: invite the bot there (/invite @Klaxon), or fix the channel ID"
                    );
                }
                ctx.reach.block(&channel, &why);
                ctx.metrics.slack_channel_ok.get_or_create(&labels).set(0);
            }
            None => {
                if ctx.reach.unblock(&channel) {
                    // Invited at last: what waits for the channel goes now,
                    // not when its backoff runs out.
                    let now = ctx.clock.now();
                    let waiting = outbox::retry_channel_now(ctx.store.pool(), &channel, now)
                        .await
                        .unwrap_or(0);
                    ctx.outbox_wake.message();
                    tracing::info!(channel, waiting, "Klaxon can post in this channel again");
                }
                ctx.metrics.slack_channel_ok.get_or_create(&labels).set(1);
            }
        }
    }
}

/// What `/readyz` shows besides its status: the database and Slack, in words.
pub fn detail(ctx: &Ctx, database: &str) -> Value {
    let auth = match ctx.reach.auth() {
        Auth::Unknown => "not checked yet".to_string(),
        Auth::Console => "console mode (no bot token)".to_string(),
        Auth::Ok(who) => format!("ok ({who})"),
        Auth::Failed(why) => format!("refused: {why}"),
        Auth::Unreachable(why) => format!("no answer from Slack: {why}"),
    };
    let mut slack = json!({
        "auth": auth,
        "channels_blocked": ctx.reach.blocked_channels(),
        "scopes_missing": ctx.reach.missing_scopes(),
    });
    let socket = match ctx.reach.socket() {
        SocketLink::Off => None,
        SocketLink::Connecting(why) => Some(format!("connecting ({why})")),
        SocketLink::Connected(n) => Some(format!("connected ({n} socket{})", if n == 1 { "" } else { "s" })),
        SocketLink::Disabled => Some(
            "link_disabled: Slack says Socket Mode is off for this app; turn it on (Settings → Socket Mode) or unset KLAXON_SLACK_APP_TOKEN and use the HTTP request URLs".to_string(),
        ),
    };
    if let (Some(socket), Some(o)) = (socket, slack.as_object_mut()) {
        o.insert("socket_mode".into(), json!(socket));
    }
    json!({
        "database": database,
        "slack": slack,
    })
}
