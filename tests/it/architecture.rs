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
