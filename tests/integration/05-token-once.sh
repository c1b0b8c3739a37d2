#!/usr/bin/env bash
# Enrollment tokens: one use, one name, an expiry, and no re-enrollment of
# a bound name.
. "$(dirname "$0")/../lib.sh"

server_init s
server_start s
srv=127.0.0.1:$PORT_s

# try_enroll WHO NAME TOKEN: keygen NAME in WHO's home (forced), enroll.
try_enroll() {
	npas "$1" keygen --force "@$2" >"$T/$1-$2.pub" ||
	    fail "keygen @$2 for $1"
	run "enroll-$1-$2" npas "$1" enroll "@$2" --token "$3" \
	    --server "$srv" --fingerprint "$FP_s"
}

run t1 npsrv token -d "$T/s" @alice
expect_rc 0 "token @alice"
tok=$OUT
expect_match '^[^ ]{16,128}$' "$tok" "a token alone on stdout"
try_enroll alice alice "$tok"
expect_rc 0 "first enrollment with the token"
expect_eq "enrolled @alice at $srv" "$OUT" "enroll output"

# Same token, another name.
try_enroll carol carol "$tok"
expect_rc 1 "token reused for another name"
expect_match '^np: .*token' "$ERR" "clear token error"
[ ! -e "$(config_of carol)" ] || fail "failed enrollment wrote a config"

# Same token, same name again (another key).
try_enroll alice2 alice "$tok"
expect_rc 1 "token reused for the same name"
expect_match '^np: ' "$ERR" "error message"

# A token for @x does not enroll @y.
run t2 npsrv token -d "$T/s" @x
expect_rc 0 "token @x"
try_enroll y y "$OUT"
expect_rc 1 "token for @x used by @y"
expect_match '^np: .*token' "$ERR" "clear token error"

# A garbage token.
try_enroll z z "not-a-real-token"
expect_rc 1 "made-up token"

# An expired token.
run t3 npsrv token -d "$T/s" --ttl 1 @eve
expect_rc 0 "token --ttl 1 @eve"
etok=$OUT
sleep 2
try_enroll eve eve "$etok"
expect_rc 1 "expired token"
expect_match '^np: .*(token|expired)' "$ERR" "clear expiry error"

# A bound name cannot be re-enrolled, even with a fresh token.
run t4 npsrv token -d "$T/s" @alice
if [ "$RC" = 0 ]; then
	try_enroll alice3 alice "$OUT"
	expect_rc 1 "fresh token for the bound @alice"
	expect_match '^np: ' "$ERR" "error message"
else
	log "np-server token refuses a bound name: $ERR"
	expect_rc 1 "np-server token for a bound name"
fi

# After all that, @alice still has the first key, and @carol, @x, @y, @z,
# @eve were never enrolled.
run l1 npas alice lookup @alice
expect_rc 0 "alice lookup @alice"
expect_eq "$(awk '{print $3}' "$T/alice-alice.pub")" \
    "$(sed -n 1p "$T/l1.out" | awk '{print $3}')" "alice keeps her first key"
run list npsrv list -d "$T/s"
expect_rc 0 "np-server list"
expect_eq "@alice" "$(awk '{print $1}' "$T/list.out" | tr '\n' ' ' | sed 's/ $//')" \
    "only @alice is enrolled"
expect_match '^@alice active ' "$OUT" "alice active"

log PASS
