#!/usr/bin/env bash
# Boxes survive a clean restart (SIGTERM, exit 0) and a kill -9 after the
# send returned.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s
port=$PORT_s

for i in 1 2 3; do
	run send$i npas alice send @bob "before restart $i"
	expect_rc 0 "alice send $i"
done
server_stop s TERM
rc=$?
[ "$rc" = 0 ] || fail "np-server exited $rc on SIGTERM (expected 0)"
log "stopped cleanly with SIGTERM"

run list1 npsrv list -d "$T/s"
expect_rc 0 "np-server list while stopped"
expect_match '^@bob active SHA256:[^ ]+ queued=3$' \
    "$(grep '^@bob ' "$T/list1.out")" "three boxes on disk"

server_start_on s "$port"
[ "$PORT_s" = "$port" ] || fail "restarted on port $PORT_s, not $port"
run r1 npas bob recv --count 3 --timeout 10
expect_rc 0 "bob recv after restart"
expect_eq "@alice note before restart 1
@alice note before restart 2
@alice note before restart 3" "$OUT" "all boxes after a clean restart"

# kill -9 right after send returned: the box was stored before the answer.
for i in 1 2; do
	run send-k$i npas alice send @bob "before kill $i"
	expect_rc 0 "alice send k$i"
done
kill -KILL "$PID_s"
wait "$PID_s" 2>/dev/null
log "killed with SIGKILL"
server_start_on s "$port"
run r2 npas bob recv --count 2 --timeout 10
expect_rc 0 "bob recv after kill -9"
expect_eq "@alice note before kill 1
@alice note before kill 2" "$OUT" "all boxes after kill -9"

# A box received but whose ack may be in flight when the server dies is
# delivered at most once to the user (the receiver's replay cache).
run send-k3 npas alice send @bob "around kill"
expect_rc 0 "alice send k3"
run r3 npas bob recv --count 1 --timeout 10
expect_rc 0 "bob recv k3"
expect_eq "@alice note around kill" "$OUT" "k3 received"
kill -KILL "$PID_s"
wait "$PID_s" 2>/dev/null
server_start_on s "$port"
run r4 npas bob recv --timeout 2
expect_rc 1 "nothing more after the second kill"
expect_eq "" "$OUT" "no box shown twice"

# The identities survived too.
run list2 npsrv list -d "$T/s"
expect_eq 2 "$(grep -c ' active ' "$T/list2.out")" "both still active"

log PASS
