#!/usr/bin/env bash
# Refusals reach the user as one clear line from np on stderr, quickly,
# with a non-zero exit and nothing on stdout: an identity the device's
# Allow line does not name (@mallory), a local user the Allow line does
# not list, a device name the identity does not serve, and an identity
# that does not exist.  The device logs its refusals.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up

# refused TAG REGEX MESSAGE COMMAND...: COMMAND fails within 15 s, with
# nothing on stdout and an "np: " line matching REGEX on stderr.
refused() {
	local tag=$1 re=$2 msg=$3 t0 t1
	shift 3
	t0=$(now_ms)
	run "$tag" timeout 30 "$@"
	t1=$(now_ms)
	[ "$RC" != 0 ] || fail "$msg: not refused ($(what))"
	[ "$RC" != 124 ] || fail "$msg: still waiting after 30 s"
	[ $((t1 - t0)) -lt 15000 ] || fail "$msg: took $((t1 - t0)) ms to refuse"
	expect_eq "" "$OUT" "$msg: nothing on stdout"
	expect_match "^np: .*($re)" "$ERR" "$msg: np's message"
	log "$msg: exit $RC in $((t1 - t0)) ms: $(grep '^np:' "$T/$tag.err" | head -n 1)"
}

# 1. An enrolled identity that Allow does not name.
"$TOP/tests/lab/client" "$LAB" mallory >"$T/mallory.out" 2>&1 ||
    fail "tests/lab/client mallory: $(cat "$T/mallory.out")"
before=$(lab_log_count np-deviced 'mallory')
refused mallory 'not allowed|refused|denied|allow' "@mallory not in Allow" \
    ssh -F "$LAB/mallory.ssh_config" -o BatchMode=yes "$LAB_HOST" true
[ "$(lab_log_count np-deviced 'mallory')" -gt "$before" ] ||
    fail "np-deviced did not log the refusal of @mallory"
# The client makes its session key before asking (the request carries its
# public half); what must not exist is an authorization on the device.
if ls "$LAB/spool"/*.key >/dev/null 2>&1; then
	fail "the device authorized a key for a refused identity: $(ls "$LAB/spool")"
fi

# 2. A local user that the Allow line does not list.
other=nobody
[ "$LAB_USER" != nobody ] || other=daemon
refused user "$other|user" "user $other not allowed" \
    ssh -F "$LAB/ssh_config" -o BatchMode=yes "$other@$LAB_HOST" true
! grep -qs "^user $other\$" "$LAB/spool"/*.key ||
    fail "the device authorized a key for user $other"

# 3. A device name that @demo does not serve.
ident=${LAB_IDENT#@}
refused nodev 'device|unknown|no such' "unknown device name" \
    ssh -F "$LAB/ssh_config" -o BatchMode=yes "nosuchdev.$ident.noports" true

# 4. An identity nobody enrolled.
refused noident 'unknown|not found|no such|not enrolled|lookup' \
    "identity that does not exist" \
    ssh -F "$LAB/ssh_config" -o BatchMode=yes nosuchdevice.noports true

# 5. np proxy straight, as ssh would run it: the same refusals, and
# nothing but relayed bytes on stdout.
refused proxy 'not allowed|refused|denied|allow' "np proxy as @mallory" \
    "$BUILD/np" -F "$LAB/mallory.conf" proxy "$LAB_HOST" 22 "$LAB_USER"

# The allowed identity and user still get in.
run ok lssh "$LAB_HOST" 'echo allowed'
expect_rc 0 "the allowed identity after the refusals"
expect_eq allowed "$OUT" "allowed session output"
log PASS
