//! TOTP verification in the pure core (target: under 2 µs with a ±1 window).
//! Run: `cargo bench --bench totp`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use twofold::core::totp::{code_at, step_at, verify, CredentialState, TotpParams, VerifyPolicy};

const SECRET: &[u8] = b"12345678901234567890";
const NOW: i64 = 1_800_000_010;

fn verification(c: &mut Criterion) {
    let params = TotpParams::default();
    let policy = VerifyPolicy::default();
    let state = CredentialState::default();
    let step = step_at(NOW, 30);
    // The worst accepted case: the code of the last step of the window.
    let late = code_at(SECRET, params, step + 1).unwrap_or_default();
    c.bench_function("verify, accepted at the window's last step (±1)", |b| {
        b.iter(|| verify(black_box(SECRET), params, black_box(&late), NOW, policy, state))
    });
    let current = code_at(SECRET, params, step).unwrap_or_default();
    c.bench_function("verify, accepted at the current step (±1)", |b| {
        b.iter(|| verify(black_box(SECRET), params, black_box(&current), NOW, policy, state))
    });
    // A wrong code also scans the diagnostic range (±20 steps) to tell "out of sync".
    c.bench_function("verify, wrong code (window + diagnostic scan)", |b| {
        b.iter(|| verify(black_box(SECRET), params, black_box("000000"), NOW, policy, state))
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
