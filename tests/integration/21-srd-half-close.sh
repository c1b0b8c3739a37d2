#!/usr/bin/env bash
# Half-close through np-srd: the client sends a request and shuts down
# writing; the device, after that EOF has been forwarded to it, sends its
# 1 MiB reply, which the half-closed client still receives in full.  Also
# the other way round (the device half-closes first), in both modes.
. "$(dirname "$0")/../lib.sh"
srd_require

REQ=1000
REPLY=1048576
server_init s
server_start s
enroll sr s
enroll alice s
want_req=$(sr_gen $REQ 5) || fail "np-srpeer gen"
want_reply=$(sr_gen $REPLY 6) || fail "np-srpeer gen"

# half_close TAG FIRST SECOND: FIRST (c or d) sends the request and shuts
# down at once; SECOND waits 1.5 s (the EOF has reached it by then), then
# sends the reply and shuts down.
half_close() {
	local tag=$1 first=$2 second=$3 p1 p2
	sr_open alice sr "$T/$tag.json" --timeout 20
	expect_rc 0 "$tag: open a session"
	sr_side "$tag-$first" "$T/$tag.json" "$first" --send $REQ --seed 5 \
	    --shut --expect-recv $REPLY --timeout 30
	p1=$BGPID
	sr_side "$tag-$second" "$T/$tag.json" "$second" --linger-ms 1500 \
	    --send $REPLY --seed 6 --shut --expect-recv $REQ --timeout 30
	p2=$BGPID
	wait_exit "$p1" 40 || fail "$tag: the half-closed side did not finish"
	expect_rc 0 "$tag: the half-closed side ($(cat "$T/$tag-$first.log"))"
	wait_exit "$p2" 40 || fail "$tag: the replying side did not finish"
	expect_rc 0 "$tag: the replying side ($(cat "$T/$tag-$second.log"))"
	expect_eq "$want_reply" "$(side_field "$tag-$first" recv_sha)" \
	    "$tag: the whole reply after the half-close"
	expect_eq "$want_req" "$(side_field "$tag-$second" recv_sha)" \
	    "$tag: the whole request"
	log "$tag: $first sent $REQ and shut down, then received $(side_field "$tag-$first" recv) bytes"
}

srd_conf sr s <<CONF
Allow @alice
CONF
srd_start sr
half_close eph-cd c d
half_close eph-dc d c
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

sp=$(free_port)
srd_conf sr s <<CONF
Allow @alice
SinglePort $sp
CONF
srd_start sr
half_close single-cd c d
half_close single-dc d c
srd_stop sr || fail "np-srd exited $RC on SIGTERM"
grep -c 'end done' "$T/sr.log" | grep -qx 4 ||
    fail "expected 4 sessions ending 'done' in the log"

log PASS
