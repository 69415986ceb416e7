# Shell helpers shared by the echo harness tests (sourced, not run).
# Usage: source echo_test_lib.sh SERVER_BIN LOAD_BIN
# Every wait is bounded and fails loudly; nothing sleeps.

SERVER_BIN=$1
LOAD_BIN=$2
WORK_DIR=${TEST_TMPDIR:-$(mktemp -d)}
SERVER_PID=
SERVER_ADDR=
SERVER_COUNT=0

fail() {
  echo "FAIL: $*" >&2
  if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null; fi
  exit 1
}

# start_server [FLAGS...]: starts the baseline server on an ephemeral loopback port, waits (at
# most 10 s) for its "listening on ADDR" line, and sets SERVER_PID and SERVER_ADDR. The server's
# stdout stays open on fd 3 so that stop_server can wait for its end as an EOF.
start_server() {
  SERVER_COUNT=$((SERVER_COUNT + 1))
  local fifo="$WORK_DIR/server$SERVER_COUNT.out"
  rm -f "$fifo"
  mkfifo "$fifo" || fail "mkfifo $fifo"
  "$SERVER_BIN" --addr=127.0.0.1:0 "$@" >"$fifo" 2>"$WORK_DIR/server$SERVER_COUNT.err" &
  SERVER_PID=$!
  exec 3<"$fifo"
  local line
  read -r -t 10 -u 3 line ||
    fail "server printed no address within 10 s: $(cat "$WORK_DIR/server$SERVER_COUNT.err")"
  case "$line" in
    "listening on "*) SERVER_ADDR=${line#listening on } ;;
    *) fail "unexpected first line from the server: $line" ;;
  esac
  echo "server $SERVER_PID listening on $SERVER_ADDR ($*)"
}

# stop_server: SIGTERM, then waits at most 10 s for the server to exit, and requires status 0.
stop_server() {
  kill -TERM "$SERVER_PID" || fail "server $SERVER_PID is not running"
  local rest status
  while read -r -t 10 -u 3 rest; do :; done
  status=$?
  [ "$status" -le 128 ] || fail "server $SERVER_PID did not exit within 10 s of SIGTERM"
  wait "$SERVER_PID"
  status=$?
  exec 3<&-
  cat "$WORK_DIR/server$SERVER_COUNT.err"
  [ "$status" -eq 0 ] || fail "server exited with status $status after SIGTERM"
  SERVER_PID=
}

# run_load NAME [FLAGS...]: runs echo_load against the server (bounded by 60 s); leaves its exit
# status in LOAD_STATUS, its stdout in $WORK_DIR/NAME.out and stderr in $WORK_DIR/NAME.err.
run_load() {
  local name=$1
  shift
  timeout -s KILL 60 "$LOAD_BIN" --addr="$SERVER_ADDR" "$@" \
    >"$WORK_DIR/$name.out" 2>"$WORK_DIR/$name.err"
  LOAD_STATUS=$?
  [ "$LOAD_STATUS" -ne 137 ] || fail "$name: echo_load did not finish within 60 s"
  echo "--- $name (exit $LOAD_STATUS)"
  cat "$WORK_DIR/$name.out" "$WORK_DIR/$name.err"
}

# json_number NAME KEY: the first "KEY":NUMBER in NAME's output (integer part).
json_number() {
  grep -o "\"$2\":-\?[0-9]*" "$WORK_DIR/$1.out" | head -n 1 | cut -d: -f2
}
