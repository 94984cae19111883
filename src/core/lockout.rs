//! Lockout: how many guesses a factor of an account allows, from one address and from all.
//!
//! The rule (RFC 4226 §7.3 throttling; NIST SP 800-63B §5.2.2 rate limiting; ASVS 5.0 §6.3):
//!
//! - Attempts are counted per **subject** (the resolved account, never the typed name; a name
//!   no account has is a subject of its own, so that it answers as a real one), per factor
//!   (password, second factor), and twice: **per source address**, and for **all addresses
//!   together**.
//! - An address gets `max_failures` attempts per window, so a guesser from one address is
//!   stopped quickly without keeping the owner, elsewhere, out. The account as a whole stops
//!   only after `account_max_failures` in a window, which takes many addresses.
//! - Waits grow: a window that filled up makes the next one twice as long (up to
//!   `max_window_secs`); after a quiet day, a counter starts afresh.
//! - After `hard_lock_failures` second-factor attempts in a row without a success, the
//!   second factor stays locked until an administrator unlocks the account or the backup
//!   code is used (NIST's limit of 100 consecutive failures).
//! - An attempt is counted **before** it is checked, atomically in the database, so twenty
//!   guesses racing in parallel consume twenty attempts. A success clears the count of its
//!   address and of the account; a refused attempt is not checked at all, and counts towards
//!   nothing but its own address's window.
//!
//! The database does the counting (one upsert per counter); this module names the counters
//! and decides from them.

use serde::{Deserialize, Serialize};

use super::secretbox::keyed_hash;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Attempts one address may make per window on one account's factor.
    pub max_failures: u32,
    /// Attempts all addresses together may make per window on one account's factor.
    pub account_max_failures: u32,
    /// The first window; each window that fills up makes the next one twice as long.
    pub window_secs: i64,
    /// The longest window (and so the longest wait).
    pub max_window_secs: i64,
    /// Second-factor attempts in a row, without a success, after which the second factor is
    /// locked until an administrator or the backup code lifts it.
    pub hard_lock_failures: u32,
}

impl Default for LockoutPolicy {
    /// Five attempts per address and fifty per account in fifteen minutes, waits growing to a
    /// day, and a hard lock after a hundred wrong second factors.
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            account_max_failures: 50,
            window_secs: 15 * 60,
            max_window_secs: 24 * 3600,
            hard_lock_failures: 100,
        }
    }
}

/// A quiet period after which a counter starts afresh.
pub const FORGET_AFTER_SECS: i64 = 24 * 3600;

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

/// What an attempt answers: the factor whose counters it counts in, and whether the hard
/// lock refuses it (the backup code is the way out of that lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guess {
    Password,
    SecondFactor,
    BackupCode,
}

impl Guess {
    pub fn factor(self) -> Factor {
        match self {
            Guess::Password => Factor::Password,
            Guess::SecondFactor | Guess::BackupCode => Factor::SecondFactor,
        }
    }

    pub fn hard_lock_applies(self) -> bool {
        self == Guess::SecondFactor
    }
}

/// Whose attempts a counter holds: an account.
pub fn account_subject(account_id: i64) -> String {
    format!("account:{account_id}")
}

/// The subject of a name no account has (`name` as accounts are looked up by): a keyed hash
/// of it, so that the database never holds what was typed (which may be a password typed
/// in the wrong field).
pub fn unknown_name_subject(key: &[u8; 32], kind: &str, name: &str) -> String {
    let hash = keyed_hash(key, format!("{kind}\n{name}").as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("name:{hex}")
}

/// The counter of all addresses together (no address is written this way).
pub const ALL_SOURCES: &str = "*";

/// One counter, as the database returns it after counting an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub window_start: i64,
    pub window_secs: i64,
    /// Attempts in this window, the one being decided included.
    pub attempts: i64,
    /// Attempts checked in a row without a success, across windows.
    pub failures: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Wait for the window to end.
    Locked {
        retry_after_secs: i64,
    },
}

/// Why an attempt is refused without being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Wait for the window to end.
    Locked { retry_after_secs: i64 },
    /// Only an administrator or the backup code lifts it.
    HardLocked,
}

impl LockoutPolicy {
    /// The attempts a counter allows per window.
    pub fn limit(&self, source: &str) -> i64 {
        i64::from(match source {
            ALL_SOURCES => self.account_max_failures,
            _ => self.max_failures,
        })
    }

    /// Decides on a counter just counted.
    pub fn decide(&self, source: &str, count: Count, now: i64) -> Decision {
        if count.attempts <= self.limit(source) {
            Decision::Allowed
        } else {
            Decision::Locked {
                retry_after_secs: (count.window_start + count.window_secs - now).max(1),
            }
        }
    }

    /// Why one of an attempt's counters, just counted, refuses it, if it does: its window is
    /// over the limit, or (`hard_lock`: the attempt is one the hard lock applies to) the
    /// count of all addresses is past the hard lock.
    pub fn refusal(&self, source: &str, count: Count, now: i64, hard_lock: bool) -> Option<Refusal> {
        match self.decide(source, count, now) {
            Decision::Locked { retry_after_secs } => Some(Refusal::Locked { retry_after_secs }),
            Decision::Allowed if hard_lock && source == ALL_SOURCES && self.hard_locked(count) => {
                Some(Refusal::HardLocked)
            }
            Decision::Allowed => None,
        }
    }

    /// Whether the second factor is locked until an administrator or the backup code lifts
    /// it, by the count of all addresses.
    pub fn hard_locked(&self, all_sources: Count) -> bool {
        all_sources.failures > i64::from(self.hard_lock_failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(attempts: i64) -> Count {
        Count {
            window_start: 1000,
            window_secs: 900,
            attempts,
            failures: attempts,
        }
    }

    #[test]
    fn five_attempts_from_an_address_then_locked_until_the_window_ends() {
        let policy = LockoutPolicy::default();
        for attempt in 1..=5 {
            assert_eq!(
                policy.decide("192.0.2.1", count(attempt), 1000 + attempt),
                Decision::Allowed
            );
        }
        assert_eq!(
            policy.decide("192.0.2.1", count(6), 1100),
            Decision::Locked { retry_after_secs: 800 }
        );
    }

    #[test]
    fn the_account_as_a_whole_takes_fifty() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.decide(ALL_SOURCES, count(50), 1100), Decision::Allowed);
        assert!(matches!(
            policy.decide(ALL_SOURCES, count(51), 1100),
            Decision::Locked { .. }
        ));
    }

    #[test]
    fn retry_after_is_never_zero_or_negative() {
        let policy = LockoutPolicy::default();
        assert_eq!(
            policy.decide("x", count(99), 5000),
            Decision::Locked { retry_after_secs: 1 }
        );
    }

    #[test]
    fn the_hard_lock_comes_after_a_hundred_failures_in_a_row() {
        let policy = LockoutPolicy::default();
        assert!(!policy.hard_locked(count(100)));
        assert!(policy.hard_locked(count(101)));
    }

    #[test]
    fn the_hard_lock_refuses_only_by_the_count_of_all_addresses_and_where_it_applies() {
        let policy = LockoutPolicy::default();
        let past = Count {
            attempts: 1,
            failures: 101,
            ..count(1)
        };
        assert_eq!(policy.refusal(ALL_SOURCES, past, 1100, true), Some(Refusal::HardLocked));
        assert_eq!(policy.refusal(ALL_SOURCES, past, 1100, false), None, "the backup code");
        assert_eq!(policy.refusal("192.0.2.1", past, 1100, true), None);
        assert_eq!(
            policy.refusal("192.0.2.1", count(6), 1100, true),
            Some(Refusal::Locked { retry_after_secs: 800 })
        );
    }

    #[test]
    fn subjects_never_hold_the_typed_name() {
        assert_eq!(account_subject(42), "account:42");
        let key = [7; 32];
        let subject = unknown_name_subject(&key, "client", "mallory");
        assert!(subject.starts_with("name:") && subject.len() == 5 + 32, "{subject}");
        assert!(!subject.contains("mallory"));
        assert_eq!(subject, unknown_name_subject(&key, "client", "mallory"));
        assert_ne!(subject, unknown_name_subject(&key, "admin", "mallory"));
        assert_ne!(subject, unknown_name_subject(&[8; 32], "client", "mallory"));
    }

    #[test]
    fn only_the_backup_code_passes_the_hard_lock() {
        assert!(Guess::SecondFactor.hard_lock_applies());
        assert!(!Guess::BackupCode.hard_lock_applies());
        assert_eq!(Guess::BackupCode.factor(), Factor::SecondFactor);
        assert_eq!(Guess::Password.factor(), Factor::Password);
    }
}
