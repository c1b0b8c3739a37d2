# Shared helpers for the integration tests (sourced by tests/integration/*.sh).
# Each test runs real binaries on loopback in its own temp dir, and every
# process it starts is killed on exit, also on failure.
set -u
umask 077
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
NP=$BUILD/np
NPSERVER=$BUILD/np-server
T=$(mktemp -d /tmp/np-test.XXXXXX)
chmod 0755 "$T"
PIDS=()
TEST_NAME=$(basename "$0" .sh)

# Sanitizer builds (make SANITIZE=1): the first report stops the program
# with a failing exit status, leaks are reported when a program exits (not
# when it is killed), and every report is written to $SANLOG.NAME.PID, so
# that one from a program whose stderr the test discards or expects to be
# an error message still fails the test (cleanup).  ASAN_OPTIONS and
# UBSAN_OPTIONS from the caller come last and win.
SANLOG=$T/sanitizer/report
mkdir -m 1777 "$T/sanitizer"
SAN_COMMON=log_path=$SANLOG:log_exe_name=1:halt_on_error=1:abort_on_error=0
# A test may put a library in front of the sanitizer runtime (LD_PRELOAD
# of libfaketime): allowed.
export ASAN_OPTIONS=$SAN_COMMON:detect_leaks=1:verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
export UBSAN_OPTIONS=$SAN_COMMON:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
# sshd's log keeps only np-keyhelper's exit status (keyhelper/main.c).
SAN_RE='ERROR: (Address|Leak)Sanitizer|runtime error:|Sanitizer has encountered a fatal error|AuthorizedKeysCommand .* failed, status 86|ASan runtime does not come first'

# san_check: fails (returns 1) after printing every sanitizer report: the
# report files, and reports in the test's logs (a program that got its own
# ASAN_OPTIONS).
san_check() {
	local f found=0
	for f in "$T"/sanitizer/report.*; do
		[ -f "$f" ] || continue
		found=1
		printf '[%s] FAIL: sanitizer report %s:\n' "$TEST_NAME" "${f##*/}"
		head -n 60 "$f"
	done
	if grep -rqsE --include='*.log' --include='*.err' "$SAN_RE" "$T"; then
		found=1
		printf '[%s] FAIL: sanitizer report in:\n' "$TEST_NAME"
		grep -rlsE --include='*.log' --include='*.err' "$SAN_RE" "$T"
		grep -rhsE --include='*.log' --include='*.err' -A12 "$SAN_RE" \
		    "$T" | head -n 60
	fi
	[ "$found" = 0 ]
}

# kill_tree PID: SIGTERM to PID's descendants, deepest first, then to
# PID.  bg of a shell function (lssh, npas, ...) leaves a subshell whose
# children (timeout, ssh, np) a kill of BGPID alone would not reach.
kill_tree() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		kill_tree "$c"
	done
	kill "$1" 2>/dev/null
}

cleanup() {
	local p rc=$?
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill_tree "$p"
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null
	done
	# A sanitizer report from any program run by the test fails it.
	san_check || rc=1
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
	exit $rc
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

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.  Its arguments
# are expanded once, by the caller: to look again each time, poll a
# function or `eval '...'`.
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
	local name=$1
	shift
	server_start_on "$name" 0 "$@"
}

# server_start_on NAME PORT [extra run args]: the same on a given port (a
# restart on the port the clients' configs name); 0 picks a free one.
# SIGINT and SIGQUIT get their default disposition back (bash ignores them
# in background jobs), so the server sees them as it would from a terminal.
server_start_on() {
	local name=$1 listen=127.0.0.1:$2 d=$T/$1 pid port
	shift 2
	rm -f "$d/port"
	env --default-signal=INT,QUIT \
	    "$NPSERVER" run -d "$d" -l "$listen" --port-file "$d/port" "$@" \
	    >>"$T/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_for 10 test -s "$d/port" || fail "np-server $name did not start"
	port=$(cat "$d/port")
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
}

# server_stop NAME [SIGNAL]: stops it (default SIGTERM) and returns its exit
# status; fails the test if it does not exit within 10 s.
server_stop() {
	local pidvar=PID_$1 sig=${2:-TERM} pid i=0 rc
	pid=${!pidvar}
	kill "-$sig" "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			kill -KILL "$pid" 2>/dev/null
			fail "np-server $1 did not exit within 10 s of SIG$sig"
		fi
		sleep 0.05
	done
	wait "$pid" 2>/dev/null
	rc=$?
	return $rc
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
	as "$who" "$NP" keygen "@$who" >"$T/$who.pub" || fail "keygen @$who"
	tok=$("$NPSERVER" token -d "$T/$srv" "@$who") || fail "token @$who"
	as "$who" "$NP" enroll "@$who" --token "$tok" \
	    --server "127.0.0.1:${!portvar}" --fingerprint "${!fpvar}" \
	    >/dev/null || fail "enroll @$who"
}

# enroll (above) also leaves the keygen line "@WHO ed25519 PK" in $T/WHO.pub.

# npas WHO ARGS...: np as WHO, bounded by $NP_LIMIT seconds (default 30).
npas() {
	local who=$1
	shift
	mkdir -p "$T/home/$who"
	timeout "${NP_LIMIT:-30}" env -u NP_CONFIG HOME="$T/home/$who" "$NP" "$@"
}

# npsrv ARGS...: np-server bounded by $NP_LIMIT seconds (default 30).
npsrv() {
	timeout "${NP_LIMIT:-30}" "$NPSERVER" "$@"
}

# run TAG COMMAND...: runs COMMAND with stdout in $T/TAG.out and stderr in
# $T/TAG.err; sets RC, OUT and ERR (never fails by itself).
run() {
	local tag=$1
	shift
	"$@" >"$T/$tag.out" 2>"$T/$tag.err"
	RC=$?
	OUT=$(cat "$T/$tag.out")
	ERR=$(cat "$T/$tag.err")
	return 0
}

# what: the last run's command outcome, for failure messages.
what() {
	printf 'exit %s, stdout: [%s], stderr: [%s]' "$RC" "$OUT" "$ERR"
}

# expect_rc N MESSAGE: the last run exited with N.
expect_rc() {
	[ "$RC" = "$1" ] || fail "$2: expected exit $1, got $(what)"
}

# expect_eq EXPECTED ACTUAL MESSAGE
expect_eq() {
	[ "$1" = "$2" ] ||
	    fail "$3: expected [$1], got [$2] ($(what))"
}

# expect_match ERE TEXT MESSAGE (grep -E, case-insensitive)
expect_match() {
	printf '%s\n' "$2" | grep -Eqi -- "$1" ||
	    fail "$3: [$2] does not match /$1/ ($(what))"
}

# re_quote TEXT: TEXT as an ERE matching it literally.
re_quote() {
	printf '%s' "$1" | sed 's/[][\\.*^$+?(){}|]/\\&/g'
}

# expect_nomatch ERE TEXT MESSAGE
expect_nomatch() {
	if printf '%s\n' "$2" | grep -Eqi -- "$1"; then
		fail "$3: [$2] matches /$1/ ($(what))"
	fi
	return 0
}

# pubkey WHO: the base64 public key from $T/WHO.pub.
pubkey() {
	awk '{print $3}' "$T/$1.pub"
}

# now_ms: wall clock in milliseconds.
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# bg TAG COMMAND...: starts COMMAND in the background (stdout $T/TAG.out,
# stderr $T/TAG.log), records it for cleanup, sets BGPID.
bg() {
	local tag=$1
	shift
	"$@" >"$T/$tag.out" 2>"$T/$tag.log" &
	BGPID=$!
	PIDS+=("$BGPID")
}

# wait_exit PID SECONDS: waits for a background PID to exit within the limit
# and sets RC to its status; returns 1 on timeout (the process is left).
wait_exit() {
	local pid=$1 limit=$2 i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $((limit * 20)) ] || return 1
		sleep 0.05
	done
	wait "$pid" 2>/dev/null
	RC=$?
	return 0
}

# lines FILE: number of lines in FILE (0 if missing).
lines() {
	if [ -f "$1" ]; then
		wc -l <"$1" | tr -d ' '
	else
		echo 0
	fi
}

# config_of WHO: path of WHO's default np config.
config_of() {
	echo "$T/home/$1/.config/noports/config"
}

# keyfile_of WHO: path of WHO's default identity key.
keyfile_of() {
	echo "$T/home/$1/.config/noports/identity.key"
}

# ---- np-srd (the socket rendezvous) helpers ----
NPSRD=$BUILD/np-srd
SRPEER=$BUILD/tools/np-srpeer

# srd_require: np-srd and np-srpeer must be built.
srd_require() {
	[ -x "$NPSRD" ] || fail "$NPSRD missing: run make"
	[ -x "$SRPEER" ] || fail "$SRPEER missing: run make tools"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now
# (outside the kernel's ephemeral range).
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Hltn "sport = :$p" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# srd_conf WHO SERVER [FILE]: writes the np-srd config FILE (default
# $T/WHO.conf) for the enrolled identity @WHO at SERVER, followed by the
# lines read from stdin (Allow, SinglePort, timeouts, ...).
srd_conf() {
	local who=$1 srv=$2 f=${3:-$T/$1.conf} portvar=PORT_$2 fpvar=FP_$2
	local h=$T/home/$who/.config/noports
	{
		echo "Identity @$who"
		echo "IdentityFile $h/identity.key"
		echo "Server 127.0.0.1:${!portvar}"
		echo "ServerFingerprint ${!fpvar}"
		echo "KnownIdentities $h/known_identities"
		echo "PublicHost 127.0.0.1"
		echo "ListenAddress 127.0.0.1"
		echo "LogLevel debug"
		cat
	} >"$f"
}

# srd_start NAME [CONF]: runs np-srd -F CONF -D in the background (log
# $T/NAME.log, appended), sets PID_NAME; waits until it authenticated to
# its server (a log line) or fails after 15 s.
srd_start() {
	local name=$1 conf=${2:-$T/$1.conf} pid before
	before=$(lines "$T/$name.log")
	env --default-signal=INT,QUIT "$NPSRD" -F "$conf" -D \
	    >>"$T/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	printf -v "PID_$name" '%s' "$pid"
	wait_for 15 srd_log_since "$name" "$before" \
	    "$SRD_READY_RE" || {
		kill -0 "$pid" 2>/dev/null ||
		    fail "np-srd $name exited at start"
		fail "np-srd $name not ready within 15 s"
	}
}
SRD_READY_RE=${SRD_READY_RE:-'monitor|ready|connected|welcome|authenticated|serving'}

# srd_log_since NAME N ERE: a line after the first N lines of $T/NAME.log
# matches ERE (case-insensitive).
srd_log_since() {
	tail -n +"$(($2 + 1))" "$T/$1.log" 2>/dev/null | grep -Eqi -- "$3"
}

# srd_stop NAME [SIGNAL] [LIMIT]: signals np-srd (default TERM) and waits
# up to LIMIT seconds (default 10) for it to exit; returns its status.
srd_stop() {
	local pidvar=PID_$1 sig=${2:-TERM} limit=${3:-10} pid
	pid=${!pidvar}
	kill "-$sig" "$pid" 2>/dev/null
	if ! wait_exit "$pid" "$limit"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		fail "np-srd $1 did not exit within $limit s of SIG$sig"
	fi
	return "$RC"
}

# rss_kb PID: resident set size in kB (empty when gone).
rss_kb() {
	awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null
}

# srp WHO ARGS...: np-srpeer as WHO (WHO's HOME and np config), bounded
# by $NP_LIMIT seconds (default 30).
srp() {
	local who=$1
	shift
	mkdir -p "$T/home/$who"
	timeout "${NP_LIMIT:-30}" env -u NP_CONFIG HOME="$T/home/$who" \
	    "$SRPEER" -F "$(config_of "$who")" "$@"
}

# sr_open WHO SR FILE [ARGS...]: asks @SR for a session as WHO and
# stores the srd.session JSON in FILE; sets RC/OUT/ERR (see run).
sr_open() {
	local who=$1 sr=$2 f=$3 tag
	shift 3
	tag=open-$(basename "$f" .json)
	run "$tag" srp "$who" open "@$sr" "$@"
	if [ "$RC" = 0 ]; then
		printf '%s\n' "$OUT" >"$f"
	fi
}

# sr_side TAG FILE SIDE ARGS...: one side of a session in the background
# (np-srpeer side; stdout $T/TAG.out, stderr $T/TAG.log), its own
# --timeout $SIDE_LIMIT (default 120, ARGS may override); sets BGPID, the
# np-srpeer process itself.
sr_side() {
	local tag=$1 f=$2 side=$3
	shift 3
	bg "$tag" "$SRPEER" side --timeout "${SIDE_LIMIT:-120}" --session "$f" \
	    --side "$side" "$@"
}

# sr_gen BYTES SEED: sha256 of np-srpeer's deterministic stream.
sr_gen() {
	"$SRPEER" gen --bytes "$1" --seed "$2"
}

# side_field TAG WORD: the value after WORD in $T/TAG.out's result line
# ("sent N sha256 H recv M sha256 H"): sent, recv, sent_sha, recv_sha.
side_field() {
	awk -v w="$2" '/^sent /{
		if (w == "sent") print $2; else if (w == "sent_sha") print $4;
		else if (w == "recv") print $6; else if (w == "recv_sha") print $8;
		exit }' "$T/$1.out"
}

# json_field FILE PATH: a scalar member of the session JSON (one flat
# level of nesting), e.g. "sid", "client.port", "device.token".
json_field() {
	local txt key=$2 obj
	txt=$(tr -d '\n' <"$1")
	case $key in
	*.*)
		obj=${key%%.*}
		key=${key#*.}
		txt=$(printf '%s' "$txt" | grep -o "\"$obj\" *: *{[^}]*}")
		;;
	esac
	printf '%s' "$txt" | grep -o "\"$key\" *: *[^,}]*" | head -n 1 |
	    sed 's/^"[^"]*" *: *//; s/^"//; s/" *$//; s/ *$//'
}

# sr_line FILE SIDE: the token line (without "\n") for side c or d of the
# session in FILE.
sr_line() {
	local f=$1 side=$2 who=client
	[ "$side" = d ] && who=device
	printf 'NPSR1 %s %s %s' "$(json_field "$f" sid)" "$side" \
	    "$(json_field "$f" "$who.token")"
}

# raw_try PORT LINE: connects to 127.0.0.1:PORT, sends LINE + "\n" and
# prints np-srd's answer line, "EOF" when it closed without one, or
# "CONNREFUSED" when nothing listens (bounded to 10 s).
raw_try() {
	timeout 10 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/$0 || { echo CONNREFUSED; exit 0; }
		printf "%s\n" "$1" >&3
		if IFS= read -r -t 8 l <&3; then echo "$l"; else echo EOF; fi
	' "$1" "$2" 2>/dev/null || echo TIMEOUT
}

[ -x "$NP" ] && [ -x "$NPSERVER" ] || fail "binaries missing in $BUILD: run make"
