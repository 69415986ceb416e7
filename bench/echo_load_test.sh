#!/usr/bin/env bash
# Smoke test of the echo benchmark harness: the baseline server and echo_load work together in
# every mode with zero errors and nonzero throughput, and fail cleanly where they should.
# Speed is not asserted; the runs are short (a few seconds in all).
set -u
source "$(dirname "$0")/echo_test_lib.sh" "$@"

expect_clean() {  # NAME: exit 0, no errors, something done
  [ "$LOAD_STATUS" -eq 0 ] || fail "$1: echo_load exited with $LOAD_STATUS"
  [ "$(json_number "$1" total)" = 0 ] || fail "$1: errors reported"
}

start_server
pid=$SERVER_PID

run_load pingpong --mode=pingpong --connections=10 --size=64 --warmup=200ms --duration=1s \
  --server_pid="$pid"
expect_clean pingpong
[ "$(json_number pingpong requests)" -gt 0 ] || fail "pingpong: no round trips"
[ "$(json_number pingpong p99)" -gt 0 ] || fail "pingpong: no latency"
grep -q '"cpu_seconds":[0-9]' "$WORK_DIR/pingpong.out" || fail "pingpong: no server CPU time"

run_load big --mode=pingpong --connections=20 --threads=2 --size=16384 --warmup=100ms \
  --duration=500ms --server_pid="$pid"
expect_clean big
[ "$(json_number big requests)" -gt 0 ] || fail "big: no round trips"

run_load churn --mode=churn --connections=4 --size=64 --warmup=100ms --duration=500ms \
  --server_pid="$pid"
expect_clean churn
[ "$(json_number churn requests)" -gt 0 ] || fail "churn: no connections"

run_load churn_fin --mode=churn --churn_close=fin --connections=2 --warmup=0s --duration=300ms
expect_clean churn_fin
[ "$(json_number churn_fin requests)" -gt 0 ] || fail "churn_fin: no connections"

run_load idle --mode=idle --connections=300 --source_ips=2 --duration=200ms --server_pid="$pid"
expect_clean idle
[ "$(json_number idle ready)" = 300 ] || fail "idle: not all 300 connections are open"
[ "$(json_number idle source_ips)" = 2 ] || fail "idle: source addresses not used"

run_load usage --mode=bogus
[ "$LOAD_STATUS" -eq 64 ] || fail "usage: a bad --mode should exit 64, got $LOAD_STATUS"

stop_server

# Nothing listens on the stopped server's port any more: connect failures are errors.
run_load refused --mode=pingpong --connections=3 --duration=200ms --connect_timeout=10s
[ "$LOAD_STATUS" -eq 2 ] || fail "refused: expected exit 2, got $LOAD_STATUS"
[ "$(json_number refused connect_failed)" = 3 ] || fail "refused: expected 3 connect failures"

echo PASS
