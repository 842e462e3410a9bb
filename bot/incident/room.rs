//! A major incident's channel of its own: the name Klaxon gives it.
//!
//! Slack's rules for a channel name ("conversations.create"): at most 80
//! characters, lowercase letters, digits, hyphens and underscores only (no
//! spaces or periods). Klaxon names a room `inc-<n>-<slug of the title>`
//! and, when Slack answers `name_taken`, tries the same name with `-2`,
//! `-3` … before it.

use super::IncidentRef;

/// The longest channel name Slack accepts, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// How many names Klaxon tries before it gives up on `name_taken`.
pub const NAME_ATTEMPTS: u32 = 5;

/// The channel name for `incident` titled `title`; `attempt` 1 is the plain
/// name, later attempts end in `-<attempt>`. Always a valid Slack channel
/// name: lowercase ASCII letters and digits from the title (Slack markup
/// left out, other scripts written in ASCII), runs of anything else as one hyphen,
/// cut on a word boundary to fit 80 characters.
pub fn channel_name(incident: IncidentRef, title: &str, attempt: u32) -> String {
    let prefix = format!("inc-{}", incident.number());
    let suffix = if attempt > 1 {
        format!("-{attempt}")
    } else {
        String::new()
    };
    let mut slug = String::new();
    // Slack escapes `&`, `<` and `>` in slash-command text; letters from
    // other scripts are written in ASCII (deunicode: é → e, Ł → L, 北京 → Bei Jing).
    let plain = super::slack_unescape(&without_markup(title));
    for c in deunicode::deunicode(&plain).chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let room = MAX_NAME_CHARS.saturating_sub(prefix.len() + suffix.len() + 1);
    if slug.len() > room {
        let cut = slug[..room].rfind('-').filter(|i| *i > 0).unwrap_or(room);
        slug.truncate(cut);
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("{prefix}{suffix}")
    } else {
        format!("{prefix}-{slug}{suffix}")
    }
}

/// `title` without Slack's markup (`<@U123|bob>`, `<#C123>`, `<!here>`,
/// `<https://…|label>`): ids and links make no channel name.
fn without_markup(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                out.push(' ');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The channel's topic (Slack: at most 250 characters): the ref and the
/// title. Not the severity, which may change (the root's copy shows it).
pub fn topic(incident: IncidentRef, title: &str) -> String {
    let topic = format!(
        "{incident} · {}",
        super::single_line(&without_markup(title))
    );
    topic.chars().take(250).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> IncidentRef {
        IncidentRef::new(n).expect("ref")
    }

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    }

    #[test]
    fn a_room_is_named_after_its_ref_and_title_in_slacks_alphabet() {
        assert_eq!(
            channel_name(r(7), "Checkout API: 5xx errors > 50%!", 1),
            "inc-7-checkout-api-5xx-errors-50"
        );
        assert_eq!(
            channel_name(r(7), "Checkout API: 5xx errors > 50%!", 2),
            "inc-7-checkout-api-5xx-errors-50-2"
        );
        assert_eq!(
            channel_name(r(12), "Café Zürich façade", 1),
            "inc-12-cafe-zurich-facade"
        );
        assert_eq!(channel_name(r(3), "🔥🔥 !!", 1), "inc-3-fire-fire");
        assert_eq!(channel_name(r(3), "!! ?? ..", 1), "inc-3");
        assert_eq!(
            channel_name(r(3), "db.primary down", 1),
            "inc-3-db-primary-down"
        );
        assert_eq!(
            channel_name(r(4), "İstanbul DİSK", 1),
            "inc-4-istanbul-disk"
        );
        assert_eq!(
            channel_name(
                r(9),
                "<@U0BOB|bob> broke <#C123|prod> &lt;again&gt; R&amp;D",
                1
            ),
            "inc-9-broke-again-r-d"
        );
        assert_eq!(channel_name(r(5), "Łódź 北京", 1), "inc-5-lodz-bei-jing");
    }

    #[test]
    fn long_titles_are_cut_on_a_word_to_fit_eighty_characters() {
        let title = "the primary PostgreSQL cluster in eu-west-1 refuses connections after the failover and replicas lag";
        for attempt in [1, 2, 5, 123] {
            let name = channel_name(r(123_456), title, attempt);
            assert!(valid(&name), "{name}");
            assert!(!name.contains("--"), "{name}");
        }
        let name = channel_name(r(1), &"x".repeat(200), 1);
        assert!(valid(&name) && name.len() == MAX_NAME_CHARS, "{name}");
    }

    #[test]
    fn a_topic_fits_slacks_limit() {
        let t = topic(r(1), &"a".repeat(400));
        assert_eq!(t.chars().count(), 250);
        assert!(t.starts_with("INC-1 · aaa"));
    }
}
