"""Walks the Duo Universal Prompt with Duo's official client, duo_universal: the health
check, the authorization URL (followed to Duo's redirect back, as a browser would), and the
token exchange with its id_token checks. Input (JSON on stdin): host (with its port),
client_id, client_secret, ca_file, username. Output (JSON on stdout): what each step gave,
or {"error": ...} at the first step duo_universal refused.
"""
import json
import sys
from urllib.parse import parse_qs, urlparse

import duo_universal
import requests

args = json.load(sys.stdin)
redirect_uri = "https://twofold.example/login/duo/callback"
client = duo_universal.Client(
    args["client_id"], args["client_secret"], args["host"], redirect_uri, duo_certs=args["ca_file"]
)
out = {}
try:
    out["health"] = client.health_check()["stat"]
    state = client.generate_state()
    url = client.create_auth_url(args["username"], state)
    back = requests.get(url, allow_redirects=False, verify=args["ca_file"]).headers["location"]
    query = parse_qs(urlparse(back).query)
    out["state_came_back"] = query["state"][0] == state
    token = client.exchange_authorization_code_for_2fa_result(query["duo_code"][0], args["username"])
    out["preferred_username"] = token["preferred_username"]
    out["auth_result"] = token["auth_result"]["result"]
except Exception as error:
    out["error"] = str(error)
print(json.dumps(out))
