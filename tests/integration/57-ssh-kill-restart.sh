#!/usr/bin/env bash
# Failures end sessions promptly and the lab heals: SIGKILL of np-srd
# mid-session ends ssh with an error within 10 s; so does SIGKILL of
# np-deviced; after np-server restarts (same port), np-deviced and np-srd
# reconnect by themselves and a new ssh works within 10 s, while a
# session that was open across the restart carries on.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up

# open_session TAG SCRIPT: ssh in the background running SCRIPT (which
# starts with `echo in`); waits until it is in; sets SPID.
open_session() {
	bg "$1" lssh "$LAB_HOST" "$2"
	SPID=$BGPID
	wait_for 20 grep -q '^in$' "$T/$1.out" ||
	    fail "$1: session did not start: $(cat "$T/$1.log")"
}

# ends_with_error TAG WHAT: the session ends within 10 s, non-zero.
ends_with_error() {
	local t0 t1
	t0=$(now_ms)
	wait_exit "$SPID" 10 || fail "$2: ssh still running 10 s later"
	t1=$(now_ms)
	[ "$RC" != 0 ] || fail "$2: ssh exited 0"
	log "$2: ssh exited $RC after $((t1 - t0)) ms ($(tail -n 1 "$T/$1.log"))"
}

# 1. np-srd killed mid-session.
open_session s1 'echo in; sleep 60; echo never'
lab_kill np-srd KILL
ends_with_error s1 "np-srd killed"
grep -q never "$T/s1.out" && fail "np-srd killed: the session ran to its end"
lab_restart np-srd
run a1 lssh "$LAB_HOST" 'echo back'
expect_rc 0 "a session after np-srd restarted"
expect_eq back "$OUT" "output after np-srd restarted"

# 2. np-deviced killed mid-session.
open_session s2 'echo in; sleep 60; echo never'
lab_kill np-deviced KILL
ends_with_error s2 "np-deviced killed"
lab_restart np-deviced
run a2 lssh "$LAB_HOST" 'echo back'
expect_rc 0 "a session after np-deviced restarted"
expect_eq back "$OUT" "output after np-deviced restarted"

# 3. np-server restarts: an open session carries on (the data plane does
# not go through it); a new session works within 10 s of the restart.
open_session s3 'echo in; sleep 4; echo done'
lab_kill np-server TERM
sleep 1
t0=$(now_ms)
lab_restart np-server
ok=0
while [ $(($(now_ms) - t0)) -lt 10000 ]; do
	SSH_LIMIT=8 run a3 lssh "$LAB_HOST" 'echo back'
	if [ "$RC" = 0 ] && [ "$OUT" = back ]; then
		ok=1
		break
	fi
	sleep 0.5
done
t1=$(now_ms)
[ "$ok" = 1 ] || fail "no working ssh within 10 s of the np-server restart (last: $(what))"
log "ssh works again $((t1 - t0)) ms after np-server restarted"
wait_exit "$SPID" 20 || fail "the session open across the restart did not end"
expect_rc 0 "the session open across the np-server restart"
expect_eq "$(printf 'in\ndone')" "$(cat "$T/s3.out")" "its output"
for n in np-server np-srd np-deviced sshd; do
	pid=$(lab_pidof "$n")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "$n is not running at the end"
done
log PASS
