"""Makes Yubico OTPs with Yubico-compatible `yubiotp` (PyPI), as a YubiKey would type them:
random AES keys, private and public IDs, counters, timestamps. Input (JSON on stdin):
{"count": N, "seed": S}. Output (JSON on stdout): a list of {otp, aes_key, private_id,
public_id, use_counter, session_counter, timestamp, random}, hex for the bytes.
"""
import json
import random
import sys

from yubiotp.otp import OTP, encode_otp

MODHEX = "cbdefghijklnrtuv"
args = json.load(sys.stdin)
rng = random.Random(args["seed"])
vectors = []
for _ in range(args["count"]):
    key = bytes(rng.randrange(256) for _ in range(16))
    uid = bytes(rng.randrange(256) for _ in range(6))
    public_id = "".join(rng.choice(MODHEX) for _ in range(rng.choice([0, 2, 8, 12, 16])))
    use_counter = rng.randrange(0x8000)
    session_counter = rng.randrange(256)
    timestamp = rng.randrange(1 << 24)
    rand = rng.randrange(1 << 16)
    # yubiotp's names: `session` is the use counter, `counter` the session counter.
    otp = encode_otp(OTP(uid, use_counter, timestamp, session_counter, rand), key, public_id.encode())
    vectors.append({
        "otp": otp.decode(), "aes_key": key.hex(), "private_id": uid.hex(), "public_id": public_id,
        "use_counter": use_counter, "session_counter": session_counter, "timestamp": timestamp,
        "random": rand,
    })
print(json.dumps(vectors))
