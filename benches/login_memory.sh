#!/usr/bin/env bash
# Resident memory of a real `twofold serve` under a burst of password logins: 30 accounts,
# 30 concurrent logins, three rounds. Prints the answers' statuses, the idle size, and the
# peak (VmHWM) and current (VmRSS) resident sizes afterwards.
#   cargo build --release && benches/login_memory.sh [path/to/twofold]
set -euo pipefail
binary=${1:-${CARGO_TARGET_DIR:-target}/release/twofold}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
echo "a long passphrase here" > "$dir/password"
for i in $(seq 30); do
  "$binary" --data-dir "$dir" client create --username "user$i" --email "user$i@example.org" \
    --password-file "$dir/password" > /dev/null 2>&1
done
"$binary" --data-dir "$dir" serve --listen 127.0.0.1:0 2> "$dir/log" &
pid=$!
until grep -q "listening on" "$dir/log"; do sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$dir/log" | head -1)
idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
for round in 1 2 3; do
  for i in $(seq 30); do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' "$base/api/v1/login" \
      -d "{\"username\":\"user$i\",\"password\":\"a long passphrase here\",\"area\":\"client\"}" >> "$dir/statuses" &
  done
  wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
done
echo "statuses: $(sort "$dir/statuses" | uniq -c | tr -s ' \n' ' ')"
echo "idle: ${idle} kB; $(grep -E 'VmHWM|VmRSS' "/proc/$pid/status" | tr -s ' \t\n' ' ')"
