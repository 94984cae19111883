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
