"""Calls /auth/v2/check with Duo's official client, duo_client, as an integration would.

Input (JSON on stdin): host, port, ikey, skey, ca_file. Output (JSON on stdout): {"time": N}
when Duo (or the double) accepted the call, else {"error": "<duo_client's message>"}.
"""
import json
import sys

import duo_client

args = json.load(sys.stdin)
auth = duo_client.Auth(
    ikey=args["ikey"],
    skey=args["skey"],
    host=args["host"],
    port=args["port"],
    ca_certs=args["ca_file"],
)
try:
    print(json.dumps({"time": auth.check()["time"]}))
except Exception as error:  # duo_client raises RuntimeError with Duo's code and message
    print(json.dumps({"error": str(error)}))
