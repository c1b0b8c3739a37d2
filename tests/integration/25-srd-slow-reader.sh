#!/usr/bin/env bash
# A slow reader: the device side of one session stops reading for 15 s
# while its client sends 256 MiB.  np-srd must apply backpressure: its
# RSS stays within a few MiB of where it was, the sender is held back
# (still sending when the reader wakes up), and a neighbouring session
# moving 64 MiB both ways meanwhile completes in a time close to an
# unloaded run.  Then the reader drains all 256 MiB intact.
. "$(dirname "$0")/../lib.sh"
srd_require

BIG=$((256 * 1048576))
NB=$((64 * 1048576))
STALL_MS=15000
RSS_GROWTH_KB=${RSS_GROWTH_KB:-8192}
if ldd "$NPSRD" 2>/dev/null | grep -q libasan; then
	RSS_GROWTH_KB=$((RSS_GROWTH_KB + 65536))
fi
server_init s
server_start s
enroll sr s
enroll alice s
want_big=$(sr_gen $BIG 7) || fail "np-srpeer gen"

sp=$(free_port)
srd_conf sr s <<CONF
Allow @alice
SinglePort $sp
MaxSessionsPerIdentity 10
CONF
srd_start sr

# neighbour TAG: NB bytes both ways through a fresh session; sets NB_MS.
neighbour() {
	local tag=$1 pc pd t0
	sr_open alice sr "$T/$tag.json" --timeout 20
	expect_rc 0 "$tag: open"
	t0=$(now_ms)
	sr_side "$tag-c" "$T/$tag.json" c --send $NB --seed 1 --shut \
	    --expect-recv $NB --timeout 60
	pc=$BGPID
	sr_side "$tag-d" "$T/$tag.json" d --send $NB --seed 2 --shut \
	    --expect-recv $NB --timeout 60
	pd=$BGPID
	wait_exit "$pc" 70 || fail "$tag: client side hung"
	expect_rc 0 "$tag: client side ($(cat "$T/$tag-c.log"))"
	wait_exit "$pd" 70 || fail "$tag: device side hung"
	expect_rc 0 "$tag: device side ($(cat "$T/$tag-d.log"))"
	NB_MS=$(($(now_ms) - t0))
}

neighbour warm
neighbour base
base_ms=$NB_MS
rss0=$(rss_kb "$PID_sr")
log "unloaded: $((2 * NB / 1048576)) MiB in $base_ms ms; np-srd RSS $rss0 kB"

sr_open alice sr "$T/slow.json" --timeout 20
expect_rc 0 "open the slow session"
sr_side slow-c "$T/slow.json" c --send $BIG --seed 7 --shut --expect-recv 0 \
    --timeout 120
spc=$BGPID
sr_side slow-d "$T/slow.json" d --linger-ms $STALL_MS --shut \
    --expect-recv $BIG --timeout 120
spd=$BGPID
t_stall=$(now_ms)
(
	while kill -0 "$spd" 2>/dev/null; do
		rss_kb "$PID_sr"
		sleep 0.2
	done >"$T/rss.samples"
) &
sampler=$!
PIDS+=("$sampler")
sleep 2
neighbour during
during_ms=$NB_MS
log "next to the stalled reader: $((2 * NB / 1048576)) MiB in $during_ms ms (unloaded $base_ms ms)"
limit=$((base_ms * 4 + 3000))
[ "$during_ms" -le "$limit" ] ||
    fail "the neighbour took $during_ms ms next to a slow reader (limit $limit ms)"
# Still inside the stall: the sender must be held back.
el=$(($(now_ms) - t_stall))
[ "$el" -lt $((STALL_MS - 1000)) ] ||
    fail "the neighbour ran past the stall ($el ms): raise STALL_MS"
sleep $(((STALL_MS - el) / 1000 - 1))
kill -0 "$spc" 2>/dev/null ||
    fail "the sender finished 256 MiB while its reader did not read: no backpressure ($(cat "$T/slow-c.out"))"
rss_stall=$(rss_kb "$PID_sr")
log "end of the stall: sender still blocked; np-srd RSS $rss_stall kB"
wait_exit "$spd" 120 || fail "the slow reader did not finish"
expect_rc 0 "the slow reader ($(cat "$T/slow-d.log"))"
wait_exit "$spc" 30 || fail "the slow session's sender did not finish"
expect_rc 0 "the slow session's sender ($(cat "$T/slow-c.log"))"
expect_eq "$BIG" "$(side_field slow-d recv)" "bytes drained by the slow reader"
expect_eq "$want_big" "$(side_field slow-d recv_sha)" "the slow reader's data"
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
rssmax=$(sort -n "$T/rss.samples" | tail -n 1)
log "np-srd RSS: before $rss0 kB, max $rssmax kB over $(lines "$T/rss.samples") samples"
[ $((rssmax - rss0)) -le "$RSS_GROWTH_KB" ] ||
    fail "np-srd RSS grew by $((rssmax - rss0)) kB with a slow reader (limit $RSS_GROWTH_KB kB)"
sid=$(json_field "$T/slow.json" sid)
wait_for 10 grep -Eq "session $sid .*c>d $BIG d>c 0 .*end done" "$T/sr.log" ||
    fail "no 'done' log line with c>d $BIG for the slow session"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

log PASS
