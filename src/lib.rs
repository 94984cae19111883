//! Twofold: a two-factor authentication server.
//!
//! `core` holds the pure rules (OTP, backup codes, lockout, sealing); `services` the
//! product's operations; `store` the SQL; `outbound` the clients of Duo and Yubico; `web`
//! the HTTP API and pages; `cli` the commands.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod outbound;
pub mod random;
pub mod services;
pub mod store;
pub mod web;
