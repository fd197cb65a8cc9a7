//! The layout keeps data flowing downward: no two top-level modules depend on each other, the
//! guard (`auth`) depends only on `store` and `crypto`, and only `store` names sea-orm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Top-level module → the top-level modules its code names through `crate::`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(SRC).expect("src") {
        let path = entry.expect("entry").path();
        let module = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let mut used = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).expect("read");
            collect_crate_paths(&text, &mut used);
        }
        used.remove(&module);
        graph.entry(module).or_default().extend(used);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_dir() {
        std::fs::read_dir(path)
            .expect("dir")
            .flat_map(|e| rust_files(&e.expect("entry").path()))
            .collect()
    } else if path.extension().is_some_and(|e| e == "rs") {
        vec![path.to_owned()]
    } else {
        Vec::new()
    }
}

/// `crate::name` and `crate::{a, b::c}` (one level of braces is all the code uses).
fn collect_crate_paths(text: &str, used: &mut BTreeSet<String>) {
    for (index, _) in text.match_indices("crate::") {
        let rest = &text[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = dependencies();
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(start) = path.iter().position(|m| m == module) {
            panic!("import cycle: {} -> {module}", path[start..].join(" -> "));
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(module.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    assert!(
        graph.contains_key("accounts") && graph.contains_key("http"),
        "{graph:?}"
    );
}

#[test]
fn the_guard_depends_only_on_store_and_crypto() {
    let graph = dependencies();
    let auth: Vec<&str> = graph["auth"].iter().map(String::as_str).collect();
    assert_eq!(auth, ["crypto", "store"]);
}

#[test]
fn the_scanner_sees_grouped_and_plain_paths() {
    let mut used = BTreeSet::new();
    collect_crate_paths(
        "use crate::{accounts, auth::Caller};\nlet x = crate::store::ping;",
        &mut used,
    );
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["accounts", "auth", "store"]
    );
}

/// The files outside `src/store/` that name sea-orm, with the line: the persistence layer is
/// the only code that may, so that what a use case receives is the store's own types.
fn sea_orm_outside_store() -> Vec<String> {
    let store = Path::new(SRC).join("store");
    let mut found = Vec::new();
    for file in rust_files(Path::new(SRC)) {
        if file.starts_with(&store) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for (number, line) in text.lines().enumerate() {
            if line.contains("sea_orm") {
                found.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn only_the_store_names_sea_orm() {
    let found = sea_orm_outside_store();
    assert!(
        found.is_empty(),
        "sea-orm outside src/store/:\n{}",
        found.join("\n")
    );
    // The scan itself sees the store's own use, so an empty answer above is not a blind one.
    let store_mod = std::fs::read_to_string(Path::new(SRC).join("store/mod.rs")).expect("read");
    assert!(store_mod.contains("sea_orm::"));
}
