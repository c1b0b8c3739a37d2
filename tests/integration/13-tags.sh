#!/usr/bin/env bash
# Reply tags on the real server: two processes of one identity monitoring
# with different tags each get only their own boxes; an untagged monitor
# gets only untagged ones; 40 boxes for a tag nobody monitors delay no
# one; a process that never acks cannot stall another of its identity.
. "$(dirname "$0")/../lib.sh"

TAGTEST=$BUILD/tools/np-tagtest
[ -x "$TAGTEST" ] || fail "$TAGTEST missing: run make tools"

server_init s
server_start s
enroll alice s
enroll bob s

# tt WHO ARGS...: np-tagtest as WHO.
tt() {
	local who=$1
	shift
	timeout "${NP_LIMIT:-30}" env -u NP_CONFIG HOME="$T/home/$who" \
	    "$TAGTEST" -F "$(config_of "$who")" "$@"
}

# rx TAG WHO ARGS...: a background receiver; waits until it monitors.
rx() {
	local tag=$1
	shift
	bg "$tag" tt "$@"
	wait_for 10 grep -q monitoring "$T/$tag.log" ||
	    fail "$tag: receiver did not start ($(cat "$T/$tag.log"))"
}

# Boxes queued before anyone monitors: tagged and untagged, interleaved.
run q1 tt alice send @bob -t aaa1 -n 3 -p a
expect_rc 0 "send tagged aaa1 ($ERR)"
run q2 tt alice send @bob -n 2 -p u
expect_rc 0 "send untagged ($ERR)"
run q3 tt alice send @bob -t bbb2 -n 2 -p b
expect_rc 0 "send tagged bbb2 ($ERR)"

rx ra bob recv -t aaa1 -n 5 -w 20 -l 1000
ra=$BGPID
rx rb bob recv -t bbb2 -n 4 -w 20 -l 1000
rb=$BGPID
rx ru bob recv -n 3 -w 20 -l 1000
ru=$BGPID

# Live boxes, while all three monitor.
run l1 tt alice send @bob -t aaa1 -n 2 -p la
expect_rc 0 "send live aaa1 ($ERR)"
run l2 tt alice send @bob -t bbb2 -n 2 -p lb
expect_rc 0 "send live bbb2 ($ERR)"
run l3 tt alice send @bob -n 1 -p lu
expect_rc 0 "send live untagged ($ERR)"

for p in ra rb ru; do
	pid=${!p}
	wait_exit "$pid" 25 || fail "$p did not finish"
	expect_rc 0 "$p ($(cat "$T/$p.log"))"
done
expect_eq "aaa1 a-1
aaa1 a-2
aaa1 a-3
aaa1 la-1
aaa1 la-2" "$(cat "$T/ra.out")" "tag aaa1 got exactly its boxes, in order"
expect_eq "bbb2 b-1
bbb2 b-2
bbb2 lb-1
bbb2 lb-2" "$(cat "$T/rb.out")" "tag bbb2 got exactly its boxes, in order"
expect_eq "- u-1
- u-2
- lu-1" "$(cat "$T/ru.out")" "untagged monitor got only untagged boxes"
run list1 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=0$' \
    "$(grep '^@bob ' "$T/list1.out")" "everything acked"

# 40 boxes for a tag nobody monitors, then one for a live tag: it arrives
# at once, and the 40 stay queued for their tag.
run g1 tt alice send @bob -t ghost -n 40 -p g
expect_rc 0 "send 40 for ghost ($ERR)"
rx rl bob recv -t live7 -n 1 -w 10 -l 300
rl=$BGPID
t0=$(now_ms)
run l4 tt alice send @bob -t live7 -n 1 -p fresh
expect_rc 0 "send live7 ($ERR)"
wait_exit "$rl" 12 || fail "live7 receiver did not finish"
expect_rc 0 "live7 receiver ($(cat "$T/rl.log"))"
t1=$(now_ms)
expect_eq "live7 fresh-1" "$(cat "$T/rl.out")" "live7 got only its box"
[ $((t1 - t0)) -lt 5000 ] || fail "live7 box took $((t1 - t0)) ms"
run list2 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=40$' \
    "$(grep '^@bob ' "$T/list2.out")" "ghost boxes still queued"
# An untagged monitor does not see them either.
run r0 tt bob recv -n 0 -w 2
expect_rc 0 "untagged recv"
expect_eq "" "$OUT" "untagged monitor sees no tagged box"
# Their owner gets them all, in order.
run rg tt bob recv -t ghost -n 40 -w 15 -l 500
expect_rc 0 "ghost recv ($ERR)"
expect_eq 40 "$(grep -c '^ghost g-' "$T/rg.out")" "40 ghost boxes"
expect_eq "$(seq 1 40 | sed 's/^/ghost g-/')" "$OUT" "ghost boxes in order"

# A process that never acks (window of 32 full) must not stall another
# process of the same identity and tag: the other's acks free its window.
rx rk bob recv -n 0 -w 30 -k
rk=$BGPID
run u1 tt alice send @bob -n 40 -p w
expect_rc 0 "send 40 untagged ($ERR)"
run rw tt bob recv -n 40 -w 15 -l 300
expect_rc 0 "acking receiver ($ERR)"
expect_eq 40 "$(grep -c '^- w-' "$T/rw.out")" "acking receiver got 40"
run u2 tt alice send @bob -n 1 -p after
expect_rc 0 "send after ($ERR)"
wait_for 10 grep -q '^- after-1$' "$T/rk.out" ||
    fail "the non-acking receiver stalled: $(tail -n 3 "$T/rk.out")"
kill "$rk" 2>/dev/null
# The non-acker's boxes stay queued (at least once) except those acked.
run list3 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=1$' \
    "$(grep '^@bob ' "$T/list3.out")" "only the un-acked 'after' box left"

log PASS
