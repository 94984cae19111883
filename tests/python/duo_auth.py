"""Walks Duo's Auth API with Duo's official client, duo_client, as an integration would:
preauth, a push polled to its end, passcodes, text messages, an enrolment polled to its
activation. Input (JSON on stdin): host, port, ikey, skey, ca_file, username, new_username.
Output (JSON on stdout): what each step answered, in the shape tests/it/duo.rs compares.
"""
import json
import sys

import duo_client

args = json.load(sys.stdin)
auth = duo_client.Auth(
    ikey=args["ikey"], skey=args["skey"], host=args["host"], port=args["port"], ca_certs=args["ca_file"]
)
user = args["username"]
out = {}

preauth = auth.preauth(username=user)
out["preauth"] = preauth["result"]
out["devices"] = [
    {"id": d["device"], "capabilities": sorted(c for c in d.get("capabilities", []) if c != "auto")}
    for d in preauth.get("devices", [])
]
out["unknown"] = auth.preauth(username=args["new_username"])["result"]

txid = auth.auth(factor="push", username=user, device="auto", async_txn=True)["txid"]
push = []
while True:
    status = auth.auth_status(txid)
    push.append(status["status"])
    if not status["waiting"]:
        break
out["push"] = push
out["passcode_right"] = auth.auth(factor="passcode", username=user, passcode="123456")["result"]
out["passcode_wrong"] = auth.auth(factor="passcode", username=user, passcode="000000")["result"]
out["sms"] = auth.auth(factor="sms", username=user, device="auto")["status"]

enrolment = auth.enroll(username=args["new_username"], valid_secs=600)
activation = []
while True:
    status = auth.enroll_status(enrolment["user_id"], enrolment["activation_code"])
    activation.append(status)
    if status != "waiting":
        break
out["activation"] = activation
out["after_activation"] = auth.preauth(username=args["new_username"])["result"]
print(json.dumps(out))
