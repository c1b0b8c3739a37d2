# Sourced by the ssh end-to-end tests (tests/integration/5*-ssh-*.sh) after
# tests/lib.sh: brings a lab up in $T/lab and takes it down on exit (also
# on failure, before tests/lib.sh's own cleanup), and runs ssh through it.
# shellcheck shell=bash

LAB=$T/lab
LABBIN=$TOP/tests/lab
# lab_in, lab_ns, ...: where the lab's parts run (netns or here).
# shellcheck disable=SC1091
. "$LABBIN/lib.sh"
LAB_IS_UP=0

# The lab's logs are in $LAB/logs: shown on failure, scanned for
# sanitizer reports, then the lab is stopped and tests/lib.sh cleans up.
lab_test_exit() {
	local rc=$? f
	if [ "$LAB_IS_UP" = 1 ]; then
		if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
			for f in "$LAB"/logs/*.log; do
				[ -s "$f" ] || continue
				echo "--- $f (last 25 lines)"
				tail -n 25 "$f"
			done
		fi
		"$LABBIN/down" "$LAB" >/dev/null 2>&1
		if grep -qsE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		    "$LAB"/logs/*.log; then
			printf '[%s] FAIL: sanitizer report in the lab logs:\n' \
			    "$TEST_NAME"
			grep -shE -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
			    "$LAB"/logs/*.log | head -n 60
			rc=1
		fi
	fi
	(exit "$rc")
	cleanup
}
trap lab_test_exit EXIT

# lab_require: skips when this machine cannot run the lab's private sshd.
lab_require() {
	local p owner mode
	[ -x /usr/sbin/sshd ] ||
	    skip "/usr/sbin/sshd not installed (apt-get install openssh-server)"
	command -v ssh >/dev/null && command -v ssh-keygen >/dev/null ||
	    skip "ssh or ssh-keygen not installed (apt-get install openssh-client)"
	[ -x "$BUILD/np-deviced" ] || fail "$BUILD/np-deviced not built"
	[ -x "$BUILD/np-keyhelper" ] || fail "$BUILD/np-keyhelper not built"
	# sshd runs AuthorizedKeysCommand only from a root-owned path that no
	# group or other can write (every parent directory included).
	p=$(readlink -f "$BUILD/np-keyhelper")
	while :; do
		read -r owner mode < <(stat -L -c '%u %a' "$p")
		if { [ "$owner" != 0 ] || [ $((8#$mode & 8#022)) != 0 ]; } &&
		    [ "$(id -u)" != 0 ]; then
			skip "sshd would refuse $BUILD/np-keyhelper as AuthorizedKeysCommand: $p is not root-owned or is group/other-writable (mode $mode, uid $owner); build in a root-owned checkout"
		fi
		[ "$p" = / ] && break
		p=$(dirname "$p")
	done
}

# lab_up [up options]: tests/lab/up $LAB (env LAB_* as the caller sets
# them); fails the test with up's output if it fails; loads $LAB/lab.env
# (LAB_HOST, LAB_USER, SSHD_PORT, SERVER_PORT, ...).
lab_up() {
	LAB_IS_UP=1
	BUILD=$BUILD "$LABBIN/up" "$LAB" "$@" >"$T/lab-up.out" 2>&1 ||
	    fail "tests/lab/up failed: $(cat "$T/lab-up.out")"
	# shellcheck disable=SC1091
	. "$LAB/lab.env"
	log "lab up: $LAB_HOST, sshd 127.0.0.1:$SSHD_PORT, np-server $LAB_CLOUD_ADDR:$SERVER_PORT"
}

# lab_pidof NAME: the pid of the lab's NAME (np-server np-srd np-deviced
# sshd), empty when not running.
lab_pidof() {
	local f=$LAB/pids/$1.pid
	[ -f "$f" ] && cat "$f"
}

# lab_restart NAME: tests/lab/start for NAME; fails the test on error.
lab_restart() {
	BUILD=$BUILD "$LABBIN/start" "$LAB" "$1" >"$T/lab-start-$1.out" 2>&1 ||
	    fail "tests/lab/start $1 failed: $(cat "$T/lab-start-$1.out")"
}

# lab_kill NAME SIGNAL: signals the lab's NAME and waits (10 s) until it
# has exited.
lab_kill() {
	local pid i=0
	pid=$(lab_pidof "$1")
	[ -n "$pid" ] || fail "$1 is not running"
	kill "-$2" "$pid" || fail "kill -$2 $1 ($pid)"
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 200 ] || fail "$1 ($pid) did not exit within 10 s of SIG$2"
		sleep 0.05
	done
	rm -f "$LAB/pids/$1.pid"
}

# lssh ARGS...: ssh through the lab (its ssh_config), never prompting,
# bounded by $SSH_LIMIT seconds (default 60).
lssh() {
	lab_in client timeout "${SSH_LIMIT:-60}" ssh -F "$LAB/ssh_config" \
	    -o BatchMode=yes "$@"
}

# lab_log_count NAME ERE: lines of the lab's NAME log matching ERE.
lab_log_count() {
	grep -Ec -- "$2" "$LAB/logs/$1.log" 2>/dev/null || true
}
