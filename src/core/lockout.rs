//! Lockout: a bounded number of attempts per account, per factor, per window.
//!
//! The rule (RFC 4226 §7.3 throttling; NIST SP 800-63B rate limiting; ASVS 5.0 §6.3.1):
//!
//! - Attempts are counted per **account** (the resolved identity, never the typed name), per
//!   factor (password, second factor), in fixed windows of `window_secs`.
//! - An attempt is counted **before** it is checked, atomically in the database. So twenty
//!   guesses racing in parallel consume twenty attempts: no race can test more than
//!   `max_failures` guesses in one window.
//! - A successful attempt clears the count. A refused attempt (while locked) is not checked
//!   at all: even the right code is refused then, and it does not clear the count.
//! - The lock lasts until the window that filled up ends; the user is told when to retry.
//!
//! The database does the counting (one upsert that also starts a new window when the old
//! one is over); this module only decides from the count.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutPolicy {
    /// Attempts allowed in one window; the next one is refused.
    pub max_failures: u32,
    pub window_secs: i64,
}

impl Default for LockoutPolicy {
    /// Five attempts per fifteen minutes.
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            window_secs: 15 * 60,
        }
    }
}

/// What is being guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Factor {
    Password,
    SecondFactor,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::SecondFactor => "second_factor",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Locked { retry_after_secs: i64 },
}

impl LockoutPolicy {
    /// `attempts` counts every attempt in the window that began at `window_start`,
    /// including the one being decided.
    pub fn decide(&self, window_start: i64, attempts: i64, now: i64) -> Decision {
        if attempts <= i64::from(self.max_failures) {
            Decision::Allowed
        } else {
            Decision::Locked {
                retry_after_secs: (window_start + self.window_secs - now).max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_attempts_then_locked_until_the_window_ends() {
        let policy = LockoutPolicy::default();
        for attempt in 1..=5 {
            assert_eq!(policy.decide(1000, attempt, 1000 + attempt), Decision::Allowed);
        }
        assert_eq!(policy.decide(1000, 6, 1100), Decision::Locked { retry_after_secs: 800 });
    }

    #[test]
    fn retry_after_is_never_zero_or_negative() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.decide(0, 99, 5000), Decision::Locked { retry_after_secs: 1 });
    }
}
