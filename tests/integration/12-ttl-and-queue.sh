#!/usr/bin/env bash
# Queued boxes expire with their TTL (capped by MaxTTL), and a full queue
# (QueueMax) drops the oldest box, with a log line.
. "$(dirname "$0")/../lib.sh"

server_init s
cat >"$T/s.conf" <<CONF
QueueMax 3
MaxTTL 2
CONF
server_start s -F "$T/s.conf"
enroll alice s
enroll bob s

# TTL: a box with --ttl 1, and one whose longer TTL the server caps to
# MaxTTL 2, are both gone 4 s later; a box sent after that arrives.
run s1 npas alice send --ttl 1 @bob "short-lived"
expect_rc 0 "send --ttl 1"
run s2 npas alice send --ttl 3600 @bob "capped by MaxTTL"
expect_rc 0 "send --ttl 3600"
run s0 npas alice send --ttl 0 @bob "x"
[ "$RC" != 0 ] || fail "send --ttl 0 accepted"
sleep 4
run s3 npas alice send @bob "fresh"
expect_rc 0 "send fresh"
run r1 npas bob recv --timeout 5
expect_rc 0 "bob recv"
expect_eq "@alice note fresh" "$OUT" "expired boxes are not delivered"
run r2 npas bob recv --timeout 2
expect_rc 1 "nothing else"
expect_eq "" "$OUT" "nothing else"

# QueueMax 3: five boxes queued, the two oldest dropped.
for i in 1 2 3 4 5; do
	run q$i npas alice send @bob "queued $i"
	expect_rc 0 "send queued $i"
done
run list npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=3$' \
    "$(grep '^@bob ' "$T/list.out")" "queue capped at QueueMax"
run r3 npas bob recv --count 3 --timeout 5
expect_rc 0 "bob recv --count 3"
expect_eq "@alice note queued 3
@alice note queued 4
@alice note queued 5" "$OUT" "the newest three, in order"
grep -Eqi 'drop|full|QueueMax' "$T/s.log" ||
    fail "no log line about the dropped boxes"

log PASS
