//! Any `key=value` parameters against a catalog action: whatever gets through
//! contains no shell metacharacters, no whitespace, no `..` and no leading `-`.
#![no_main]
use std::sync::LazyLock;

static CATALOG: LazyLock<klaxon::executor::catalog::Catalog> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct F {
        actions: Vec<klaxon::executor::catalog::RawAction>,
    }
    let f: F = toml::from_str(
        r#"
        [[actions]]
        name = "logs"
        kind = "command"
        argv = ["/usr/bin/journalctl", "-u", "{unit}", "-n", "{lines}"]
        read_only = true
        allowed = ["user:U0A"]
        params = [{ name = "unit", pattern = "[a-z][a-z0-9-]{0,30}" }, { name = "lines", pattern = "[0-9]{1,4}", default = "50" }]
        "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    klaxon::executor::catalog::Catalog::from_raw(f.actions).unwrap_or_else(|e| panic!("{e:?}"))
});

libfuzzer_sys::fuzz_target!(|pairs: Vec<(String, String)>| {
    let Some(action) = CATALOG.get("logs") else { return };
    if let Ok(values) = action.values(&pairs) {
        for v in values.values() {
            assert!(!v.starts_with('-'));
            assert!(!v.contains(".."));
            assert!(!v.chars().any(|c| c.is_whitespace() || "$`;|&<>\\\"'(){}".contains(c)));
        }
    }
});
