#!/usr/bin/env bash
# A client whose key file holds another key for the same name (keygen
# --force after enrollment) cannot authenticate; the real key still can.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s

key=$(keyfile_of alice)
[ -f "$key" ] || fail "no key file at $key"
cp -p "$key" "$T/alice-real.key"

# keygen refuses to overwrite without --force.
run kg1 npas alice keygen @alice
[ "$RC" != 0 ] || fail "keygen overwrote a key without --force"
cmp -s "$key" "$T/alice-real.key" || fail "refused keygen changed the key"

run kg2 npas alice keygen --force @alice
expect_rc 0 "keygen --force"
newpk=$(awk '{print $3}' <<<"$OUT")
[ -n "$newpk" ] && [ "$newpk" != "$(pubkey alice)" ] ||
    fail "keygen --force did not make a new key: $OUT"

for cmd in "send @bob impostor" "lookup @bob" "recv --timeout 3"; do
	# shellcheck disable=SC2086
	run wrong npas alice $cmd
	expect_rc 1 "np $cmd with the wrong key"
	expect_match '^np: .*(auth|key|denied|refused|reject)' "$ERR" \
	    "clear authentication error for np $cmd"
	expect_nomatch 'timed out' "$ERR" "refused, not timed out"
done

# Nothing reached bob, and the directory still has alice's real key.
run l1 npas bob lookup @alice
expect_rc 0 "bob lookup @alice"
expect_eq "$(pubkey alice)" "$(sed -n 1p "$T/l1.out" | awk '{print $3}')" \
    "the server kept alice's enrolled key"

# The real key still works.
cp -p "$T/alice-real.key" "$key"
chmod 0600 "$key"
run s1 npas alice send @bob "the real alice"
expect_rc 0 "send with the real key"
run r1 npas bob recv --timeout 10
expect_rc 0 "bob recv"
expect_eq "@alice note the real alice" "$OUT" "only the real box arrived"

grep -Eqi 'auth' "$T/s.log" ||
    log "note: the server log has no line mentioning auth failures"
log PASS
