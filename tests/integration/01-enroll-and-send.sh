#!/usr/bin/env bash
# Enroll @alice and @bob, send boxes both ways, check lookup and pinning,
# and that np-server list shows both identities active.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s
log "server on port $PORT_s, alice and bob enrolled"

# The keygen lines have the documented shape.
expect_match '^@alice ed25519 [A-Za-z0-9+/]{43}=$' "$(cat "$T/alice.pub")" \
    "keygen output"
[ -f "$(config_of alice)" ] || fail "enroll did not write alice's config"

# Lookup prints the key the other side generated, then pins it.
run l1 npas alice lookup @bob
expect_rc 0 "alice lookup @bob"
first=$(sed -n 1p "$T/l1.out")
second=$(sed -n 2p "$T/l1.out")
expect_match '^@bob ed25519 [A-Za-z0-9+/]{43}= SHA256:[A-Za-z0-9+/]{43}$' \
    "$first" "lookup line"
expect_eq "$(pubkey bob)" "$(awk '{print $3}' <<<"$first")" \
    "lookup shows bob's own key"
expect_eq "pin: new, pinned" "$second" "first lookup pins"
bob_fp=$(awk '{print $4}' <<<"$first")
run l2 npas alice lookup @bob
expect_rc 0 "second lookup"
expect_eq "$first" "$(sed -n 1p "$T/l2.out")" "same key on second lookup"
expect_eq "pin: matches" "$(sed -n 2p "$T/l2.out")" "second lookup matches"
run l3 npas bob lookup @alice
expect_rc 0 "bob lookup @alice"
expect_eq "pin: new, pinned" "$(sed -n 2p "$T/l3.out")" "bob pins alice"

# Queued delivery: alice -> bob while bob is not listening.
run s1 npas alice send @bob "hello bob, how are you?"
expect_rc 0 "alice send"
expect_match '^[0-9a-f]{32}$' "$OUT" "send prints a message id"
mid1=$OUT
run list1 npsrv list -d "$T/s"
expect_rc 0 "np-server list"
expect_match "^@bob active $(re_quote "$bob_fp") queued=1\$" "$OUT" "bob has one queued box"
run r1 npas bob recv --count 1 --timeout 10
expect_rc 0 "bob recv"
expect_eq "@alice note hello bob, how are you?" "$OUT" "bob got alice's text"

# Live delivery the other way, with a type and a ttl; control characters
# are shown as '?'.
bg alicerecv npas alice recv --count 2 --timeout 20
arecv=$BGPID
sleep 1
run s2 npas bob send --type chat --ttl 60 @alice "hi alice"
expect_rc 0 "bob send"
expect_match '^[0-9a-f]{32}$' "$OUT" "send prints a message id"
[ "$OUT" != "$mid1" ] || fail "two sends got the same message id"
run s3 npas bob send @alice $'tab\there\x1b[31m'
expect_rc 0 "bob send with control characters"
wait_exit "$arecv" 15 || fail "alice's recv did not finish"
expect_rc 0 "alice recv"
expect_eq "@bob chat hi alice
@bob note tab?here?[31m" "$(cat "$T/alicerecv.out")" "alice got bob's texts"

# Both active, nothing left queued.
run list2 npsrv list -d "$T/s"
expect_rc 0 "np-server list"
expect_eq 2 "$(grep -c . "$T/list2.out")" "two identities listed"
expect_match "^@alice active SHA256:[A-Za-z0-9+/]{43} queued=0\$" \
    "$(grep '^@alice ' "$T/list2.out")" "alice listed active"
expect_match "^@bob active $(re_quote "$bob_fp") queued=0\$" \
    "$(grep '^@bob ' "$T/list2.out")" "bob listed active"

# An unknown identity is an error.
run l4 npas alice lookup @nobody
expect_rc 1 "lookup of an unknown identity"
expect_match '^np: ' "$ERR" "error message prefix"
run s4 npas alice send @nobody "x"
expect_rc 1 "send to an unknown identity"

log PASS
