//! Slack conversations for major incidents' rooms: the [`Conversations`]
//! port on the Web API (or the console stand-in).
//!
//! Slack's codes are sorted into what Klaxon does next: `name_taken` picks
//! another name, an error the app cannot get past by waiting (a missing
//! scope, `restricted_action`, an invalid name) is a refusal, the rest is
//! retried.

use std::sync::Arc;

use serde_json::json;

use super::api::{CallError, SlackApi};
use crate::usecases::ports::{BoxFuture, Conversations, Refusal};

/// Codes from `conversations.*` that waiting does not fix.
const REFUSED: &[&str] = &[
    "restricted_action",
    "invalid_name",
    "invalid_name_specials",
    "invalid_name_maxlength",
    "invalid_name_punctuation",
    "invalid_name_required",
    "no_channel",
    "not_allowed_token_type",
    "team_access_not_granted",
    "ekm_access_denied",
    "method_not_supported_for_channel_type",
    "user_is_restricted",
    "too_long",
];

/// Pages of `conversations.list` (1,000 channels each) a lookup reads at most.
const LIST_PAGES: usize = 20;

#[derive(Debug)]
pub struct SlackConversations {
    api: Arc<SlackApi>,
    /// The bot user's id, once `auth.test` said it.
    bot_user: tokio::sync::OnceCell<String>,
}

impl SlackConversations {
    pub fn new(api: Arc<SlackApi>) -> SlackConversations {
        SlackConversations {
            api,
            bot_user: tokio::sync::OnceCell::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Refusal> {
        self.api.call(method, &body).await.map_err(sort)
    }
}

/// What a failed call means for a room.
fn sort(e: CallError) -> Refusal {
    match e {
        CallError::Scope(needed) => Refusal::Refused(format!("missing_scope ({needed})")),
        CallError::Transient(code) | CallError::Permanent(code) | CallError::NoAccess(code)
            if code == "name_taken" =>
        {
            Refusal::NameTaken
        }
        CallError::Transient(code) | CallError::Permanent(code)
            if REFUSED.contains(&code.as_str()) =>
        {
            Refusal::Refused(code)
        }
        CallError::Permanent(code) | CallError::NoAccess(code) => Refusal::Refused(code),
        other => Refusal::Retry(other.code()),
    }
}

impl Conversations for SlackConversations {
    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, Refusal>> {
        Box::pin(async move {
            let answer = self
                .call(
                    "conversations.create",
                    json!({"name": name, "is_private": false}),
                )
                .await?;
            answer
                .pointer("/channel/id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Refusal::Retry("invalid_response".into()))
        })
    }

    fn set_topic<'a>(
        &'a self,
        channel: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            self.call(
                "conversations.setTopic",
                json!({"channel": channel, "topic": topic}),
            )
            .await
            .map(|_| ())
        })
    }

    fn invite<'a>(&'a self, channel: &'a str, user: &'a str) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            match self
                .call(
                    "conversations.invite",
                    json!({"channel": channel, "users": user}),
                )
                .await
            {
                Err(Refusal::Refused(code) | Refusal::Retry(code))
                    if code == "already_in_channel" || code == "cant_invite_self" =>
                {
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        })
    }

    fn find_own<'a>(
        &'a self,
        name: &'a str,
        since: crate::time::Millis,
    ) -> BoxFuture<'a, Result<Option<String>, Refusal>> {
        Box::pin(async move {
            if self.api.is_console() {
                return Ok(None);
            }
            let me = self
                .bot_user
                .get_or_try_init(|| async {
                    self.api
                        .auth_test()
                        .await
                        .map(|info| info.user_id)
                        .map_err(sort)
                })
                .await?
                .clone();
            let mut args =
                json!({"types": "public_channel", "exclude_archived": "true", "limit": "1000"});
            for _ in 0..LIST_PAGES {
                let answer = self.call("conversations.list", args.clone()).await?;
                let found = answer
                    .get("channels")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| {
                        c.get("name").and_then(serde_json::Value::as_str) == Some(name)
                            && c.get("creator").and_then(serde_json::Value::as_str) == Some(&me)
                            && c.get("created")
                                .and_then(serde_json::Value::as_i64)
                                .is_some_and(|secs| secs * 1000 >= since.0)
                    })
                    .and_then(|c| c.get("id").and_then(serde_json::Value::as_str));
                if let Some(id) = found {
                    return Ok(Some(id.to_string()));
                }
                match answer
                    .pointer("/response_metadata/next_cursor")
                    .and_then(serde_json::Value::as_str)
                {
                    Some(cursor) if !cursor.is_empty() => args["cursor"] = json!(cursor),
                    _ => return Ok(None),
                }
            }
            Ok(None)
        })
    }

    fn archive<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            match self
                .call("conversations.archive", json!({"channel": channel}))
                .await
            {
                Err(Refusal::Refused(code) | Refusal::Retry(code))
                    if code == "already_archived" =>
                {
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_codes_sort_into_another_name_a_refusal_or_a_retry() {
        assert_eq!(
            sort(CallError::Transient("name_taken".into())),
            Refusal::NameTaken
        );
        assert_eq!(
            sort(CallError::Transient("restricted_action".into())),
            Refusal::Refused("restricted_action".into())
        );
        assert_eq!(
            sort(CallError::Scope("channels:manage".into())),
            Refusal::Refused("missing_scope (channels:manage)".into())
        );
        assert_eq!(
            sort(CallError::Transient("http_503".into())),
            Refusal::Retry("http_503".into())
        );
    }
}
