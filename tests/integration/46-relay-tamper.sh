#!/usr/bin/env bash
# Relay stream encryption against a byte-flipping filter in the relay
# path (tests/tools/np-tamper between both peers and np-srd): np-srd
# listens on 127.0.0.2 and hands out 127.0.0.1, where the filter sits.
#  - Untouched, a tunnel carries its payload both ways intact and the
#    plaintext never appears on the wire; with --no-relay-encryption
#    (and the device's PermitPlainTunnel) it does: the filter sees it.
#  - A flipped byte at many offsets, on either peer's leg and in either
#    direction, or a stream cut short, ends the connection with an error
#    naming what broke; what was delivered is always a prefix of what was
#    sent, never a changed byte.
#  - ssh sessions are encrypted by default (np-deviced logs the cipher)
#    and a flipped byte there is caught by the records; RelayEncryption
#    no in the client config makes them plain, and leaves a tunnel
#    encrypted.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
command -v socat >/dev/null || skip "socat not installed (scripts/install-deps)"
TAMPER=$BUILD/tools/np-tamper
[ -x "$TAMPER" ] || fail "$TAMPER missing: run make tools"

SINK=$(free_port)
SRC=$(free_port)
SRP=$(free_port)
# The payload: random bytes with a plaintext marker between them.
for i in $(seq 1 40); do
	head -c 8000 /dev/urandom
	echo "NOPORTS-PLAINTEXT-MARKER-$i"
done >"$T/payload"
mkdir -p "$T/recv"
# The device's services: a sink keeping each connection's bytes in a
# file of its own, and a source sending the payload.
socat -u TCP-LISTEN:"$SINK",bind=127.0.0.1,fork,reuseaddr \
    SYSTEM:"cat >$T/recv/c.\$\$" >"$T/sink.log" 2>&1 &
PIDS+=($!)
socat TCP-LISTEN:"$SRC",bind=127.0.0.1,fork,reuseaddr \
    OPEN:"$T/payload",rdonly >"$T/src.log" 2>&1 &
PIDS+=($!)

LAB_DEVICED_EXTRA="PermitOpen 127.0.0.1:$SINK 127.0.0.1:$SRC
PermitPlainTunnel yes" lab_up
NP="$BUILD/np -F $LAB/client.conf"
OUT= ERR=
# tcp_listening PORT: something listens on PORT where the client runs
# (without connecting: np tunnel --once would take the probe as its one
# connection).
tcp_listening() {
	lab_in client ss -Hltn "sport = :$1" | grep -q .
}
# np-srd on 127.0.0.2, one port; peers are told 127.0.0.1 (the filter).
sed -i -e 's/^ListenAddress .*/ListenAddress 127.0.0.2/' "$LAB/sr/srd.conf"
echo "SinglePort $SRP" >>"$LAB/sr/srd.conf"
lab_kill np-srd TERM
lab_restart np-srd

TPID=
# filter ARGS...: (re)start np-tamper 127.0.0.1:SRP -> 127.0.0.2:SRP.
filter() {
	[ -z "$TPID" ] || { kill "$TPID" 2>/dev/null; wait "$TPID" 2>/dev/null; }
	"$TAMPER" 127.0.0.1 "$SRP" 127.0.0.2 "$SRP" "$@" >"$T/tamper.out" \
	    2>"$T/tamper.log" &
	TPID=$!
	PIDS+=("$TPID")
	wait_for 10 grep -q '^ready' "$T/tamper.out" || fail "np-tamper did not start"
}

# is_prefix FILE: FILE is a (possibly empty) prefix of the payload.
is_prefix() {
	local n
	n=$(stat -c %s "$1")
	cmp -s -n "$n" "$1" "$T/payload"
}

# up_once TAG [np tunnel options]: the payload to the sink through a
# tunnel (--once); RC is np's exit status, $T/TAG.log its stderr, and
# RECV the file the sink wrote.
up_once() {
	local tag=$1 lp before before_names
	shift
	lp=$(free_port)
	before=$(ls "$T/recv" | wc -l)
	before_names=$(ls "$T/recv")
	bg "$tag" $NP tunnel "$LAB_HOST" -L "$lp:127.0.0.1:$SINK" --once -q "$@"
	local np=$BGPID
	wait_for 10 tcp_listening "$lp" || fail "$tag: np tunnel did not listen"
	timeout 30 socat -u OPEN:"$T/payload",rdonly TCP:127.0.0.1:"$lp" \
	    2>/dev/null
	wait_exit "$np" 30 || fail "$tag: np tunnel did not exit"
	wait_for 10 eval "[ \$(ls '$T/recv' | wc -l) -gt $before ]" ||
	    fail "$tag: the sink saw no connection"
	# the new file (ls -t could name one still being written), once its
	# size holds still: the sink's socat can close before its cat has
	# written all of it.
	RECV=$T/recv/$(ls "$T/recv" | grep -vxF -f <(printf '%s\n' "$before_names") | head -n 1)
	wait_for 10 settled "$RECV" || fail "$tag: the sink's file keeps growing"
}

# settled FILE: FILE's size is the same 0.3 s later.
settled() {
	local a
	a=$(stat -c %s "$1") || return 1
	sleep 0.3
	[ "$a" = "$(stat -c %s "$1")" ]
}

# down_once TAG [np tunnel options]: the source's payload to us through a
# tunnel; RC is np's exit status, $T/TAG.got what came.
down_once() {
	local tag=$1 lp
	shift
	lp=$(free_port)
	bg "$tag" $NP tunnel "$LAB_HOST" -L "$lp:127.0.0.1:$SRC" --once -q "$@"
	local np=$BGPID
	wait_for 10 tcp_listening "$lp" || fail "$tag: np tunnel did not listen"
	timeout 30 socat -u TCP:127.0.0.1:"$lp" CREATE:"$T/$tag.got" 2>/dev/null
	wait_exit "$np" 30 || fail "$tag: np tunnel did not exit"
}

# 1. Untouched: intact both ways, and no plaintext on the wire.
filter --dump "$T/wire"
up_once clean
expect_eq 0 "$RC" "clean upload: np exit ($(cat "$T/clean.log"))"
cmp -s "$RECV" "$T/payload" || fail "clean upload arrived different: $(ls -l "$T/recv") $(cat "$T/clean.log")"
down_once cleand
expect_eq 0 "$RC" "clean download: np exit ($(cat "$T/cleand.log"))"
cmp -s "$T/cleand.got" "$T/payload" || fail "clean download arrived different"
[ "$(stat -c %s "$T/wire")" -gt 600000 ] || fail "the filter saw too little: $(stat -c %s "$T/wire")"
grep -q NOPORTS-PLAINTEXT-MARKER "$T/wire" && fail "plaintext on the wire of an encrypted tunnel"
lab_log_has "$LAB" np-deviced 0 "tunnel to 127.0.0.1 port $SINK accepted.*relay aes-256-gcm" ||
    fail "np-deviced did not log the cipher"
# The same plain: the marker is there, so its absence above means
# something.
rm -f "$T/wire"
filter --dump "$T/wire"
up_once plain --no-relay-encryption
expect_eq 0 "$RC" "plain upload: np exit ($(cat "$T/plain.log"))"
cmp -s "$RECV" "$T/payload" || fail "plain upload arrived different"
grep -q NOPORTS-PLAINTEXT-MARKER "$T/wire" || fail "the filter does not see the wire (no marker in plain mode)"
lab_log_has "$LAB" np-deviced 0 "tunnel to 127.0.0.1 port $SINK accepted.*relay none" ||
    fail "np-deviced did not log the plain tunnel"
# ChaCha20-Poly1305 when the client asks for it.
echo "RelayCipher chacha20-poly1305" >>"$LAB/client.conf"
down_once chacha
expect_eq 0 "$RC" "chacha download: np exit ($(cat "$T/chacha.log"))"
cmp -s "$T/chacha.got" "$T/payload" || fail "chacha download arrived different"
lab_log_has "$LAB" np-deviced 0 "relay chacha20-poly1305" ||
    fail "np-deviced did not use chacha20-poly1305"
sed -i '/^RelayCipher/d' "$LAB/client.conf"

# 2. Flips on the client's leg going up (the device catches them) and
# coming down (np catches them), and on the device's leg.
OFFS="0 1 2 3 4 5 19 20 23 24 25 1000 32791 32792 32795 32812 32815 65600 131000 250000"
n=0
for off in $OFFS; do
	filter --side c --dir up --flip "$off"
	up_once "u$off"
	expect_eq 1 "$RC" "flip up at $off: np exit ($(cat "$T/u$off.log"))"
	is_prefix "$RECV" || fail "flip up at $off: the sink got changed bytes"
	[ "$(stat -c %s "$RECV")" -lt "$(stat -c %s "$T/payload")" ] ||
	    fail "flip up at $off: everything was delivered"
	expect_match "relay stream from the device broken|connection to the device lost" \
	    "$(cat "$T/u$off.log")" "flip up at $off: np says the stream broke"
	n=$((n + 1))
done
c=$(lab_log_count np-deviced "error on rendezvous side: (a relay record failed authentication|bad relay record header)")
[ "$c" -ge "$n" ] || fail "np-deviced logged $c authentication failures for $n flips"
for off in $OFFS; do
	filter --side c --dir down --flip "$off"
	down_once "d$off"
	expect_eq 1 "$RC" "flip down at $off: np exit"
	is_prefix "$T/d$off.got" || fail "flip down at $off: changed bytes delivered"
	expect_match "relay stream from the device broken: (a relay record failed authentication|bad relay record header)" \
	    "$(cat "$T/d$off.log")" "flip down at $off: the reason"
done
for off in 0 4 24 40000 200000; do
	filter --side d --dir up --flip "$off"
	down_once "dd$off"
	expect_eq 1 "$RC" "flip on the device's leg at $off: np exit"
	is_prefix "$T/dd$off.got" || fail "device leg flip at $off: changed bytes delivered"
	expect_match "failed authentication|bad relay record header" \
	    "$(cat "$T/dd$off.log")" "device leg flip at $off: the reason"
done

# 3. Cut short anywhere (also right before the final record): caught as
# truncation, what came is a prefix.
rm -f "$T/wire"
filter --dump "$T/wire"
down_once cleand2
cmp -s "$T/cleand2.got" "$T/payload" || fail "second clean download differs"
w=$(($(stat -c %s "$T/wire") - 20)) # the down stream: all but our final
ncut=0
for cut in 0 3 30 32000 100000 200000 $((w - 21)) $((w - 20)) $((w - 1)); do
	filter --side c --dir down --cut "$cut"
	down_once "t$cut"
	is_prefix "$T/t$cut.got" || fail "cut at $cut: changed bytes delivered"
	# The record layout varies from run to run (records are what one
	# read gave the sealer), so a cut near the end may fall past it.
	if ! grep -q "cut at $cut" "$T/tamper.log"; then
		expect_eq 0 "$RC" "no cut at $cut (the stream was shorter): np exit"
		cmp -s "$T/t$cut.got" "$T/payload" || fail "uncut stream at $cut differs"
		continue
	fi
	ncut=$((ncut + 1))
	expect_eq 1 "$RC" "cut at $cut: np exit"
	expect_match "truncated|connection to the device lost" "$(cat "$T/t$cut.log")" \
	    "cut at $cut: the reason"
done
# The six early ones always do; the three near the end may not.
[ "$ncut" -ge 6 ] || fail "only $ncut of 9 cuts fell inside the stream"

# 4. ssh: by default np's records carry ssh's banner and key exchange
# (the first 64 KiB each way), then ssh's own transport the rest.  A flip
# in the records is caught by np, one past them by ssh; with
# RelayEncryption full np's records catch that one too.
filter
run s1 lssh "$LAB_HOST" 'echo ssh-ok'
expect_eq ssh-ok "$OUT" "ssh through the filter"
lab_log_has "$LAB" np-deviced 0 "user $LAB_USER device .*accepted.*relay aes-256-gcm over ssh's handshake" ||
    fail "ssh session not encrypted over its handshake by default"
head -c 2000000 /dev/urandom >"$T/big"
n0=$(lab_lines "$LAB/logs/np-deviced.log")
filter --side c --dir up --flip 3000
run s2 lssh "$LAB_HOST" 'cat >/dev/null' <"$T/big"
[ "$RC" != 0 ] || fail "ssh survived a flipped byte in the records"
expect_match "relay stream from the device broken|connection to the device lost|Connection closed|Broken pipe" \
    "$ERR" "ssh's error after a flip"
wait_for 10 lab_log_has "$LAB" np-deviced "$n0" "failed authentication" ||
    fail "np-deviced did not catch the flip in the records: $(tail -5 "$LAB/logs/np-deviced.log")"
n0=$(lab_lines "$LAB/logs/np-deviced.log")
filter --side c --dir up --flip 1000000
run s2b lssh "$LAB_HOST" 'cat >/dev/null' <"$T/big"
[ "$RC" != 0 ] || fail "ssh survived a flipped byte past the handoff"
# sshd's MAC check ends it; the device's other direction (few bytes, so
# still in records) may then end without its final record, which np
# reports as truncated.
expect_match "message authentication code incorrect|Corrupted MAC|Connection closed|closed by remote host|Broken pipe|connection to the device lost|truncated" \
    "$ERR" "ssh's error after a flip past the handoff"
lab_log_has "$LAB" np-deviced "$n0" "failed authentication" &&
    fail "np's records saw a flip past the handoff (the records should be over)"
# RelayEncryption full: np's records all the way, the late flip is theirs.
cp "$LAB/client.conf" "$T/client.conf.orig"
echo "RelayEncryption full" >>"$LAB/client.conf"
n0=$(lab_lines "$LAB/logs/np-deviced.log")
filter --side c --dir up --flip 1000000
run s2c lssh "$LAB_HOST" 'cat >/dev/null' <"$T/big"
[ "$RC" != 0 ] || fail "ssh (RelayEncryption full) survived a flipped byte"
wait_for 10 lab_log_has "$LAB" np-deviced "$n0" "failed authentication" ||
    fail "np-deviced did not catch the late flip with RelayEncryption full"
lab_log_has "$LAB" np-deviced "$n0" "user $LAB_USER device .*accepted.*relay aes-256-gcm, " ||
    lab_log_has "$LAB" np-deviced "$n0" "user $LAB_USER device .*accepted.*relay aes-256-gcm$" ||
    fail "RelayEncryption full still handed off"
cp "$T/client.conf.orig" "$LAB/client.conf"
# RelayEncryption no: ssh's own encryption only.
filter
echo "RelayEncryption no" >>"$LAB/client.conf"
# ...which leaves tunnels alone: still records, no plaintext on the wire.
n0=$(lab_lines "$LAB/logs/np-deviced.log")
rm -f "$T/wire"
filter --dump "$T/wire"
down_once renc
expect_eq 0 "$RC" "tunnel with RelayEncryption no: np exit ($(cat "$T/renc.log"))"
cmp -s "$T/renc.got" "$T/payload" || fail "tunnel with RelayEncryption no: download differs"
grep -q NOPORTS-PLAINTEXT-MARKER "$T/wire" &&
    fail "RelayEncryption no made a tunnel plain: the marker is on the wire"
lab_log_has "$LAB" np-deviced "$n0" "tunnel to 127\.0\.0\.1 port $SRC accepted.*relay aes-256-gcm\$" ||
    fail "RelayEncryption no: np-deviced did not log an aes-256-gcm tunnel: $(tail -n +"$((n0 + 1))" "$LAB/logs/np-deviced.log")"
filter
run s3 lssh "$LAB_HOST" 'echo plain-ssh-ok'
expect_eq plain-ssh-ok "$OUT" "ssh with RelayEncryption no"
lab_log_has "$LAB" np-deviced 0 "user $LAB_USER device .*accepted.*relay none" ||
    fail "RelayEncryption no did not switch the records off"
log PASS
