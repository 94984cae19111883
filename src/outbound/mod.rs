//! The clients of the services Twofold calls: Duo Security, Yubico OTP validation servers.
//! Each signs and verifies with the pure rules of `core`, and bounds every call in time;
//! none knows the store, the services or the web (a test guards that).

pub mod duo;
pub mod yubico;

use std::path::Path;
use std::time::Duration;

/// The clients of every outside service, built once at start-up.
pub struct Outbound {
    pub duo: duo::DuoApi,
    pub yubico: yubico::ValidationClient,
}

/// How long a call to Duo may take: longer than Duo's own answers take, short enough that
/// an outage never holds a login for long (asynchronous pushes are polled, never waited on).
const DUO_TIMEOUT: Duration = Duration::from_secs(10);

impl Outbound {
    /// The clients, trusting the system's roots and those of `extra_roots` (`tls_ca_file`).
    pub fn new(extra_roots: Option<&Path>) -> Result<Outbound, String> {
        Ok(Outbound {
            duo: duo::DuoApi::new(extra_roots, DUO_TIMEOUT)?,
            yubico: yubico::ValidationClient::new(extra_roots)?,
        })
    }
}

/// An HTTP client that trusts the system's roots, and the PEM certificates of `extra_roots`
/// if given (a private server, a proxy that re-signs, the tests' own authority); that
/// follows no redirect; that gives up connecting after `connect_timeout`.
fn http_client(extra_roots: Option<&Path>, connect_timeout: Duration) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Twofold/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("tls_ca_file {}: no PEM certificate in it", path.display()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}
