# Shared helpers for the integration tests (sourced by tests/integration/*.sh).
# Each test runs real binaries on loopback in its own temp dir, and every
# process it starts is killed on exit, also on failure.
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
NP=$BUILD/np
NPSERVER=$BUILD/np-server
T=$(mktemp -d /tmp/np-test.XXXXXX)
chmod 0755 "$T"
PIDS=()
TEST_NAME=$(basename "$0" .sh)

cleanup() {
	local p
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
fail() {
	printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*"
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $f (last 30 lines)"
		tail -n 30 "$f"
	done
	exit 1
}
skip() { printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*"; exit 77; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local limit=$1 i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le $((limit * 20)) ] || return 1
		sleep 0.05
	done
}

# expect_fail COMMAND...: the command must exit non-zero.
expect_fail() {
	if "$@"; then
		fail "expected failure: $*"
	fi
	return 0
}

# server_init NAME: creates the data dir $T/NAME, sets FP_NAME.
server_init() {
	local d=$T/$1 fp
	fp=$("$NPSERVER" init -d "$d") || fail "np-server init failed"
	printf -v "FP_$1" '%s' "$fp"
}

# server_start NAME [extra run args]: runs it on a free port, sets PORT_NAME
# and PID_NAME; the log goes to $T/NAME.log.
server_start() {
	local name=$1 d=$T/$1 pid port
	shift
	rm -f "$d/port"
	"$NPSERVER" run -d "$d" -l 127.0.0.1:0 --port-file "$d/port" "$@" \
	    >>"$T/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_for 10 test -s "$d/port" || fail "np-server $name did not start"
	port=$(cat "$d/port")
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
}

server_stop() {
	local pidvar=PID_$1
	kill -TERM "${!pidvar}" 2>/dev/null
	wait "${!pidvar}" 2>/dev/null
}

# as WHO np ARGS...: runs np with WHO's own HOME (keys, config, pins).
as() {
	local who=$1
	shift
	mkdir -p "$T/home/$who"
	env -u NP_CONFIG HOME="$T/home/$who" "$@"
}

# enroll WHO SERVER: keygen + token + enroll for @WHO at server SERVER.
enroll() {
	local who=$1 srv=$2 tok portvar=PORT_$2 fpvar=FP_$2
	as "$who" "$NP" keygen "@$who" >/dev/null || fail "keygen @$who"
	tok=$("$NPSERVER" token -d "$T/$srv" "@$who") || fail "token @$who"
	as "$who" "$NP" enroll "@$who" --token "$tok" \
	    --server "127.0.0.1:${!portvar}" --fingerprint "${!fpvar}" \
	    >/dev/null || fail "enroll @$who"
}

[ -x "$NP" ] && [ -x "$NPSERVER" ] || fail "binaries missing in $BUILD: run make"
