"""Mints Yubico OTPs with `yubiotp` (PyPI), as a YubiKey with this AES key would type them.
Input (JSON on stdin): {"aes_key": hex, "private_id": hex, "public_id": modhex,
"otps": [[use_counter, session_counter, timestamp], ...]}. Output: the OTPs, in order.
"""
import json
import sys

from yubiotp.otp import OTP, encode_otp

args = json.load(sys.stdin)
key, uid = bytes.fromhex(args["aes_key"]), bytes.fromhex(args["private_id"])
print(json.dumps([
    # yubiotp's names: `session` is the use counter, `counter` the session counter.
    encode_otp(OTP(uid, use, timestamp, session, 0x1234), key, args["public_id"].encode()).decode()
    for use, session, timestamp in args["otps"]
]))
