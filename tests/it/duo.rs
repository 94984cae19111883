//! Twofold's HTTPS client of Duo's Auth API against the Duo test double (`duo_double`),
//! and the double proven right by Duo's own client, duo_client.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use twofold::core::duo_api::{diagnosis, DuoFailure};
use twofold::duo::{DuoApi, Integration};

use crate::duo_client::run_python;
use crate::duo_double::{real_now, DuoDouble};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

fn duo_client_check(double: &DuoDouble, skey: &str) -> serde_json::Value {
    run_python(
        "duo_check.py",
        &json!({"host": "127.0.0.1", "port": double.port, "ikey": IKEY, "skey": skey,
                "ca_file": double.ca_file}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_client_is_accepted_by_the_double_and_a_wrong_key_is_refused() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let accepted = duo_client_check(&double, SKEY);
    assert!(
        (accepted["time"].as_i64().unwrap() - real_now()).abs() < 60,
        "{accepted}"
    );
    assert_eq!(double.seen().last().unwrap().signature_version, Some(5));

    let refused = duo_client_check(&double, &SKEY.replace('Z', "Y"));
    assert!(
        refused["error"].as_str().unwrap().contains("Invalid signature"),
        "{refused}"
    );
    double.set_skew(600);
    let stale = duo_client_check(&double, SKEY);
    assert!(
        stale["error"].as_str().unwrap().contains("Bad request timestamp"),
        "{stale}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twofold_checks_an_integration_and_names_what_duo_refused() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let api = DuoApi::new(Some(&double.ca_file), Duration::from_secs(5)).unwrap();
    let skey = SecretString::from(SKEY);
    let integration = Integration {
        api_hostname: &double.host,
        integration_key: IKEY,
        secret_key: &skey,
    };
    let time = api.check(&integration, real_now()).await.unwrap();
    assert!((time - real_now()).abs() < 60);
    let seen = double.seen().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str(), seen.signature_version),
        ("GET", "/auth/v2/check", Some(5)),
        "signed as version 5"
    );

    let refusal = |result: Result<i64, DuoFailure>| {
        let failure = result.unwrap_err();
        let code = match &failure {
            DuoFailure::Refused { code, .. } => *code,
            other => panic!("not a refusal: {other:?}"),
        };
        (code, diagnosis(&failure).unwrap())
    };
    let wrong_secret = SecretString::from(SKEY.replace('Z', "Y"));
    let wrong = Integration {
        secret_key: &wrong_secret,
        ..integration
    };
    let (code, said) = refusal(api.check(&wrong, real_now()).await);
    assert_eq!(code, 40103);
    assert!(said.contains("secret key"), "{said}");
    let unknown = Integration {
        integration_key: "DIXXXXXXXXXXXXXXXXXX",
        ..integration
    };
    let (code, said) = refusal(api.check(&unknown, real_now()).await);
    assert_eq!(code, 40102);
    assert!(said.contains("integration key"), "{said}");

    // Duo's clock ten minutes ahead: the signature is refused for its date, and ping shows
    // the offset an administrator must fix.
    double.set_skew(600);
    let (code, said) = refusal(api.check(&integration, real_now()).await);
    assert_eq!(code, 40105);
    assert!(said.contains("NTP"), "{said}");
    let duo_time = api.ping(&double.host).await.unwrap();
    assert!((duo_time - real_now() - 600).abs() < 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_untrusted_duo_is_never_an_answer() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let skey = SecretString::from(SKEY);
    let integration = Integration {
        api_hostname: &double.host,
        integration_key: IKEY,
        secret_key: &skey,
    };
    // Without the double's certificate authority, its certificate is not trusted.
    let untrusting = DuoApi::new(None, Duration::from_secs(5)).unwrap();
    let failure = untrusting.check(&integration, real_now()).await.unwrap_err();
    assert!(
        matches!(&failure, DuoFailure::Unreachable(why) if why.contains("certificate")),
        "{failure:?}"
    );
    // Nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = DuoApi::new(Some(&double.ca_file), Duration::from_secs(5)).unwrap();
    let nobody = Integration {
        api_hostname: &format!("127.0.0.1:{closed}"),
        ..integration
    };
    assert!(matches!(
        api.check(&nobody, real_now()).await,
        Err(DuoFailure::Unreachable(_))
    ));
    // A Duo that accepts the connection and never answers: the call ends when its time is up.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_host = hung.local_addr().unwrap().to_string();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    let quick = DuoApi::new(Some(&double.ca_file), Duration::from_secs(1)).unwrap();
    let hanging = Integration {
        api_hostname: &hung_host,
        ..integration
    };
    let failure = quick.check(&hanging, real_now()).await.unwrap_err();
    assert!(
        matches!(&failure, DuoFailure::Unreachable(why) if why.contains("in time")),
        "{failure:?}"
    );
    // A CA file that holds no certificate is refused at start, by name.
    let empty = double.ca_file.with_file_name("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let error = DuoApi::new(Some(&empty), Duration::from_secs(1)).err().unwrap();
    assert!(error.contains("empty.pem"), "{error}");
}
