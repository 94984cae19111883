//! Twofold's one integration-test binary: the real server on a random port, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[macro_use]
mod support;

mod applications;
mod architecture;
mod browser;
mod challenges;
mod cli;
mod credentials;
mod duo;
mod duo_client;
mod duo_double;
mod duo_login;
mod duo_prompt;
mod flows;
mod lockout;
mod nodes;
mod pages;
mod preauth;
mod radius;
mod security;
mod third_party;
mod upgrade;
mod yubico_double;
mod yubikey;
