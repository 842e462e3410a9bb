//! Slack user group membership, for permissions (`group:S…` in `allowed`).
//!
//! Members are fetched with `usergroups.users.list` and cached for a few
//! minutes, so a burst of requests costs one Slack call per group.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::api::SlackApi;
use crate::usecases::ports::{BoxFuture, Directory};

const TTL: Duration = Duration::from_secs(300);
/// A permission check waits at most this long for Slack.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1_500);

#[derive(Debug)]
pub struct GroupDirectory {
    api: Arc<SlackApi>,
    cache: Mutex<HashMap<String, (Instant, HashSet<String>)>>,
}

impl GroupDirectory {
    pub fn new(api: Arc<SlackApi>) -> GroupDirectory {
        GroupDirectory {
            api,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user IDs in `group`; `Err` says why they could not be read.
    async fn lookup(&self, group: &str) -> Result<HashSet<String>, String> {
        if let Some((at, members)) = self.cache.lock().await.get(group)
            && at.elapsed() < TTL
        {
            return Ok(members.clone());
        }
        let args = json!({"usergroup": group});
        let call = self.api.call("usergroups.users.list", &args);
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, call)
            .await
            .map_err(|_| format!("Slack did not list the members of {group} in time"))?
            .map_err(|e| format!("Slack did not list the members of {group}: {}", e.code()))?;
        let members: HashSet<String> = answer
            .get("users")
            .and_then(Value::as_array)
            .map(|users| {
                users
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        self.cache
            .lock()
            .await
            .insert(group.to_string(), (Instant::now(), members.clone()));
        Ok(members)
    }
}

impl Directory for GroupDirectory {
    fn members<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<HashSet<String>, String>> {
        Box::pin(self.lookup(group))
    }
}
