#!/usr/bin/env bash
# End to end: the real echo_server (2 workers) against echo_client with 1,000 concurrent fibers,
# every byte of every echo checked; then a clean SIGTERM shutdown. Every wait is bounded.
set -euo pipefail

server="$1"
client="$2"
out=$(mktemp)
trap 'kill -9 "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

"$server" --addr=127.0.0.1:0 --workers=2 >"$out" 2>&1 &
pid=$!

address=""
for _ in $(seq 1 200); do
  address=$(sed -n 's/^echo server listening on //p' "$out")
  [ -n "$address" ] && break
  sleep 0.05
done
[ -n "$address" ] || { echo "the server did not start:"; cat "$out"; exit 1; }

# Interactive mode: what goes out comes back.
reply=$(timeout 30 "$client" --addr="$address" hello netpoll)
[ "$reply" = "$(printf 'hello\nnetpoll')" ] || { echo "unexpected reply: $reply"; exit 1; }

# Load mode: 1,000 concurrent connections, 20 messages of 256 bytes each, all checked.
result=$(timeout 120 "$client" --addr="$address" --connections=1000 --messages=20 --size=256)
echo "$result"
case "$result" in
  *"1000 connections x 20 messages of 256 bytes: 0 failures"*) ;;
  *) echo "load run failed"; exit 1 ;;
esac

kill -TERM "$pid"
for _ in $(seq 1 200); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then echo "the server ignored SIGTERM"; exit 1; fi
wait "$pid" || { echo "the server exited with status $?"; cat "$out"; exit 1; }
grep -q "shutting down" "$out" || { echo "no shutdown message:"; cat "$out"; exit 1; }
echo PASS
