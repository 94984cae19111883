//! Twofold reads Yubico OTPs as Yubico's tools make them (500 OTPs of random keys, IDs and
//! counters made by `yubiotp`, PyPI, open to the same fields in `core::yubico_otp`), and
//! talks to a real validation server, Debian's `yubiserver`, as protocol 2.0 says.

use serde_json::json;
use twofold::core::yubico_otp::{open, parse};

use crate::duo_client::run_python;

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn otps_made_by_yubiotp_open_to_their_fields() {
    let vectors = run_python("yubiotp_vectors.py", &json!({"count": 500, "seed": 7}));
    let vectors = vectors.as_array().unwrap();
    assert_eq!(vectors.len(), 500);
    for vector in vectors {
        let text = vector["otp"].as_str().unwrap();
        let otp = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(otp.public_id, vector["public_id"].as_str().unwrap(), "{text}");
        let token = open(
            &otp,
            &bytes(vector["aes_key"].as_str().unwrap()),
            &bytes(vector["private_id"].as_str().unwrap()),
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let field = |name: &str| vector[name].as_u64().unwrap();
        assert_eq!(
            (
                u64::from(token.use_counter),
                u64::from(token.session_counter),
                u64::from(token.timestamp),
                u64::from(token.random)
            ),
            (
                field("use_counter"),
                field("session_counter"),
                field("timestamp"),
                field("random")
            ),
            "{text}"
        );
    }
}

/// Debian's `yubiserver` 0.6, a real validation server (protocol reference §7), on a free
/// port with a throwaway database holding one key and one API client; stopped when dropped.
struct YubiServer {
    url: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

/// The key yubiserver knows (the reference's worked vector) and the API client's secret.
const AES_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const PRIVATE_ID: &str = "a1b2c3d4e5f6";
const PUBLIC_ID: &str = "vvcijgklnrbf";
const API_SECRET: &[u8] = b"abcdefghijklmnopqrst";

impl YubiServer {
    fn start() -> YubiServer {
        use std::os::unix::fs::PermissionsExt;
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        // Started as root, yubiserver runs as its own user with group root: the directory
        // and the database are group-writable so that it can record counters.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let database = dir.path().join("yubiserver.sqlite");
        std::fs::copy("/etc/yubiserver/yubiserver.sqlite.init", &database).unwrap();
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o660)).unwrap();
        let admin = |args: &[&str]| {
            let output = Command::new("yubiserver-admin")
                .arg("-b")
                .arg(&database)
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        };
        admin(&["-y", "-a", "ci", PUBLIC_ID, PRIVATE_ID, AES_KEY]);
        admin(&["-p", "-a", "ci", std::str::from_utf8(API_SECRET).unwrap()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Command::new("yubiserver")
            .arg("-d")
            .arg(&database)
            .args(["-p", &port.to_string(), "-l"])
            .arg(dir.path().join("yubiserver.log"))
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(started.status.success());
        // It daemonizes at once; wait for the port, then find the daemon by it.
        let ready = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(ready, "yubiserver did not start on port {port}");
        let listing = Command::new("ss")
            .args(["-Hltnp", &format!("sport = :{port}")])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).to_string();
        let pid = listing
            .split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid for port {port} in {listing:?}"));
        YubiServer {
            url: format!("http://127.0.0.1:{port}/wsapi/2.0/verify"),
            pid,
            _dir: dir,
        }
    }

    fn mint(otps: &[(u16, u8, u32)]) -> Vec<String> {
        let minted = run_python(
            "yubiotp_mint.py",
            &json!({"aes_key": AES_KEY, "private_id": PRIVATE_ID, "public_id": PUBLIC_ID, "otps": otps}),
        );
        minted
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for YubiServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yubiserver_answers_are_verified_and_read() {
    use std::time::Duration;
    use twofold::core::yubico_validation::{AnswerError, Status};
    use twofold::outbound::yubico::{ValidationClient, ValidationFailure, ValidationService};
    let server = YubiServer::start();
    let client = ValidationClient::new(Duration::from_secs(3)).unwrap();
    let urls = [server.url.clone()];
    let service = ValidationService {
        urls: &urls,
        client_id: "1",
        api_key: API_SECRET,
    };
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200)]);
    let first = parse(&otps[0]).unwrap();
    let verdict = client.verify(&service, &first).await.unwrap();
    assert_eq!(verdict.status, Status::Ok);
    assert_eq!(
        client.verify(&service, &first).await.unwrap().status,
        Status::ReplayedOtp
    );

    // Another key's code with this key's public ID does not decrypt.
    let foreign = run_python(
        "yubiotp_mint.py",
        &json!({"aes_key": "00112233445566778899aabbccddeeff", "private_id": PRIVATE_ID,
                "public_id": PUBLIC_ID, "otps": [[1, 5, 0x300]]}),
    );
    let foreign = parse(foreign[0].as_str().unwrap()).unwrap();
    assert_eq!(client.verify(&service, &foreign).await.unwrap().status, Status::BadOtp);

    // A wrong API key: yubiserver's signature does not hold, so its OK is not believed;
    // an unknown client gets an unsigned answer, not believed either.
    let second = parse(&otps[1]).unwrap();
    let wrong_key = ValidationService {
        api_key: b"another twenty chars",
        ..service
    };
    assert_eq!(
        client.verify(&wrong_key, &second).await,
        Err(ValidationFailure::Unbelievable(AnswerError::Signature))
    );
    let unknown = ValidationService {
        client_id: "99",
        ..service
    };
    assert_eq!(
        client.verify(&unknown, &second).await,
        Err(ValidationFailure::Unbelievable(AnswerError::Signature))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_or_hangs_is_unreachable_within_the_timeout() {
    use std::time::Duration;
    use twofold::core::yubico_validation::Status;
    use twofold::outbound::yubico::{ValidationClient, ValidationFailure, ValidationService};
    let server = YubiServer::start();
    let client = ValidationClient::new(Duration::from_secs(1)).unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/wsapi/2.0/verify", listener.local_addr().unwrap())
    };
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}/wsapi/2.0/verify", hung.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    let otp = parse(&YubiServer::mint(&[(2, 0, 0x100)])[0]).unwrap();
    let ask = |urls: Vec<String>| {
        let client = client.clone();
        let otp = otp.clone();
        async move {
            let service = ValidationService {
                urls: &urls,
                client_id: "1",
                api_key: API_SECRET,
            };
            client.verify(&service, &otp).await
        }
    };
    assert!(matches!(
        ask(vec![closed.clone()]).await,
        Err(ValidationFailure::Unreachable(_))
    ));
    let hanging = ask(vec![hung_url.clone()]).await;
    assert_eq!(hanging, Err(ValidationFailure::Unreachable("no answer in time".into())));
    // With a server that hangs and one that answers, the answer is taken.
    let both = ask(vec![hung_url, closed, server.url.clone()]).await;
    assert_eq!(both.unwrap().status, Status::Ok);
}
