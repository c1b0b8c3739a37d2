#!/usr/bin/env bash
# 20 `ssh demo.noports` sessions started at once all log in, run their
# command and exit 0 with their own output (each session has its own
# key, rendezvous session and relay; the proxy's key and known_hosts
# writes are safe when they overlap).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up
N=${SSH_PARALLEL:-20}

t0=$(now_ms)
pids=()
for i in $(seq 1 "$N"); do
	bg "s$i" lssh "$LAB_HOST" "echo session-$i; head -c 100000 /dev/zero | wc -c; sleep 1"
	pids+=("$BGPID")
done
bad=0
for i in $(seq 1 "$N"); do
	wait_exit "${pids[$((i - 1))]}" 90 || fail "session $i did not finish in 90 s"
	if [ "$RC" != 0 ] || [ "$(cat "$T/s$i.out")" != "$(printf 'session-%s\n100000' "$i")" ]; then
		log "session $i: exit $RC, out [$(cat "$T/s$i.out")], err [$(cat "$T/s$i.log")]"
		bad=$((bad + 1))
	fi
done
t1=$(now_ms)
[ "$bad" = 0 ] || fail "$bad of $N parallel sessions failed"
log "$N parallel sessions ok in $((t1 - t0)) ms"

# The lab is still healthy: one more session, and known_hosts was not
# corrupted by the concurrent writes.
run after lssh "$LAB_HOST" 'echo still-ok'
expect_rc 0 "a session after the parallel ones"
expect_eq still-ok "$OUT" "output after the parallel ones"
while read -r line; do
	[ -z "$line" ] && continue
	expect_match '^[^ ]+ ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+( .*)?$' "$line" \
	    "known_hosts line"
done <"$LAB/known_hosts"
log PASS
