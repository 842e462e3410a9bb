//! Any bytes as an Alertmanager webhook body: a batch or a clear error, never a panic,
//! and a batch that parsed always has alerts and a group key.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = klaxon::alerts::payload::parse_alertmanager(data) {
        assert!(!batch.alerts.is_empty());
        assert!(!batch.group_key.is_empty());
        let _ = batch.dedupe_key();
        let _ = batch.title();
    }
});
