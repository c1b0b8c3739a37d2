#!/usr/bin/env bash
# np-server revoke: live connections closed, auth refused, lookups say
# revoked; re-enrollment with a new token and a new key makes peers that
# pinned the old key refuse it until np pin --forget.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
enroll alice s
enroll bob s
enroll carol s

# carol pins bob's first key.
run l0 npas carol lookup @bob
expect_rc 0 "carol lookup @bob"
expect_eq "pin: new, pinned" "$(sed -n 2p "$T/l0.out")" "carol pins bob"
oldpk=$(pubkey bob)

# A token issued before the revocation must die with it.
run tpre npsrv token -d "$T/s" @bob
pretok=
[ "$RC" = 0 ] && pretok=$OUT

# bob listens; the first box proves his monitor is live.
bg bobrecv npas bob recv --count 2 --timeout 60
recvpid=$BGPID
run s1 npas alice send @bob "first"
expect_rc 0 "alice send"
wait_for 10 grep -q 'first' "$T/bobrecv.out" ||
    fail "bob's recv did not show the first box: $(cat "$T/bobrecv.out" "$T/bobrecv.log")"

t0=$(now_ms)
run rv npsrv revoke -d "$T/s" @bob
expect_rc 0 "np-server revoke"
wait_exit "$recvpid" 5 ||
    fail "bob's live recv still running 5 s after the revocation"
t1=$(now_ms)
[ "$RC" != 0 ] || fail "bob's recv exited 0 after revocation"
log "bob's recv exited $RC $((t1 - t0)) ms after revoke: $(tail -n 1 "$T/bobrecv.log")"
grep -q '^np: ' "$T/bobrecv.log" || fail "no np: error from the closed recv"

# Further auth is refused with a revoked message.
for cmd in "send @alice still-here?" "recv --timeout 3" "lookup @alice"; do
	# shellcheck disable=SC2086
	run rb npas bob $cmd
	expect_rc 1 "np $cmd as revoked bob"
	expect_match '^np: .*revoked' "$ERR" "revoked message for np $cmd"
done

# Others see it revoked.
run la npas alice lookup @bob
[ "$RC" != 0 ] || fail "lookup of a revoked identity succeeded: $(what)"
expect_match 'revoked' "$OUT $ERR" "lookup says revoked"
run sa npas alice send @bob "to a revoked name"
[ "$RC" != 0 ] || fail "send to a revoked identity succeeded"
run list1 npsrv list -d "$T/s"
expect_match '^@bob revoked ' "$(grep '^@bob ' "$T/list1.out")" "listed revoked"
expect_match '^@alice active ' "$(grep '^@alice ' "$T/list1.out")" "alice untouched"

# The pre-revocation token is dead.
if [ -n "$pretok" ]; then
	npas bob keygen --force @bob >/dev/null || fail "keygen"
	run e0 npas bob enroll @bob --token "$pretok" \
	    --server "127.0.0.1:$PORT_s" --fingerprint "$FP_s"
	expect_rc 1 "token issued before the revocation"
fi

# A new token re-enrolls @bob with a new key.
npas bob keygen --force @bob >"$T/bob.pub" || fail "keygen --force"
newpk=$(pubkey bob)
[ "$newpk" != "$oldpk" ] || fail "same key after keygen --force"
tok=$(npsrv token -d "$T/s" @bob) || fail "token after revoke"
run e1 npas bob enroll @bob --token "$tok" --server "127.0.0.1:$PORT_s" \
    --fingerprint "$FP_s"
expect_rc 0 "re-enrollment after revocation"
run list2 npsrv list -d "$T/s"
expect_match '^@bob active ' "$(grep '^@bob ' "$T/list2.out")" "active again"

# carol pinned the old key: KEY CHANGED, exit 1, pin untouched.
for i in 1 2; do
	run l1 npas carol lookup @bob
	expect_rc 1 "carol lookup after re-enrollment ($i)"
	expect_eq "$newpk" "$(sed -n 1p "$T/l1.out" | awk '{print $3}')" \
	    "lookup shows the new key"
	expect_match '^pin: KEY CHANGED' "$(sed -n 2p "$T/l1.out")" \
	    "KEY CHANGED ($i)"
done
run sc npas carol send @bob "must not go"
expect_rc 1 "carol send with a changed key"
expect_match 'KEY CHANGED|changed' "$OUT $ERR" "send refuses the changed key"

# A person re-pins.
run pf npas carol pin --forget @bob
expect_rc 0 "np pin --forget"
run l2 npas carol lookup @bob
expect_rc 0 "carol lookup after forget"
expect_eq "pin: new, pinned" "$(sed -n 2p "$T/l2.out")" "pinned again"
run sc2 npas carol send @bob "hello new bob"
expect_rc 0 "carol send after re-pinning"
run rb2 npas bob recv --timeout 10
expect_rc 0 "new bob recv"
expect_eq "@carol note hello new bob" "$OUT" "new bob got carol's box"

log PASS
