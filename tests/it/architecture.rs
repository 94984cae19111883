//! The pure core stays pure: no runtime, no database, no HTTP, no clock reads.

#[test]
fn core_does_no_io_and_reads_no_clock() {
    let forbidden = [
        "tokio",
        "sqlx",
        "axum",
        "reqwest",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "getrandom",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for word in forbidden {
            assert!(!text.contains(word), "{} names {word}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 8, "expected the core modules, found {checked}");
}

/// Whether `text` has `word` on its own (`App` is not named by `Approval`).
fn names(text: &str, word: &str) -> bool {
    let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let joins_before = is_ident(before) && is_ident(word.chars().next());
        let joins_after = is_ident(after) && is_ident(word.chars().next_back());
        !joins_before && !joins_after
    })
}

/// The words of `forbidden` that a file under `dir` names, as "file names word".
fn named_in(dir: &str, forbidden: &[&str]) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut checked = 0;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for word in forbidden {
                if names(&text, word) {
                    found.push(format!("{} names {word}", path.display()));
                }
            }
            checked += 1;
        }
    }
    (found, checked)
}

#[test]
fn a_factor_sees_no_store_and_no_server() {
    // A factor gets a FactorCx: the account, the settings, the time, its own sealer.
    let (found, checked) = named_in(
        "src/services/factors",
        &["Store", "store.", "sqlx", "crate::app", "App", "Services", "config::"],
    );
    assert!(found.is_empty(), "{found:#?}");
    assert!(checked >= 2, "expected the factor modules, found {checked}");
}

#[test]
fn dependencies_run_one_way() {
    // app.rs builds the services; the services and the store never reach back to it, and
    // the store knows nothing of the services or the web.
    let (found, _) = named_in("src/services", &["crate::app", "crate::web"]);
    assert!(found.is_empty(), "{found:#?}");
    let (found, _) = named_in("src/store", &["crate::app", "crate::services", "crate::web"]);
    assert!(found.is_empty(), "{found:#?}");
    // The clients of Duo and Yubico use the core's rules and nothing of the product.
    let (found, checked) = named_in(
        "src/outbound",
        &["crate::app", "crate::services", "crate::store", "crate::web"],
    );
    assert!(found.is_empty() && checked >= 3, "{found:#?}");
}

#[test]
fn both_backends_have_the_same_migrations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let versions = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = versions("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        versions("postgres"),
        "every migration exists for both backends, with the same name"
    );
}
