#!/usr/bin/env bash
# np rotate: pinned peers follow the rotation chain; boxes from the new key
# open; the old key no longer authenticates.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s
enroll carol s

for who in bob carol; do
	run p-$who npas "$who" lookup @alice
	expect_rc 0 "$who lookup @alice"
	expect_eq "pin: new, pinned" "$(sed -n 2p "$T/p-$who.out")" "$who pins alice"
done
oldpk=$(pubkey alice)

mkdir -p "$T/home/oldalice/.config/noports"
cp -p "$(keyfile_of alice)" "$(keyfile_of oldalice)"
cp -p "$(config_of alice)" "$(config_of oldalice)"

run rot npas alice rotate
expect_rc 0 "np rotate"
expect_match '^@alice ed25519 [A-Za-z0-9+/]{43}=$' "$OUT" "rotate prints the new key"
newpk=$(awk '{print $3}' <<<"$OUT")
[ "$newpk" != "$oldpk" ] || fail "rotate kept the same key"
[ "$(stat -c %a "$(keyfile_of alice)")" = 600 ] ||
    fail "key file mode after rotate: $(stat -c %a "$(keyfile_of alice)")"
cmp -s "$(keyfile_of alice)" "$(keyfile_of oldalice)" &&
    fail "key file unchanged after rotate"

# bob follows the rotation on lookup, then it matches.
run l1 npas bob lookup @alice
expect_rc 0 "bob lookup after rotation"
expect_eq "$newpk" "$(sed -n 1p "$T/l1.out" | awk '{print $3}')" "new key shown"
expect_eq "pin: followed rotation, re-pinned" "$(sed -n 2p "$T/l1.out")" \
    "bob follows the rotation"
run l2 npas bob lookup @alice
expect_rc 0 "bob second lookup"
expect_eq "pin: matches" "$(sed -n 2p "$T/l2.out")" "pin matches afterwards"

# Boxes from the new key open at bob, and at carol who still holds the old
# pin (recv follows the chain when it looks the sender up).
run s1 npas alice send @bob "from the new key"
expect_rc 0 "alice send to bob with the new key"
run s2 npas alice send @carol "hello carol"
expect_rc 0 "alice send to carol with the new key"
run r1 npas bob recv --timeout 10
expect_rc 0 "bob recv"
expect_eq "@alice note from the new key" "$OUT" "bob opened the box"
run r2 npas carol recv --timeout 10
expect_rc 0 "carol recv"
expect_eq "@alice note hello carol" "$OUT" "carol opened the box"
run l3 npas carol lookup @alice
expect_rc 0 "carol lookup"
expect_eq "pin: matches" "$(sed -n 2p "$T/l3.out")" "carol re-pinned on recv"

# The other way: bob's box to alice opens with alice's new key.
run s3 npas bob send @alice "reply"
expect_rc 0 "bob send to rotated alice"
run r3 npas alice recv --timeout 10
expect_rc 0 "alice recv with the new key"
expect_eq "@bob note reply" "$OUT" "alice opened bob's box"

# The old key file no longer authenticates.
run old npas oldalice send @bob "from the old key"
expect_rc 1 "send with the pre-rotation key"
expect_match '^np: ' "$ERR" "error message"
run old2 npas oldalice rotate
expect_rc 1 "rotate with the pre-rotation key"
run r4 npas bob recv --timeout 2
expect_rc 1 "nothing from the old key"
expect_eq "" "$OUT" "nothing from the old key"

# A second rotation chains: bob follows two steps at once.
run rot2 npas alice rotate
expect_rc 0 "second rotate"
run rot3 npas alice rotate
expect_rc 0 "third rotate"
newpk3=$(awk '{print $3}' "$T/rot3.out")
run l4 npas bob lookup @alice
expect_rc 0 "bob lookup after two more rotations"
expect_eq "$newpk3" "$(sed -n 1p "$T/l4.out" | awk '{print $3}')" "latest key"
expect_eq "pin: followed rotation, re-pinned" "$(sed -n 2p "$T/l4.out")" \
    "bob follows a two-step chain"

log PASS
