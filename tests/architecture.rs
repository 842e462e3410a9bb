//! The shape of the code: layers that only import downwards, and no import
//! circle between modules or files (the layer list is `bot/lib.rs`'s).
//!
//! The imports are read from the source text: every `crate::…`, `super::…` and
//! `self::…` path in `use` declarations (braces expanded) and in code, with
//! comments and the `#[cfg(test)]` module left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom up. A module may import modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &["time"],
    &["incident"],
    &["alerts", "escalation", "status"],
    &["executor"],
    &["config"],
    &["templates", "blocks", "telemetry"],
    &["store"],
    &["jobs"],
    &["usecases"],
    &["slack", "alertmanager", "tracker", "health", "web"],
    &["app"],
    &["inbound"],
    &["http", "socket_mode"],
    &["server"],
    &["demo"],
];

/// A source file and the module path it defines (`bot/usecases/alerts.rs` → `usecases::alerts`).
struct Source {
    file: String,
    module: Vec<String>,
    text: String,
}

fn bot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bot")
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read bot/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = bot_dir();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&root).expect("under bot/");
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => return None, // the binary
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            Some(Source {
                file: format!("bot/{}", rel.display()),
                module,
                text: code_only(&text),
            })
        })
        .collect()
}

/// The text without comments and without the test module at the end.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a file names, as written: `crate::store::Tx`, `super::thread::Entry`.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` declarations, with their brace groups expanded.
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .last()
                .is_some_and(|c| !c.is_alphanumeric() && c != '_');
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        if before_ok {
            expand(&after[..end].replace(char::is_whitespace, ""), &mut out);
        }
        rest = &after[end..];
    }
    // Paths in code.
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let start_ok = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        let word: String = bytes[i..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == ':')
            .collect();
        if start_ok
            && (word.starts_with("crate::")
                || word.starts_with("super::")
                || word.starts_with("self::"))
        {
            out.push(
                word.split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
        i += word.len().max(1);
    }
    out.retain(|p| {
        matches!(
            p.first().map(String::as_str),
            Some("crate" | "super" | "self")
        )
    });
    out
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, out: &mut Vec<Vec<String>>) {
    fn go(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        match tree.find('{') {
            None => {
                let mut p = prefix.to_vec();
                p.extend(
                    tree.split("::")
                        .filter(|s| !s.is_empty())
                        .map(|s| s.split(" as ").next().unwrap_or(s).to_string()),
                );
                out.push(p);
            }
            Some(open) => {
                let mut p = prefix.to_vec();
                p.extend(
                    tree[..open]
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
                let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            go(&p, &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                if start < inner.len() {
                    go(&p, &inner[start..], out);
                }
            }
        }
    }
    go(&[], tree, out);
}

/// The file a path lands in: the longest prefix of its absolute module path
/// that is a file of the crate.
fn resolve(
    from: &[String],
    path: &[String],
    files: &BTreeMap<Vec<String>, String>,
) -> Option<String> {
    let mut absolute: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => from.to_vec(),
        Some("super") => from.to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        absolute.pop();
        while rest.first().map(String::as_str) == Some("super") {
            absolute.pop();
            rest = &rest[1..];
        }
    }
    absolute.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=absolute.len())
        .rev()
        .find_map(|n| files.get(&absolute[..n].to_vec()).cloned())
}

/// Imports between files: file → the files it names.
fn file_graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .map(|s| (s.module.clone(), s.file.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for s in &sources {
        let targets: BTreeSet<String> = paths(&s.text)
            .iter()
            .filter_map(|p| resolve(&s.module, p, &files))
            .filter(|t| *t != s.file && t != "bot/lib.rs")
            .collect();
        graph.insert(s.file.clone(), targets);
    }
    graph
}

/// The top-level module of a file: `bot/usecases/alerts.rs` → `usecases`.
fn top(file: &str) -> String {
    let rel = file.trim_start_matches("bot/");
    rel.split('/')
        .next()
        .unwrap_or(rel)
        .trim_end_matches(".rs")
        .to_string()
}

fn module_graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut graph: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (file, targets) in file_graph() {
        let from = top(&file);
        if from == "lib" {
            continue; // The table of contents names every module.
        }
        graph.entry(from.clone()).or_default();
        for t in targets {
            let to = top(&t);
            if to != from && to != "lib" {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(format!("{file} → {t}"));
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the nodes along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_import_reader_sees_braces_supers_and_paths_in_code() {
    let found = paths(
        "use super::{Ctx, Result, thread::Entry};\nuse crate::store::{self, jobs::{NewJob, finish}};\nfn f() { crate::time::backoff(1, d); }",
    );
    let show: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    for expected in [
        "super::Ctx",
        "super::thread::Entry",
        "crate::store::self",
        "crate::store::jobs::finish",
        "crate::time::backoff",
    ] {
        assert!(
            show.contains(&expected.to_string()),
            "{expected} missing from {show:?}"
        );
    }
    let files: BTreeMap<Vec<String>, String> = [
        (
            vec!["usecases".to_string()],
            "bot/usecases/mod.rs".to_string(),
        ),
        (
            vec!["usecases".to_string(), "thread".to_string()],
            "bot/usecases/thread.rs".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let from = vec!["usecases".to_string(), "alerts".to_string()];
    assert_eq!(
        resolve(
            &from,
            &["super".into(), "thread".into(), "Entry".into()],
            &files
        )
        .as_deref(),
        Some("bot/usecases/thread.rs")
    );
    assert_eq!(
        resolve(&from, &["super".into(), "Ctx".into()], &files).as_deref(),
        Some("bot/usecases/mod.rs")
    );
}

#[test]
fn the_top_level_modules_import_each_other_in_no_cycle() {
    let graph = module_graph();
    assert!(
        graph.len() >= 15,
        "the reader found too few modules: {:?}",
        graph.keys()
    );
    let edges: BTreeMap<String, BTreeSet<String>> = graph
        .iter()
        .map(|(k, v)| (k.clone(), v.keys().cloned().collect()))
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let mut why = Vec::new();
        for pair in cycle.windows(2) {
            if let Some(imports) = graph.get(&pair[0]).and_then(|m| m.get(&pair[1])) {
                why.push(format!("{} → {}: {}", pair[0], pair[1], imports.join(", ")));
            }
        }
        panic!(
            "the modules {} import each other in a circle:\n{}",
            cycle.join(" → "),
            why.join("\n")
        );
    }
}

#[test]
fn no_module_imports_one_from_a_higher_layer() {
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (from, targets) in &graph {
        let Some(lf) = layer(from) else {
            wrong.push(format!(
                "`{from}` is in no layer: add it to LAYERS and bot/lib.rs"
            ));
            continue;
        };
        for (to, imports) in targets {
            match layer(to) {
                Some(lt) if lt <= lf => {}
                Some(_) => wrong.push(format!(
                    "`{from}` imports the higher `{to}`: {}",
                    imports.join(", ")
                )),
                None => wrong.push(format!("`{to}` is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_source_files_import_each_other_in_a_cycle() {
    let graph = file_graph();
    assert!(graph.len() >= 40, "the reader found too few files");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "these files import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}
