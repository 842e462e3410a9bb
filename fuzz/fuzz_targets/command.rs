//! Any text after `/incident`: a command or a usage error that says how to write it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = klaxon::incident::command::parse(text) {
        assert!(!e.message.is_empty());
        assert!(e.usage.starts_with("/incident"));
    }
    // The same text inside a slash-command form, as the HTTP handler decodes it.
    let form = serde_urlencoded::to_string([("text", text), ("user_id", "U0A"), ("channel_id", "C0A")])
        .unwrap_or_default();
    let _ = serde_urlencoded::from_str::<Vec<(String, String)>>(&form);
});
