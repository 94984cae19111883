//! Duo's official Python client (`duo_client`, PyPI; `scripts/test` installs it from
//! `tests/python/requirements.txt`) signs the same requests as Twofold, byte for byte: the
//! canonical parameters, signature version 2 (HMAC-SHA1 and HMAC-SHA512) and version 5 (a
//! GET's query, a POST's JSON body), over unicode, spaces, `~`, `*`, reserved characters,
//! repeated keys and empty values.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use twofold::core::duo_sign::{canon_json, canon_params, signature, Canonical, Digest};

use crate::support::python_peer;

/// Runs one of `tests/python/`'s scripts with `input` as JSON on its standard input.
pub fn run_python(script: &str, input: &Value) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/");
    let mut child = Command::new(python_peer("python"))
        .arg(format!("{path}{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the Python peers' interpreter runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const DATE: &str = "Fri, 07 Dec 2012 17:18:00 -0000";
const SECRET_KEY: &str = "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT";

/// A request to sign: method, host and parameters.
type Case = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

/// Parameters that have tripped Duo clients: each case mixes a few of them.
fn cases() -> Vec<Case> {
    let values = [
        "",
        "a",
        "Z",
        "0",
        " ",
        "+",
        "*",
        "~",
        "/",
        "-",
        ".",
        "_",
        "%41",
        "é",
        "Jöhn Dœ 日本",
        "😀",
        "a b&c=d",
        "\"q\\",
        "tab\there",
        "line\nbreak",
        "~x*y",
        "https://example.com/cb?x=1&y=2#f",
    ];
    let keys = [
        "username", "a", "a-", "a0", "a:", "é", "foo", "foo_bar", "Z", "tag", "x y",
    ];
    let hosts = [
        "api-XXXXXXXX.duosecurity.com",
        "API-Example.DuoSecurity.com",
        "127.0.0.1:8443",
    ];
    (0..48)
        .map(|i| {
            let method = if i % 2 == 0 { "GET" } else { "POST" };
            let mut params: Vec<(&str, &str)> = Vec::new();
            for j in 0..(1 + i % 5) {
                let key = keys[(i * 7 + j * 3) % keys.len()];
                // A JSON body cannot repeat a key; a query can.
                if method == "POST" && params.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                params.push((key, values[(i * 5 + j * 11) % values.len()]));
            }
            (method, hosts[i % hosts.len()], params)
        })
        .collect()
}

#[test]
fn twofold_signs_duo_requests_exactly_as_duo_client_does() {
    let cases = cases();
    let input: Vec<Value> = cases
        .iter()
        .map(|(method, host, params)| {
            json!({"method": method, "host": host, "path": "/auth/v2/preauth", "date": DATE,
                   "skey": SECRET_KEY, "params": params})
        })
        .collect();
    let duo = run_python("duo_sign_vectors.py", &json!(input));
    for ((method, host, params), expected) in cases.iter().zip(duo.as_array().unwrap()) {
        let at = |params| Canonical {
            date: DATE,
            method,
            host,
            path: "/auth/v2/preauth",
            params,
        };
        let case = format!("{method} {host} {params:?}");
        assert_eq!(canon_params(params), expected["canon_params"], "{case}");
        assert_eq!(
            signature(Digest::Sha1, SECRET_KEY, &at(params).v2()),
            expected["v2_sha1"],
            "{case}"
        );
        assert_eq!(
            signature(Digest::Sha512, SECRET_KEY, &at(params).v2()),
            expected["v2_sha512"],
            "{case}"
        );
        let v5 = if *method == "POST" {
            let body = canon_json(params);
            assert_eq!(body, expected["json_body"], "{case}");
            at(&[]).v5(&body, &[])
        } else {
            at(params).v5("", &[])
        };
        assert_eq!(signature(Digest::Sha512, SECRET_KEY, &v5), expected["v5"], "{case}");
    }
}
