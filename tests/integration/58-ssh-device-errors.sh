#!/usr/bin/env bash
# A device that answers np.session.ok and then cannot reach its sshd
# sends np.session.err for the same session (docs/np-deviced.md, step 5):
# np proxy and np ssh keep listening on the control plane until the
# device's first byte, so ssh fails within seconds with the device's
# reason (not 30 s later with "connection to the device lost"), nothing
# on stdout; once sshd is back ssh works again, and a normal session
# (output, exit status, bytes both ways) is unaffected.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up

LIMIT_MS=10000
REASON='np: demo\.noports: the device could not complete the session: sshd unreachable: '
npc() { lab_in client timeout 30 "$BUILD/np" -F "$LAB/client.conf" "$@"; }

# timed TAG COMMAND...: run (tests/lib.sh) and set MS to how long it took.
timed() {
	local t0
	t0=$(now_ms)
	run "$@"
	MS=$(($(now_ms) - t0))
}

# A normal session first: its output and exit status come through.
timed n1 lssh "$LAB_HOST" 'echo hello; exit 3'
expect_rc 3 "normal session"
expect_eq hello "$OUT" "normal session output"
log "normal session: $MS ms"

# 1. sshd down: ssh (np proxy) fails fast, with the device's reason.
lab_kill sshd TERM
timed d1 lssh "$LAB_HOST" 'echo never'
[ "$RC" != 0 ] || fail "ssh with sshd down exited 0 ($(what))"
[ "$MS" -lt "$LIMIT_MS" ] || fail "ssh with sshd down took $MS ms ($(what))"
expect_eq "" "$OUT" "stdout with sshd down"
expect_match "^${REASON}Connection refused$" "$ERR" "stderr with sshd down"
expect_nomatch 'connection to the device lost' "$ERR" "stderr with sshd down"
[ "$(grep -c '^np: ' "$T/d1.err")" = 1 ] ||
    fail "np printed more than one line: $ERR"
log "ssh with sshd down: exit $RC after $MS ms ($(grep '^np: ' "$T/d1.err"))"
[ "$(lab_log_count np-deviced 'failed: sshd unreachable')" -ge 1 ] ||
    fail "np-deviced did not log the failure"

# np proxy by itself: nothing on its stdout, exit non-zero.  Its stdin
# and stdout are pipes, as ssh gives it (the pipe in stays open).
timed p1 lab_in client bash -c 'timeout 30 "$@" < <(exec sleep 15) | cat; exit "${PIPESTATUS[0]}"' \
    _ "$BUILD/np" -F "$LAB/client.conf" proxy "$LAB_HOST" 22 "$LAB_USER"
[ "$RC" != 0 ] && [ "$RC" != 124 ] || fail "np proxy with sshd down: $(what)"
[ "$MS" -lt "$LIMIT_MS" ] || fail "np proxy with sshd down took $MS ms"
[ ! -s "$T/p1.out" ] || fail "np proxy wrote to stdout: $(od -c "$T/p1.out" | head -n 3)"
expect_match "^${REASON}Connection refused$" "$ERR" "np proxy's stderr"
log "np proxy with sshd down: exit $RC after $MS ms"

# np ssh --exec: the same line, ssh's status (non-zero).
timed e1 npc ssh "$LAB_HOST" -u "$LAB_USER" --exec -- -o BatchMode=yes \
    echo never
[ "$RC" != 0 ] && [ "$RC" != 124 ] || fail "np ssh --exec with sshd down: $(what)"
[ "$MS" -lt "$LIMIT_MS" ] || fail "np ssh --exec with sshd down took $MS ms"
expect_eq "" "$OUT" "np ssh --exec stdout with sshd down"
expect_match "${REASON}Connection refused" "$ERR" "np ssh --exec stderr"
log "np ssh --exec with sshd down: exit $RC after $MS ms"

# np ssh (printing the command): fails without anybody connecting.
timed e2 npc ssh "$LAB_HOST" -u "$LAB_USER"
[ "$RC" != 0 ] && [ "$RC" != 124 ] || fail "np ssh with sshd down: $(what)"
[ "$MS" -lt "$LIMIT_MS" ] || fail "np ssh with sshd down took $MS ms"
expect_match "${REASON}Connection refused" "$ERR" "np ssh stderr"
log "np ssh with sshd down: exit $RC after $MS ms"

# 2. sshd back: ssh works again.
lab_restart sshd
timed n2 lssh "$LAB_HOST" 'echo back'
expect_rc 0 "ssh after sshd restarted"
expect_eq back "$OUT" "output after sshd restarted"
log "ssh after sshd restarted: $MS ms"
timed e3 npc ssh "$LAB_HOST" -u "$LAB_USER" --exec -- -o BatchMode=yes \
    'echo via-np-ssh; exit 4'
expect_rc 4 "np ssh --exec after sshd restarted"
expect_eq via-np-ssh "$OUT" "np ssh --exec output"

# 3. A normal session is unaffected: bytes both ways, status, and one
# open past the watch (the session's control-plane connection let go
# after the device's first byte: np keeps no more than it did).
head -c 3000000 /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
timed n3 lssh "$LAB_HOST" 'sha256sum | cut -d" " -f1; exit 5' <"$T/blob"
expect_rc 5 "a session with 3 MB in"
expect_eq "$want" "$OUT" "the bytes that went in"
log "3 MB through a normal session: $MS ms"
bg s4 lssh "$LAB_HOST" 'echo in; sleep 2; echo out'
SPID=$BGPID
wait_for 20 grep -q '^in$' "$T/s4.out" || fail "s4 did not start: $(cat "$T/s4.log")"
# np proxy no longer holds a control-plane connection.
cpc=$(lab_in client ss -Htnp state established "( dport = :$SERVER_PORT )" |
    grep -c '"np"' || true)
[ "$cpc" = 0 ] || fail "np proxy still holds $cpc control-plane connection(s) mid-session"
wait_exit "$SPID" 20 || fail "s4 did not end"
expect_rc 0 "a session of 2 s"
expect_eq "$(printf 'in\nout')" "$(cat "$T/s4.out")" "its output"
[ ! -s "$T/s4.log" ] || fail "s4 printed on stderr: $(cat "$T/s4.log")"
log PASS
