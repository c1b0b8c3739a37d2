#!/usr/bin/env bash
# Two test peers get endpoints from np-srd through the control plane and
# move 64 MiB both ways at once through one session; each side receives
# exactly the other's stream (sha256).  Once with a fresh pair of ports
# per session, once in single-port mode.  np-srd logs the session with
# the byte counts.
. "$(dirname "$0")/../lib.sh"
srd_require

SIZE=${SRD_TEST_BYTES:-67108864}
server_init s
server_start s
enroll sr s
enroll alice s
want_c=$(sr_gen "$SIZE" 11) || fail "np-srpeer gen"
want_d=$(sr_gen "$SIZE" 22) || fail "np-srpeer gen"

# check_session TAG: the session in $T/TAG.json moves SIZE bytes both
# ways, within 120 s.
check_session() {
	local tag=$1 cpid dpid t0 t1 sid
	sr_open alice sr "$T/$tag.json" --peer @dev --timeout 20
	expect_rc 0 "$tag: open a session"
	sid=$(json_field "$T/$tag.json" sid) || fail "$tag: no sid in $OUT"
	t0=$(now_ms)
	sr_side "$tag-c" "$T/$tag.json" c --send "$SIZE" --seed 11 --shut
	cpid=$BGPID
	sr_side "$tag-d" "$T/$tag.json" d --send "$SIZE" --seed 22 --shut
	dpid=$BGPID
	wait_exit "$cpid" 120 || fail "$tag: client side did not finish in 120 s"
	expect_rc 0 "$tag: client side ($(cat "$T/$tag-c.log"))"
	wait_exit "$dpid" 120 || fail "$tag: device side did not finish in 120 s"
	expect_rc 0 "$tag: device side ($(cat "$T/$tag-d.log"))"
	t1=$(now_ms)
	expect_eq "$SIZE" "$(side_field "$tag-c" sent)" "$tag: client sent"
	expect_eq "$SIZE" "$(side_field "$tag-d" sent)" "$tag: device sent"
	expect_eq "$SIZE" "$(side_field "$tag-c" recv)" "$tag: client received"
	expect_eq "$SIZE" "$(side_field "$tag-d" recv)" "$tag: device received"
	expect_eq "$want_c" "$(side_field "$tag-c" sent_sha)" "$tag: client stream"
	expect_eq "$want_d" "$(side_field "$tag-d" sent_sha)" "$tag: device stream"
	expect_eq "$want_d" "$(side_field "$tag-c" recv_sha)" \
	    "$tag: client got the device's bytes"
	expect_eq "$want_c" "$(side_field "$tag-d" recv_sha)" \
	    "$tag: device got the client's bytes"
	log "$tag: $((2 * SIZE / 1048576)) MiB through session $sid in $((t1 - t0)) ms"
	wait_for 10 grep -Eq "session $sid .*c>d $SIZE d>c $SIZE .*end done" \
	    "$T/sr.log" || fail "$tag: no session log line with the byte counts"
	log "$tag: $(grep -E "session $sid .*end" "$T/sr.log" | tail -n 1)"
}

# 1. Ephemeral ports.
srd_conf sr s <<CONF
Allow @alice
CONF
srd_start sr
check_session eph
# The session's ports are closed once it is done.
cport=$(json_field "$T/eph.json" client.port)
dport=$(json_field "$T/eph.json" device.port)
[ "$cport" != "$dport" ] || fail "ephemeral mode gave one port to both sides"
if ss -Hltn "sport = :$cport or sport = :$dport" | grep -q .; then
	fail "ports $cport/$dport still listening after the session"
fi
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

# 2. Single-port mode.
sp=$(free_port)
srd_conf sr s <<CONF
Allow @alice
SinglePort $sp
CONF
srd_start sr
check_session single
expect_eq "$sp" "$(json_field "$T/single.json" client.port)" "single port (client)"
expect_eq "$sp" "$(json_field "$T/single.json" device.port)" "single port (device)"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

log PASS
