//! Any bytes as a Grafana webhook body: a batch or a clear error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = klaxon::alerts::payload::parse_grafana(data) {
        assert!(!batch.alerts.is_empty());
        let _ = batch.dedupe_key();
        let _ = batch.title();
    }
});
