#!/usr/bin/env bash
# The echo checker must be able to fail: against a server that corrupts its echoes (the baseline
# server's --corrupt_every debug flag), echo_load reports the mismatch and exits non-zero, in every
# mode; and a connection the server never answers shows up as a stalled connection. A checker that
# cannot fail would make every benchmark figure meaningless.
set -u
source "$(dirname "$0")/echo_test_lib.sh" "$@"

expect_mismatch() {  # NAME
  [ "$LOAD_STATUS" -eq 1 ] || fail "$1: expected exit status 1 (mismatch), got $LOAD_STATUS"
  grep -q MISMATCH "$WORK_DIR/$1.err" || fail "$1: no MISMATCH report on stderr"
  [ "$(json_number "$1" mismatch)" -gt 0 ] || fail "$1: mismatch count is 0"
}

# One byte flipped in every 50th echoed chunk.
start_server --corrupt_every=50 --corrupt_mode=flip
run_load flip --mode=pingpong --connections=4 --warmup=0s --duration=1s
expect_mismatch flip
run_load flip_churn --mode=churn --connections=2 --warmup=0s --duration=500ms
expect_mismatch flip_churn
stop_server

# Every 50th chunk echoed twice: the copy is stale data at the start of the next message.
start_server --corrupt_every=50 --corrupt_mode=duplicate
run_load duplicate --mode=pingpong --connections=4 --warmup=0s --duration=1s
expect_mismatch duplicate
stop_server

# Idle mode: the ping's echo arrives twice; the extra bytes are unexpected data, an error.
start_server --corrupt_every=1 --corrupt_mode=duplicate
run_load idle --mode=idle --connections=5 --duration=100ms
[ "$LOAD_STATUS" -ne 0 ] || fail "idle: a duplicated echo went unnoticed"
[ "$(json_number idle unexpected)" -gt 0 ] || fail "idle: unexpected-data count is 0"
stop_server

# A single-byte message: a stale byte still differs from the next message's byte.
start_server --corrupt_every=7 --corrupt_mode=duplicate
run_load one_byte --mode=pingpong --connections=1 --size=1 --warmup=0s --duration=500ms
expect_mismatch one_byte
stop_server

# The server never answers one of four connections: that connection must show as a stall while
# the other three run (so the expected latency stays far below the bound).
start_server --mute_connection=2
run_load mute --mode=pingpong --connections=4 --warmup=0s --duration=1s --stall_timeout=200ms
[ "$LOAD_STATUS" -eq 2 ] || fail "mute: expected exit status 2 (stalled), got $LOAD_STATUS"
[ "$(json_number mute stalled)" = 1 ] || fail "mute: expected exactly 1 stalled connection"
[ "$(json_number mute starved)" = 1 ] || fail "mute: expected exactly 1 starved connection"
stop_server

echo PASS
