#!/usr/bin/env bash
# Who may open np-srd sessions: an identity that Allow does not name gets
# no session (np-srd ignores its box and logs it) while allowed ones do;
# "Allow *" opens the relay to everyone; MaxSessionsPerIdentity caps the
# unfinished sessions of each identity (the next one is refused with an
# srd.error, and a slot comes back when a session ends).
. "$(dirname "$0")/../lib.sh"
srd_require

server_init s
server_start s
enroll sr s
enroll alice s
enroll bob s
enroll carol s

# pair TAG FILE: both sides of the session exchange 1000 bytes.
pair() {
	local tag=$1 f=$2 pc pd
	sr_side "$tag-c" "$f" c --send 1000 --seed 1 --shut \
	    --expect-recv 1000 --timeout 20
	pc=$BGPID
	sr_side "$tag-d" "$f" d --send 1000 --seed 2 --shut \
	    --expect-recv 1000 --timeout 20
	pd=$BGPID
	wait_exit "$pc" 30 || fail "$tag: client side hung"
	expect_rc 0 "$tag: client side ($(cat "$T/$tag-c.log"))"
	wait_exit "$pd" 30 || fail "$tag: device side hung"
	expect_rc 0 "$tag: device side ($(cat "$T/$tag-d.log"))"
}

srd_conf sr s <<CONF
Allow @alice @carol
MaxSessionsPerIdentity 2
SessionTimeout 60
CONF
srd_start sr

# bob is not allowed: no session within 4 s, and the log says why.
before=$(lines "$T/sr.log")
t0=$(now_ms)
sr_open bob sr "$T/bob.json" --timeout 4
t1=$(now_ms)
[ "$RC" != 0 ] || fail "@bob (not in Allow) got a session: $OUT"
expect_nomatch '"token"' "$OUT" "no tokens for @bob"
log "@bob refused after $((t1 - t0)) ms: $ERR"
wait_for 5 srd_log_since sr "$before" '@bob.*not allowed|not allowed.*@bob' ||
    fail "np-srd did not log the refusal of @bob"
log "np-srd: $(tail -n +"$((before + 1))" "$T/sr.log" | grep -i 'not allowed' | head -n 1)"
expect_nomatch "opened for @bob" "$(cat "$T/sr.log")" "no session for @bob"

# carol (second name on the Allow line) is allowed.
sr_open carol sr "$T/carol.json" --timeout 20
expect_rc 0 "@carol (in Allow) opens a session"
pair carol "$T/carol.json"

# alice: two unfinished sessions, the third is refused.
sr_open alice sr "$T/a1.json" --timeout 20
expect_rc 0 "alice session 1"
sr_open alice sr "$T/a2.json" --timeout 20
expect_rc 0 "alice session 2"
sr_open alice sr "$T/a3.json" --timeout 20
[ "$RC" = 1 ] || fail "alice's third session was not refused: $(what)"
expect_match 'refused: .*(too many|limit|sessions)' "$ERR" \
    "the refusal names the cap"
log "third session: $ERR"
grep -Eqi 'refused a session to @alice' "$T/sr.log" ||
    fail "np-srd did not log the refusal for @alice"
# The cap is per identity: carol still gets one.
sr_open carol sr "$T/carol2.json" --timeout 20
expect_rc 0 "@carol is not limited by alice's sessions"
# A finished session gives alice her slot back.
pair a1 "$T/a1.json"
wait_for 10 grep -q "session $(json_field "$T/a1.json" sid) .*end done" \
    "$T/sr.log" || fail "session a1 did not end"
sr_open alice sr "$T/a4.json" --timeout 20
expect_rc 0 "alice gets a session again once one ended"
pair a2 "$T/a2.json"
pair a4 "$T/a4.json"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

# Allow *: anyone enrolled, bob included.
srd_conf sr s <<CONF
Allow *
CONF
srd_start sr
sr_open bob sr "$T/bob2.json" --timeout 20
expect_rc 0 "@bob with Allow *"
pair bob2 "$T/bob2.json"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

log PASS
