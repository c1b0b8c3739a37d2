#!/usr/bin/env bash
# Data-plane authentication of np-srd: a wrong token, a garbage line and
# the other side's token are refused with "NPSR1 ERR" and do not burn the
# session; a used token and a third connection to a used endpoint are
# refused; a side after the session's deadline is refused; a side whose
# peer never comes is closed at the deadline and the session is freed.
. "$(dirname "$0")/../lib.sh"
srd_require

server_init s
server_start s
enroll sr s
enroll alice s

# flip_token LINE: the same line with the token's first character changed.
flip_token() {
	local line=$1 tok head c
	tok=${line##* }
	head=${line% *}
	c=${tok:0:1}
	if [ "$c" = A ]; then c=B; else c=A; fi
	printf '%s %s%s' "$head" "$c" "${tok:1}"
}

# expect_err ANSWER MESSAGE: np-srd refused with an ERR line.
expect_err() {
	case $1 in
	"NPSR1 ERR "*) log "$2: refused ($1)" ;;
	*) fail "$2: expected 'NPSR1 ERR ...', got [$1]" ;;
	esac
}

# refused ANSWER MESSAGE: an ERR line, or no listener at all.
expect_refused() {
	case $1 in
	"NPSR1 ERR "* | CONNREFUSED | EOF) log "$2: refused ($1)" ;;
	*) fail "$2: expected a refusal, got [$1]" ;;
	esac
}

# pair TAG FILE: both sides exchange 64 KiB; both must succeed.
pair() {
	local tag=$1 f=$2 pc pd
	sr_side "$tag-c" "$f" c --send 65536 --seed 1 --shut \
	    --expect-recv 65536 --timeout 20
	pc=$BGPID
	sr_side "$tag-d" "$f" d --send 65536 --seed 2 --shut \
	    --expect-recv 65536 --timeout 20
	pd=$BGPID
	wait_exit "$pc" 30 || fail "$tag: client side hung"
	expect_rc 0 "$tag: client side ($(cat "$T/$tag-c.log"))"
	wait_exit "$pd" 30 || fail "$tag: device side hung"
	expect_rc 0 "$tag: device side ($(cat "$T/$tag-d.log"))"
}

# ---- A: fresh ports per session ----
srd_conf sr s <<CONF
Allow @alice
SessionTimeout 30
CONF
srd_start sr
sr_open alice sr "$T/a.json" --timeout 20
expect_rc 0 "open session a"
cport=$(json_field "$T/a.json" client.port)
dport=$(json_field "$T/a.json" device.port)
cline=$(sr_line "$T/a.json" c)
dline=$(sr_line "$T/a.json" d)
expect_err "$(raw_try "$cport" "$(flip_token "$cline")")" "wrong token"
expect_err "$(raw_try "$cport" "NPSR1 garbage")" "garbage line"
expect_err "$(raw_try "$cport" "$dline")" \
    "the device's line on the client's endpoint"
expect_err "$(raw_try "$dport" "$cline")" \
    "the client's line on the device's endpoint"
long=$(printf 'NPSR1 %0200d' 0)
expect_refused "$(raw_try "$cport" "$long")" "a 200-byte line"
# None of that burnt the session: the real sides still get through.
pair a "$T/a.json"
# Used tokens and used endpoints are refused.
expect_refused "$(raw_try "$cport" "$cline")" "the used client token again"
expect_refused "$(raw_try "$dport" "$dline")" "the used device token again"

# A third connection while both sides are in.
sr_open alice sr "$T/b.json" --timeout 20
expect_rc 0 "open session b"
sr_side b-c "$T/b.json" c --linger-ms 3000 --send 1000 --seed 1 --shut \
    --expect-recv 1000 --timeout 20
bc=$BGPID
sr_side b-d "$T/b.json" d --linger-ms 3000 --send 1000 --seed 2 --shut \
    --expect-recv 1000 --timeout 20
bd=$BGPID
sid=$(json_field "$T/b.json" sid)
wait_for 10 grep -q "session $sid: relaying" "$T/sr.log" ||
    fail "session b not relaying"
expect_refused "$(raw_try "$(json_field "$T/b.json" client.port)" \
    "$(sr_line "$T/b.json" c)")" "a third connection (client endpoint)"
expect_refused "$(raw_try "$(json_field "$T/b.json" device.port)" \
    "$(sr_line "$T/b.json" d)")" "a third connection (device endpoint)"
wait_exit "$bc" 30 || fail "session b client hung"
expect_rc 0 "session b client after the third connections"
wait_exit "$bd" 30 || fail "session b device hung"
expect_rc 0 "session b device after the third connections"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

# ---- B: single port: the token line picks the session ----
sp=$(free_port)
srd_conf sr s <<CONF
Allow @alice
SinglePort $sp
SessionTimeout 30
CONF
srd_start sr
sr_open alice sr "$T/c.json" --timeout 20
expect_rc 0 "open session c"
sr_open alice sr "$T/c2.json" --timeout 20
expect_rc 0 "open session c2"
cline=$(sr_line "$T/c.json" c)
dline=$(sr_line "$T/c.json" d)
expect_err "$(raw_try "$sp" "$(flip_token "$cline")")" "single: wrong token"
# c2's client token with c's session id, and the other way round.
c2tok=$(json_field "$T/c2.json" client.token)
expect_err "$(raw_try "$sp" "NPSR1 $(json_field "$T/c.json" sid) c $c2tok")" \
    "single: another session's token"
expect_err "$(raw_try "$sp" "NPSR1 $(printf '%032d' 0) c $c2tok")" \
    "single: an unknown session id"
expect_err "$(raw_try "$sp" "${cline/ c / d }")" \
    "single: the client's token as the device"
sr_side c-c "$T/c.json" c --send 65536 --seed 1 --shut --expect-recv 65536 \
    --timeout 20
ccpid=$BGPID
sid=$(json_field "$T/c.json" sid)
wait_for 10 grep -q "session $sid: client side in" "$T/sr.log" ||
    fail "single: client side of c not in"
expect_err "$(raw_try "$sp" "$cline")" "single: the used client token"
sr_side c-d "$T/c.json" d --send 65536 --seed 2 --shut --expect-recv 65536 \
    --timeout 20
cdpid=$BGPID
wait_exit "$ccpid" 30 || fail "single: client side hung"
expect_rc 0 "single: client side ($(cat "$T/c-c.log"))"
wait_exit "$cdpid" 30 || fail "single: device side hung"
expect_rc 0 "single: device side ($(cat "$T/c-d.log"))"
expect_err "$(raw_try "$sp" "$dline")" "single: the used device token"
pair c2 "$T/c2.json"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

# ---- C: deadlines (SessionTimeout 2) ----
for mode in eph single; do
	{
		echo "Allow @alice"
		echo "SessionTimeout 2"
		[ $mode = single ] && echo "SinglePort $sp"
	} | srd_conf sr s
	srd_start sr
	# Late: both sides come after the deadline.
	sr_open alice sr "$T/late-$mode.json" --timeout 20
	expect_rc 0 "$mode: open the late session"
	sid=$(json_field "$T/late-$mode.json" sid)
	wait_for 10 grep -q "session $sid .*end expired" "$T/sr.log" ||
	    fail "$mode: session $sid did not expire within 10 s"
	run late-$mode "$SRPEER" side --session "$T/late-$mode.json" --side c \
	    --send 10 --timeout 10
	[ "$RC" != 0 ] || fail "$mode: a side after the deadline was accepted"
	log "$mode: late side refused: $ERR"
	expect_refused "$(raw_try "$(json_field "$T/late-$mode.json" \
	    device.port)" "$(sr_line "$T/late-$mode.json" d)")" \
	    "$mode: late device token"
	# Lonely: the client comes, the device never does.
	fds0=$(ls "/proc/$PID_sr/fd" | wc -l)
	sr_open alice sr "$T/lonely-$mode.json" --timeout 20
	expect_rc 0 "$mode: open the lonely session"
	sid=$(json_field "$T/lonely-$mode.json" sid)
	t0=$(now_ms)
	sr_side lonely-$mode "$T/lonely-$mode.json" c --send 1000 --timeout 30
	lp=$BGPID
	wait_exit "$lp" 10 || fail "$mode: the lonely side was not closed at the deadline"
	t1=$(now_ms)
	log "$mode: lonely side closed after $((t1 - t0)) ms (exit $RC: $(cat "$T/lonely-$mode.log" | tr '\n' ' '))"
	wait_for 5 grep -q "session $sid .*end expired" "$T/sr.log" ||
	    fail "$mode: no 'expired' log line for the lonely session"
	log "$mode: $(grep "session $sid .*end" "$T/sr.log" | tail -n 1)"
	wait_for 5 eval 'test "$(ls "/proc/$PID_sr/fd" | wc -l)" -le "$fds0"' ||
	    fail "$mode: np-srd holds $(ls "/proc/$PID_sr/fd" | wc -l) fds after the expiry (before: $fds0)"
	srd_stop sr || fail "np-srd exited $RC on SIGTERM"
done

log PASS
