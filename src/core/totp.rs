//! TOTP verification, RFC 6238, with the rules an authentication server adds:
//!
//! - **Window** (§5.2): accept the expected step ± `window` (default 1, may be 0 for
//!   ASVS 5.0 §6.5.5's "lifetime of at most 30 s").
//! - **Drift** (§6): each credential remembers the offset, in steps, of its last accepted
//!   code; the window is centred on it, so a phone whose clock drifts keeps working. The
//!   offset never goes beyond `max_drift` steps, so the window can never wander away.
//! - **Single use** (§5.2): a code for a step at or before the credential's last accepted
//!   step is refused as already used. The caller must store the accepted step with an
//!   atomic compare-and-set, so two racing requests cannot both succeed.
//! - **Diagnosis**: a code that matches a step outside the window, but near the server's
//!   time, is reported as out of sync (the device's or the server's clock may be wrong),
//!   never accepted.

use subtle::ConstantTimeEq;

use super::hotp::{self, Algorithm, EmptyKey};

/// How far either side of the server's step a code is looked for to tell "out of sync"
/// from "wrong": 20 steps is 10 minutes at 30 s.
pub const DIAGNOSTIC_STEPS: i64 = 20;

/// The shape of a TOTP credential, as written in its `otpauth://` URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
}

impl Default for TotpParams {
    /// SHA-1, 6 digits, 30 s: the only profile every authenticator app honours.
    fn default() -> Self {
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// How strictly codes are checked; set by the administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyPolicy {
    pub window: u32,
    pub max_drift: u32,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            window: 1,
            max_drift: 2,
        }
    }
}

/// What the server remembers about a credential between logins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredentialState {
    pub last_used_step: Option<i64>,
    pub clock_offset: i64,
}

/// A code that was accepted: the step it belongs to and the device's offset from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub step: i64,
    pub clock_offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the code is not {0} digits")]
    Malformed(u32),
    #[error("the code is wrong")]
    Invalid,
    #[error("the code was already used")]
    AlreadyUsed,
    /// The code is the device's for `step`, `offset` steps from the server's: a real device
    /// whose clock is off, or a guess that happened to match a nearby step (see the factor).
    #[error("the code belongs to a time too far from the server's clock")]
    OutOfSync { step: i64, offset: i64 },
    #[error(transparent)]
    EmptyKey(#[from] EmptyKey),
}

/// The time step containing `unix_time` (T0 = 0).
pub fn step_at(unix_time: i64, period: u32) -> i64 {
    unix_time.div_euclid(i64::from(period.max(1)))
}

/// The code for `step`, as an authenticator app shows it.
pub fn code_at(secret: &[u8], params: TotpParams, step: i64) -> Result<String, EmptyKey> {
    let counter = u64::try_from(step).unwrap_or(0);
    let value = hotp::hotp_value(params.algorithm, secret, counter, params.digits)?;
    Ok(hotp::format_code(value, params.digits))
}

/// Parses what the user typed: spaces are ignored, anything else must be `digits` digits.
pub fn parse_code(input: &str, digits: u32) -> Result<u32, Rejection> {
    let cleaned: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if cleaned.len() != digits as usize || !cleaned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::Malformed(digits));
    }
    cleaned.parse().map_err(|_| Rejection::Malformed(digits))
}

/// Checks `input` against the credential at `now` (Unix seconds, from a trusted clock).
pub fn verify(
    secret: &[u8],
    params: TotpParams,
    input: &str,
    now: i64,
    policy: VerifyPolicy,
    state: CredentialState,
) -> Result<Accepted, Rejection> {
    let typed = parse_code(input, params.digits)?;
    let server_step = step_at(now, params.period);
    let max_drift = i64::from(policy.max_drift);
    let window = i64::from(policy.window);
    let centre = server_step + state.clock_offset.clamp(-max_drift, max_drift);
    let is_unused = |step: i64| state.last_used_step.is_none_or(|last| step > last);
    let matches = |step: i64| -> Result<bool, EmptyKey> {
        if step < 0 {
            return Ok(false);
        }
        let value = hotp::hotp_value(params.algorithm, secret, step as u64, params.digits)?;
        Ok(bool::from(value.ct_eq(&typed)))
    };

    for step in centre - window..=centre + window {
        if is_unused(step) && matches(step)? {
            return Ok(Accepted {
                step,
                clock_offset: (step - server_step).clamp(-max_drift, max_drift),
            });
        }
    }
    for step in server_step - DIAGNOSTIC_STEPS..=server_step + DIAGNOSTIC_STEPS {
        if matches(step)? {
            return Err(if is_unused(step) {
                Rejection::OutOfSync {
                    step,
                    offset: step - server_step,
                }
            } else {
                Rejection::AlreadyUsed
            });
        }
    }
    Err(Rejection::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_SEED: &[u8] = b"12345678901234567890";
    const SHA256_SEED: &[u8] = b"12345678901234567890123456789012";
    const SHA512_SEED: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn params(algorithm: Algorithm, digits: u32) -> TotpParams {
        TotpParams {
            algorithm,
            digits,
            period: 30,
        }
    }

    /// RFC 6238 Appendix B, with the seed lengths of its Appendix A code (errata 2866).
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in table {
            let step = step_at(time, 30);
            assert_eq!(code_at(SHA1_SEED, params(Algorithm::Sha1, 8), step).unwrap(), sha1);
            assert_eq!(
                code_at(SHA256_SEED, params(Algorithm::Sha256, 8), step).unwrap(),
                sha256
            );
            assert_eq!(
                code_at(SHA512_SEED, params(Algorithm::Sha512, 8), step).unwrap(),
                sha512
            );
        }
    }

    #[test]
    fn step_boundary_and_64_bit_time() {
        assert_eq!(step_at(1111111109, 30), 0x23523EC);
        assert_eq!(step_at(1111111111, 30), 0x23523ED);
        assert_eq!(step_at(20000000000, 30), 0x27BC86AA);
        assert_eq!(
            code_at(SHA1_SEED, TotpParams::default(), step_at(1234567890, 30)).unwrap(),
            "005924"
        );
    }

    fn code_for(now: i64, step_delta: i64) -> String {
        code_at(SHA1_SEED, TotpParams::default(), step_at(now, 30) + step_delta).unwrap()
    }

    const NOW: i64 = 1_700_000_015;

    fn check(input: &str, policy: VerifyPolicy, state: CredentialState) -> Result<Accepted, Rejection> {
        verify(SHA1_SEED, TotpParams::default(), input, NOW, policy, state)
    }

    #[test]
    fn accepts_current_and_adjacent_steps_by_default() {
        let server_step = step_at(NOW, 30);
        for delta in -1..=1 {
            let accepted = check(
                &code_for(NOW, delta),
                VerifyPolicy::default(),
                CredentialState::default(),
            )
            .unwrap();
            assert_eq!(accepted.step, server_step + delta);
            assert_eq!(accepted.clock_offset, delta);
        }
    }

    #[test]
    fn code_two_steps_old_is_out_of_sync_not_accepted() {
        let got = check(&code_for(NOW, -2), VerifyPolicy::default(), CredentialState::default());
        assert!(matches!(got, Err(Rejection::OutOfSync { offset: -2, .. })), "{got:?}");
    }

    #[test]
    fn window_zero_accepts_only_the_current_step() {
        let strict = VerifyPolicy {
            window: 0,
            max_drift: 0,
        };
        assert!(check(&code_for(NOW, 0), strict, CredentialState::default()).is_ok());
        let step = step_at(NOW, 30);
        assert_eq!(
            check(&code_for(NOW, -1), strict, CredentialState::default()),
            Err(Rejection::OutOfSync {
                step: step - 1,
                offset: -1
            })
        );
        assert_eq!(
            check(&code_for(NOW, 1), strict, CredentialState::default()),
            Err(Rejection::OutOfSync {
                step: step + 1,
                offset: 1
            })
        );
    }

    #[test]
    fn replay_of_accepted_step_or_older_is_already_used() {
        let step = step_at(NOW, 30);
        let state = CredentialState {
            last_used_step: Some(step),
            clock_offset: 0,
        };
        assert_eq!(
            check(&code_for(NOW, 0), VerifyPolicy::default(), state),
            Err(Rejection::AlreadyUsed)
        );
        assert_eq!(
            check(&code_for(NOW, -1), VerifyPolicy::default(), state),
            Err(Rejection::AlreadyUsed)
        );
        assert!(check(&code_for(NOW, 1), VerifyPolicy::default(), state).is_ok());
    }

    #[test]
    fn drift_is_remembered_and_bounded() {
        // A device two steps fast: refused while the offset is 0 ...
        let fresh = CredentialState::default();
        assert!(matches!(
            check(&code_for(NOW, 2), VerifyPolicy::default(), fresh),
            Err(Rejection::OutOfSync { offset: 2, .. })
        ));
        // ... accepted once the account learned it is one step fast.
        let learned = CredentialState {
            last_used_step: None,
            clock_offset: 1,
        };
        let accepted = check(&code_for(NOW, 2), VerifyPolicy::default(), learned).unwrap();
        assert_eq!(accepted.clock_offset, 2);
        // An offset stored beyond the bound is clamped, so the window cannot wander.
        let wild = CredentialState {
            last_used_step: None,
            clock_offset: 50,
        };
        assert!(matches!(
            check(&code_for(NOW, 4), VerifyPolicy::default(), wild),
            Err(Rejection::OutOfSync { offset: 4, .. })
        ));
        let accepted = check(&code_for(NOW, 3), VerifyPolicy::default(), wild).unwrap();
        assert_eq!(accepted.clock_offset, 2, "offset recorded is within max_drift");
    }

    #[test]
    fn wrong_and_malformed_codes() {
        let wrong = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| {
                let step = step_at(NOW, 30);
                (step - DIAGNOSTIC_STEPS..=step + DIAGNOSTIC_STEPS)
                    .all(|s| &code_at(SHA1_SEED, TotpParams::default(), s).unwrap() != c)
            })
            .unwrap();
        assert_eq!(
            check(&wrong, VerifyPolicy::default(), CredentialState::default()),
            Err(Rejection::Invalid)
        );
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                check(bad, VerifyPolicy::default(), CredentialState::default()),
                Err(Rejection::Malformed(6))
            );
        }
        let spaced = code_for(NOW, 0);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert!(check(&spaced, VerifyPolicy::default(), CredentialState::default()).is_ok());
    }

    #[test]
    fn codes_never_match_negative_steps() {
        let got = verify(
            SHA1_SEED,
            TotpParams::default(),
            "755224",
            5,
            VerifyPolicy::default(),
            CredentialState::default(),
        );
        // 755224 is HOTP(0): step 0 is the current step at t=5.
        assert!(got.is_ok());
    }

    proptest::proptest! {
        #[test]
        fn a_code_is_accepted_exactly_once(now in 1_000_000_000i64..4_000_000_000, delta in -1i64..=1) {
            let code = code_for(now, delta);
            let first = verify(SHA1_SEED, TotpParams::default(), &code, now, VerifyPolicy::default(), CredentialState::default()).unwrap();
            let after = CredentialState { last_used_step: Some(first.step), clock_offset: first.clock_offset };
            let second = verify(SHA1_SEED, TotpParams::default(), &code, now, VerifyPolicy::default(), after);
            proptest::prop_assert_eq!(second, Err(Rejection::AlreadyUsed));
        }
    }
}
