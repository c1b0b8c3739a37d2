#!/usr/bin/env bash
# np-srd and restarts: an np-server restart does not disturb a session
# that is relaying (it completes intact) and np-srd reconnects to the
# server by itself (a new session works within a bound).  SIGTERM stops
# new sessions, lets a relaying session finish within GraceTime and exits
# 0; one that outlives GraceTime is cut at its end, and np-srd still
# exits 0.
. "$(dirname "$0")/../lib.sh"
srd_require

SIZE=$((96 * 1048576))
RATE=$((24 * 1048576)) # the reader's pace: ~4 s for SIZE
server_init s
server_start s
port=$PORT_s
enroll sr s
enroll alice s
want=$(sr_gen $SIZE 3) || fail "np-srpeer gen"
srd_conf sr s <<CONF
Allow @alice
MaxSessionsPerIdentity 10
GraceTime 10
CONF
srd_start sr

# paced TAG RATE: opens a session; the client sends SIZE and shuts down,
# the device reads at RATE bytes/s; sets PC, PD.
paced() {
	local tag=$1 rate=$2 sid
	sr_open alice sr "$T/$tag.json" --timeout 20
	expect_rc 0 "$tag: open"
	sid=$(json_field "$T/$tag.json" sid)
	sr_side "$tag-c" "$T/$tag.json" c --send $SIZE --seed 3 --shut \
	    --timeout 120
	PC=$BGPID
	sr_side "$tag-d" "$T/$tag.json" d --recv-rate "$rate" --shut \
	    --expect-recv $SIZE --timeout 120
	PD=$BGPID
	wait_for 10 grep -q "session $sid: relaying" "$T/sr.log" ||
	    fail "$tag: not relaying"
}

# finished TAG LIMIT: both sides of TAG finished cleanly with the data.
finished() {
	local tag=$1 limit=$2
	wait_exit "$PD" "$limit" || fail "$tag: the reader did not finish"
	expect_rc 0 "$tag: reader ($(cat "$T/$tag-d.log"))"
	wait_exit "$PC" 10 || fail "$tag: the sender did not finish"
	expect_rc 0 "$tag: sender ($(cat "$T/$tag-c.log"))"
	expect_eq "$want" "$(side_field "$tag-d" recv_sha)" "$tag: data intact"
}

# ---- np-server restart under a relaying session ----
# At half the pace (~8 s): the checks below spend 3-4 s (two sleeps, the
# stop) before they look that the session is still relaying.
paced srv-restart $((RATE / 2))
# ups: how often np-srd has logged a connection to np-server (a function,
# so that wait_for counts again on every poll).
ups() { grep -c 'connected to 127.0.0.1 port' "$T/sr.log"; }
ups0=$(ups)
sleep 1
server_stop s TERM || fail "np-server did not stop cleanly"
sleep 1
kill -0 "$PD" 2>/dev/null || fail "the session ended while np-server was down"
server_start_on s "$port"
t0=$(now_ms)
finished srv-restart 60
log "a session survived an np-server restart: $(grep "session $(json_field "$T/srv-restart.json" sid) .*end" "$T/sr.log")"
wait_for 40 eval '[ "$(ups)" -gt "$ups0" ]' ||
    fail "np-srd did not reconnect to np-server within 40 s"
sr_open alice sr "$T/after.json" --timeout 30
expect_rc 0 "a new session after the np-server restart"
log "np-srd reconnected and answered $(($(now_ms) - t0)) ms after the restart"
sr_side after-c "$T/after.json" c --send 1000 --seed 1 --shut \
    --expect-recv 1000 --timeout 20
a1=$BGPID
sr_side after-d "$T/after.json" d --send 1000 --seed 2 --shut \
    --expect-recv 1000 --timeout 20
a2=$BGPID
wait_exit "$a1" 30 || fail "after: the client side did not finish"
expect_rc 0 "after: client side"
wait_exit "$a2" 30 || fail "after: the device side did not finish"
expect_rc 0 "after: device side"

# ---- SIGTERM: a relaying session finishes within GraceTime ----
sr_open alice sr "$T/waiting.json" --timeout 20
expect_rc 0 "open a session that will be waiting at SIGTERM"
paced grace $RATE
sleep 1
t0=$(now_ms)
kill -TERM "$PID_sr"
sleep 0.5
kill -0 "$PID_sr" 2>/dev/null ||
    fail "np-srd exited at once on SIGTERM with a session relaying"
# No new sessions, and the waiting one is gone.
sr_open alice sr "$T/refused.json" --timeout 3
[ "$RC" != 0 ] || fail "np-srd gave a new session after SIGTERM"
log "open after SIGTERM: $ERR"
run waiting-side "$SRPEER" side --session "$T/waiting.json" --side c \
    --send 10 --timeout 5
[ "$RC" != 0 ] || fail "a waiting session's side got in after SIGTERM"
finished grace 30
wait_exit "$PID_sr" 12 || fail "np-srd still running 12 s after SIGTERM"
t1=$(now_ms)
[ "$RC" = 0 ] || fail "np-srd exited $RC after SIGTERM (expected 0)"
log "SIGTERM: the relaying session finished, np-srd exited 0 after $((t1 - t0)) ms"
grep -q "session $(json_field "$T/grace.json" sid) .*end done" "$T/sr.log" ||
    fail "the session did not end 'done' during the grace time"

# ---- SIGTERM: a session longer than GraceTime is cut ----
srd_conf sr s <<CONF
Allow @alice
GraceTime 2
CONF
srd_start sr
paced cut 1048576
sleep 1
t0=$(now_ms)
kill -TERM "$PID_sr"
wait_exit "$PID_sr" 10 || fail "np-srd still running 10 s after SIGTERM (GraceTime 2)"
t1=$(now_ms)
[ "$RC" = 0 ] || fail "np-srd exited $RC at the end of GraceTime (expected 0)"
log "GraceTime 2: np-srd exited 0 after $((t1 - t0)) ms"
[ $((t1 - t0)) -ge 1500 ] ||
    fail "np-srd exited after $((t1 - t0)) ms, before GraceTime 2"
wait_exit "$PD" 5 || fail "the reader of the cut session still open"
[ "$RC" != 0 ] || fail "the cut session's reader claims success"
wait_exit "$PC" 5 || fail "the sender of the cut session still open"
grep -q "session $(json_field "$T/cut.json" sid) .*end shutdown" "$T/sr.log" ||
    fail "no 'end shutdown' log line for the cut session"

log PASS
