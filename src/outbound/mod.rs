//! The clients of the services Twofold calls: Duo Security, Yubico OTP validation servers.
//! Each signs and verifies with the pure rules of `core`, and bounds every call in time;
//! none knows the store, the services or the web (a test guards that).

pub mod duo;
pub mod yubico;
