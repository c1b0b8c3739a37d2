#!/usr/bin/env bash
# np-server exits 0 on SIGTERM and on SIGINT while clients are connected,
# within a bound, and loses nothing.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s
port=$PORT_s

for sig in TERM INT; do
	# bob monitors (proved live by one box), alice holds a connection
	# open with a recv of her own.
	bg bobrecv-$sig npas bob recv --count 2 --timeout 60
	bobpid=$BGPID
	bg alicerecv-$sig npas alice recv --count 1 --timeout 60
	alicepid=$BGPID
	run s1 npas alice send @bob "before SIG$sig"
	expect_rc 0 "alice send"
	wait_for 10 grep -q "before SIG$sig" "$T/bobrecv-$sig.out" ||
	    fail "bob did not get the box before SIG$sig"

	t0=$(now_ms)
	server_stop s "$sig"
	rc=$?
	t1=$(now_ms)
	[ "$rc" = 0 ] || fail "np-server exited $rc on SIG$sig (expected 0)"
	[ $((t1 - t0)) -le 5000 ] ||
	    fail "np-server took $((t1 - t0)) ms to exit on SIG$sig"
	log "SIG$sig: exit 0 in $((t1 - t0)) ms with clients connected"

	# The clients' reaction is theirs to choose (exit or reconnect); note
	# it and stop them.
	for p in "$bobpid" "$alicepid"; do
		if wait_exit "$p" 5; then
			log "a client recv exited $RC after SIG$sig"
		else
			log "a client recv still running 5 s after SIG$sig"
			kill "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done

	server_start_on s "$port"
done

# Nothing lost and nothing repeated across the two stops.
run s2 npas alice send @bob "after"
expect_rc 0 "send after restarts"
run r1 npas bob recv --timeout 10
expect_rc 0 "bob recv after restarts"
expect_eq "@alice note after" "$OUT" "only the new box"

log PASS
