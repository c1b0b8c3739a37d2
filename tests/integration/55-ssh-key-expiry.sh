#!/usr/bin/env bash
# The session key stops working at its expiry (KeyTTL 5 in this lab):
# the key file the proxy wrote for one session logs in straight to the
# device's sshd while fresh, and is refused once the TTL is past; the
# session that logged in before the expiry carries on to its end.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
TTL=5
LAB_DEVICED_EXTRA="KeyTTL $TTL" lab_up

# direct TAG KEY: ssh with only KEY straight to the private sshd.
direct() {
	run "$1" timeout 20 ssh -F /dev/null -i "$2" -o IdentitiesOnly=yes \
	    -o BatchMode=yes -o StrictHostKeyChecking=yes \
	    -o UserKnownHostsFile="$LAB/sshd/known_hosts" -o ConnectTimeout=5 \
	    -p "$SSHD_PORT" "$LAB_USER@127.0.0.1" true
}

key=$LAB/keys/$LAB_USER@$LAB_HOST
t0=$(now_ms)
bg long lssh "$LAB_HOST" 'echo in; sleep 8; echo done'
longpid=$BGPID
wait_for 10 grep -q '^in$' "$T/long.out" ||
    fail "the session did not log in: $(cat "$T/long.log")"
cp "$key" "$T/sesskey" || fail "no session key at $key"
chmod 0600 "$T/sesskey"
t1=$(now_ms)

# Fresh: the key works straight to sshd (so the refusal below is the
# expiry's doing).  Only checked when we got here well within the TTL.
if [ $((t1 - t0)) -lt $(((TTL - 3) * 1000)) ]; then
	direct fresh "$T/sesskey"
	expect_rc 0 "the session key straight to sshd before its expiry"
	log "fresh key accepted $((t1 - t0)) ms after the session started"
else
	log "session set-up took $((t1 - t0)) ms: fresh-key check skipped"
fi

# Past the TTL (plus a second for expiry-time's granularity): refused.
# Counted from t1: the device set the expiry when it accepted the
# session, which was after t0 by however long the set-up took, and
# before the login that t1 follows.
while [ $(($(now_ms) - t1)) -lt $(((TTL + 2) * 1000)) ]; do
	sleep 0.2
done
direct expired "$T/sesskey"
[ "$RC" != 0 ] || fail "the session key still logs in after KeyTTL $TTL s"
expect_match 'permission denied' "$ERR" "expired session key refused"

# The session opened before the expiry ran to its end.
wait_exit "$longpid" 30 || fail "the open session did not finish"
expect_rc 0 "the session that logged in before the expiry"
expect_eq "$(printf 'in\ndone')" "$(cat "$T/long.out")" "the open session's output"

# A new session re-authorizes the same client-held key, and it works.
run again lssh "$LAB_HOST" 'echo again'
expect_rc 0 "a new session after the expiry"
expect_eq again "$OUT" "new session output"
cmp -s "$key" "$T/sesskey" || fail "the client's key file changed"
log PASS
