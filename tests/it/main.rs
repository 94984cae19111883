//! Twofold's one integration-test binary: the real server on a random port, over HTTP.

mod architecture;
mod cli;
mod flows;
mod lockout;
mod security;
mod support;
mod third_party;
