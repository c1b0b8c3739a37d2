#!/usr/bin/env bash
# @bob is offline while @alice sends three boxes; bob gets all three later,
# in order, and a second recv gets nothing (acked boxes are gone and nothing
# is shown twice).
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s

for w in one two three; do
	run send-$w npas alice send @bob "message $w"
	expect_rc 0 "alice send $w"
	expect_match '^[0-9a-f]{32}$' "$OUT" "message id"
done
run list1 npsrv list -d "$T/s"
expect_rc 0 "np-server list"
expect_match '^@bob active SHA256:[^ ]+ queued=3$' \
    "$(grep '^@bob ' "$T/list1.out")" "three boxes queued for bob"

run r1 npas bob recv --count 3 --timeout 10
expect_rc 0 "bob recv --count 3"
expect_eq "@alice note message one
@alice note message two
@alice note message three" "$OUT" "bob got the three boxes in order"

run list2 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=0$' \
    "$(grep '^@bob ' "$T/list2.out")" "acked boxes deleted on the server"

t0=$(now_ms)
run r2 npas bob recv --timeout 2
t1=$(now_ms)
expect_rc 1 "second recv finds nothing"
expect_eq "" "$OUT" "nothing shown twice"
expect_match '^np: timed out' "$ERR" "timeout message"
[ $((t1 - t0)) -ge 1500 ] && [ $((t1 - t0)) -le 8000 ] ||
    fail "recv --timeout 2 took $((t1 - t0)) ms"

# One more box after that arrives alone.
run s4 npas alice send @bob "message four"
expect_rc 0 "alice send four"
run r3 npas bob recv --timeout 10
expect_rc 0 "bob recv (default count 1)"
expect_eq "@alice note message four" "$OUT" "only the new box"

# The replay cache outlives the process: the server is rolled back to a
# copy of its data taken before bob acked (so it pushes the same boxes
# again), and bob's next recv shows none of them.
port=$PORT_s
for w in five six; do
	run send-$w npas alice send @bob "message $w"
	expect_rc 0 "alice send $w"
done
server_stop s TERM || fail "np-server did not exit 0 on SIGTERM"
cp -a "$T/s" "$T/s-snapshot"
server_start_on s "$port"
run r4 npas bob recv --count 2 --timeout 10
expect_rc 0 "bob recv five and six"
expect_eq "@alice note message five
@alice note message six" "$OUT" "five and six"
server_stop s TERM || fail "np-server did not exit 0 on SIGTERM"
rm -rf "$T/s"
mv "$T/s-snapshot" "$T/s"
run list3 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=2$' \
    "$(grep '^@bob ' "$T/list3.out")" "the rolled-back server has both again"
server_start_on s "$port"
run r5 npas bob recv --timeout 3
expect_rc 1 "replayed boxes are not shown"
expect_eq "" "$OUT" "nothing shown twice across runs"
run list4 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=0$' \
    "$(grep '^@bob ' "$T/list4.out")" "the dropped duplicates were acked"

log PASS
