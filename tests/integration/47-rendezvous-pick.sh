#!/usr/bin/env bash
# Several rendezvous, the nearest chosen (issue 9). Besides the lab's
# @sr, three np-srd (@sr_eu, @sr_us, @sr_ap) in single-port mode, each
# behind an np-delay line (5, 40 and 80 ms each way: its PublicHost is
# the delay line's address), and a client config naming them slowest
# first: `Rendezvous @sr_ap @sr_us @sr_eu`. The first session probes all
# three, and the device reports its own probes (np -v says so, with the
# times), and takes @sr_eu (its log has the session); the next one uses
# the cached choice without probing;
# np ping prints one line per rendezvous, @sr_eu chosen, and the relay
# line for it. @sr_eu killed: the next session waits RendezvousTimeout
# for it, then takes @sr_us; the one after goes to @sr_us at once (the
# cache puts @sr_eu last). A malformed cache is measured anew. np doctor
# checks all three; np ping without the device still measures them. A
# rendezvous that grants but cannot be joined (its data port gone): the
# same ssh goes through the next. Sessions at once without a cache:
# one measures, the others use its result. Plain ssh through the lab's own
# single @sr works throughout.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
DELAY=$BUILD/tools/np-delay
[ -x "$DELAY" ] || fail "$DELAY missing: run make tools"
# The device connects to the rendezvous hosts it is told only when its
# RendezvousHost names them: the delay lines' addresses too.
export LAB_DEVICED_EXTRA="RendezvousHost 127.0.2.1 127.0.2.2 127.0.2.3"
lab_up
export SSH_LIMIT=60

# One np-srd + delay line per region: srd on 127.0.1.N, the delay line
# on 127.0.2.N (the PublicHost the clients are told), the same port.
declare -A SRD_PID DELAY_PID
region() {
	local name=$1 n=$2 ms=$3 port pid
	BUILD=$BUILD "$LABBIN/client" "$LAB" "$name" >"$T/enroll-$name.out" 2>&1 ||
	    fail "enrolling @$name: $(cat "$T/enroll-$name.out")"
	port=$(free_port) || fail "no free port"
	cat >"$T/$name.srd.conf" <<-CONF
	Identity @$name
	IdentityFile $LAB/clients/$name/identity.key
	Server $LAB_CLOUD_ADDR:$SERVER_PORT
	ServerFingerprint $SERVER_FP
	KnownIdentities $LAB/clients/$name/srd_known_identities
	ListenAddress 127.0.1.$n
	PublicHost 127.0.2.$n
	SinglePort $port
	SessionTimeout 10
	Allow *
	LogLevel debug
	CONF
	bg "$name-srd" "$BUILD/np-srd" -F "$T/$name.srd.conf" -D
	SRD_PID[$name]=$BGPID
	bg "$name-delay" "$DELAY" -l "127.0.2.$n" "$port" "127.0.1.$n" "$port" "$ms"
	DELAY_PID[$name]=$BGPID
	wait_for 15 grep -q 'connected to .* as @' "$T/$name-srd.log" ||
	    fail "np-srd @$name did not connect"
	wait_for 5 grep -q '^ready ' "$T/$name-delay.out" ||
	    fail "np-delay for @$name did not start"
}
region sr_eu 1 5
region sr_us 2 40
region sr_ap 3 80

CONF=$T/np.conf
sed 's/^Rendezvous @sr$/Rendezvous @sr_ap @sr_us @sr_eu/' "$LAB/client.conf" >"$CONF"
printf 'RendezvousTimeout 3\nSessionTimeout 8\n' >>"$CONF"
chmod 0600 "$CONF"
grep -q '^Rendezvous @sr_ap @sr_us @sr_eu$' "$CONF" || fail "no Rendezvous list in $CONF"
CACHE=$LAB/rendezvous-demo.cache
SSHCONF=$T/ssh_config
sed "s|-F $LAB/client.conf proxy|-v -F $CONF proxy|" "$LAB/ssh_config" >"$SSHCONF"
grep -q -- "-v -F $CONF proxy %h %p %r" "$SSHCONF" || fail "ssh config not rewritten"

# pssh TAG: one session through the several-rendezvous config; np's -v
# steps are in $T/TAG.err.
pssh() {
	lab_in client timeout 60 ssh -F "$SSHCONF" -o BatchMode=yes "$LAB_HOST" \
	    echo "hello-$1" >"$T/$1.sout" 2>"$T/$1.err" ||
	    fail "ssh ($1) failed: $(tail -n 20 "$T/$1.err")"
	expect_eq "hello-$1" "$(cat "$T/$1.sout")" "ssh ($1) output"
}
# done_sessions NAME: sessions np-srd @NAME relayed to their end.
done_sessions() {
	grep -c 'session .* requester @client .* end done' "$T/$1-srd.log" || true
}
# plain: ssh through the lab's own single @sr, as before.
plain() {
	local out
	out=$(lssh "$LAB_HOST" echo plain-ok 2>"$T/plain.err") ||
	    fail "plain ssh failed: $(cat "$T/plain.err")"
	expect_eq plain-ok "$out" "plain ssh"
	expect_nomatch 'probe' "$(cat "$T/plain.err")" "plain ssh: no probes"
}

# 1. Plain ssh (one Rendezvous: no probing), and no cache made by it.
plain
[ ! -e "$CACHE" ] || fail "a single Rendezvous wrote $CACHE"

# 2. The first session probes the three and takes @sr_eu.
pssh s1
ERRTXT=$(cat "$T/s1.err")
D='[0-9]+ ms \+ device [0-9]+ ms'
expect_match "probed 3 rendezvous in [0-9]+ ms: @sr_eu $D, @sr_us $D, @sr_ap $D; chose @sr_eu \\(" \
    "$ERRTXT" "np -v: probe step (with the device's round trips)"
expect_match 'rendezvous @sr_eu granted the session' "$ERRTXT" "np -v: @sr_eu used"
eu=$(printf '%s\n' "$ERRTXT" | sed -En 's/.*: @sr_eu ([0-9]+) ms \+ device ([0-9]+) ms, @sr_us ([0-9]+) ms \+ device ([0-9]+) ms, @sr_ap ([0-9]+) ms \+ device ([0-9]+) ms;.*/\1 \2 \3 \4 \5 \6/p')
read -r t_eu d_eu t_us d_us t_ap d_ap <<<"$eu"
log "probe round trips (ours, the device's): @sr_eu $t_eu $d_eu ms, @sr_us $t_us $d_us ms, @sr_ap $t_ap $d_ap ms"
[ "$t_us" -ge 80 ] && [ "$t_ap" -ge 160 ] && [ "$t_eu" -lt "$t_us" ] &&
    [ "$d_us" -ge 80 ] && [ "$d_ap" -ge 160 ] && [ "$d_eu" -lt "$d_us" ] ||
    fail "round trips not as the delay lines make them: $eu"
grep -q 'pong to @client: 3 of 3 rendezvous answered our probe' "$LAB/logs/np-deviced.log" ||
    fail "np-deviced did not log its probes"
wait_for 10 eval '[ "$(done_sessions sr_eu)" = 1 ]' ||
    fail "@sr_eu did not log the session: $(tail -n 5 "$T/sr_eu-srd.log")"
expect_eq 0 "$(done_sessions sr_us)" "@sr_us sessions"
expect_eq 0 "$(done_sessions sr_ap)" "@sr_ap sessions"
grep -q 'probe from [0-9.]*:[0-9]*: pong' "$T/sr_us-srd.log" ||
    fail "@sr_us logged no probe"

# The cache: 0600, the ranking.
[ -f "$CACHE" ] || fail "no cache file $CACHE"
expect_eq 600 "$(stat -c %a "$CACHE")" "cache file mode"
expect_match '^np-rendezvous-cache 1 [0-9]+$' "$(head -n 1 "$CACHE")" "cache header"
expect_eq "@sr_eu @sr_us @sr_ap" "$(sed -n '2,$p' "$CACHE" | awk '{print $1}' | xargs)" \
    "cache ranking"

# 3. The next session: the cached choice, no probes.
pssh s2
ERRTXT=$(cat "$T/s2.err")
expect_match 'rendezvous @sr_eu, the cached choice' "$ERRTXT" "np -v: cached"
expect_nomatch 'probed' "$ERRTXT" "np -v: no probing with a fresh cache"
wait_for 10 eval '[ "$(done_sessions sr_eu)" = 2 ]' || fail "@sr_eu did not log session 2"

# 4. np ping: a line per rendezvous, best first, and the relay line.
run ping lab_in client timeout 60 "$BUILD/np" -F "$CONF" ping "$LAB_HOST"
expect_rc 0 "np ping"
expect_match '^demo\.noports \(@demo\): np-deviced ' "$OUT" "ping: device line"
expect_match '^rendezvous @sr_eu: probe round trip [0-9]+ ms, device [0-9]+ ms \(chosen\)$' "$OUT" "ping: @sr_eu chosen"
expect_match '^rendezvous @sr_us: probe round trip [0-9]+ ms, device [0-9]+ ms$' "$OUT" "ping: @sr_us line"
expect_match '^rendezvous @sr_ap: probe round trip [0-9]+ ms, device [0-9]+ ms$' "$OUT" "ping: @sr_ap line"
expect_match '^relay @sr_eu: granted 127\.0\.2\.1:[0-9]+ in [0-9]+ ms, connect\+token round trip [0-9]+ ms$' \
    "$OUT" "ping: relay line"
expect_eq 3 "$(printf '%s\n' "$OUT" | grep -c '^rendezvous @')" "ping: rendezvous lines"
plain

# np doctor checks each of them.
run doctor lab_in client timeout 60 "$BUILD/np" -F "$CONF" doctor
expect_rc 0 "np doctor"
for sr in sr_ap sr_us sr_eu; do
	expect_match "^OK   rendezvous @$sr answers: granted 127\.0\.2\.[0-9]:[0-9]+ in " "$OUT" "doctor: @$sr"
done
expect_eq 3 "$(printf '%s\n' "$OUT" | grep -c '^OK   relay endpoint ')" "doctor: relay endpoints"

# 5. A probe without a valid ticket gets no PONG.
port_eu=$(awk '/^SinglePort/{print $2}' "$T/sr_eu.srd.conf")
ans=$(printf 'NPSR1 PROBE %s\n' "$(head -c 48 /dev/zero | base64 -w0 | tr '+/' '-_' | tr -d =)" |
    timeout 5 bash -c "exec 3<>/dev/tcp/127.0.1.1/$port_eu; cat >&3; head -n 1 <&3")
expect_eq "NPSR1 ERR bad ticket" "$ans" "probe with a forged ticket"

# 6. @sr_eu down: RendezvousTimeout, then @sr_us.
kill "${SRD_PID[sr_eu]}"
wait_exit "${SRD_PID[sr_eu]}" 10 || fail "np-srd @sr_eu did not exit"
t0=$(now_ms)
pssh s3
el=$(($(now_ms) - t0))
ERRTXT=$(cat "$T/s3.err")
expect_match 'rendezvous @sr_eu: no answer in time; trying @sr_us' "$ERRTXT" "np -v: fallback"
expect_match 'rendezvous @sr_us granted the session' "$ERRTXT" "np -v: @sr_us used"
[ "$el" -ge 3000 ] || fail "the fallback took $el ms, less than RendezvousTimeout"
wait_for 10 eval '[ "$(done_sessions sr_us)" = 1 ]' ||
    fail "@sr_us did not log the session: $(tail -n 5 "$T/sr_us-srd.log")"
expect_eq "@sr_us @sr_ap @sr_eu" "$(sed -n '2,$p' "$CACHE" | awk '{print $1}' | xargs)" \
    "cache ranking after the fallback"

# 7. The next session goes to @sr_us at once.
pssh s4
ERRTXT=$(cat "$T/s4.err")
expect_match 'rendezvous @sr_us, the cached choice' "$ERRTXT" "np -v: cached @sr_us"
expect_nomatch 'trying' "$ERRTXT" "np -v: no fallback"
wait_for 10 eval '[ "$(done_sessions sr_us)" = 2 ]' || fail "@sr_us did not log session 4"

# 8. A malformed cache is ignored and rebuilt: probes again, @sr_eu
# (down) does not answer, @sr_us chosen.
echo "garbage" >"$CACHE"
pssh s5
ERRTXT=$(cat "$T/s5.err")
expect_match "probed 3 rendezvous in [0-9]+ ms: @sr_us $D, @sr_ap $D, @sr_eu no answer; chose @sr_us \\(" \
    "$ERRTXT" "np -v: probe after a malformed cache"
expect_match '^np-rendezvous-cache 1 ' "$(head -n 1 "$CACHE")" "cache rebuilt"
wait_for 10 eval '[ "$(done_sessions sr_us)" = 3 ]' || fail "@sr_us did not log session 5"
plain

# 8b. A rendezvous identity the server does not know is left out (its
# error on stderr), the others still serve; RendezvousCache 0: no cache.
CONF2=$T/np2.conf
sed -e 's/^Rendezvous .*/Rendezvous @sr_nobody @sr_ap @sr_us/' "$CONF" >"$CONF2"
echo "RendezvousCache 0" >>"$CONF2"
chmod 0600 "$CONF2"
sed "s|-v -F $CONF proxy|-v -F $CONF2 proxy|" "$SSHCONF" >"$T/ssh_config2"
rm -f "$CACHE"
out=$(lab_in client timeout 60 ssh -F "$T/ssh_config2" -o BatchMode=yes "$LAB_HOST" \
    echo hello-s6 2>"$T/s6.err") || fail "ssh (s6) failed: $(tail -n 20 "$T/s6.err")"
expect_eq hello-s6 "$out" "ssh (s6) output"
ERRTXT=$(cat "$T/s6.err")
expect_match '@sr_nobody' "$ERRTXT" "s6: the unknown identity's error"
expect_match "probed 3 rendezvous in [0-9]+ ms: @sr_us $D, @sr_ap $D, @sr_nobody no answer; chose @sr_us \\(" \
    "$ERRTXT" "s6: measured without it"
expect_match 'rendezvous @sr_us granted the session' "$ERRTXT" "s6: @sr_us used"
[ ! -e "$CACHE" ] || fail "RendezvousCache 0 wrote $CACHE"
wait_for 10 eval '[ "$(done_sessions sr_us)" = 4 ]' || fail "@sr_us did not log session 6"

# 9. np-deviced stopped: np ping exits 1, and still measures the
# rendezvous (ours only) and tries the relay of the chosen one.
for sr in sr_us sr_ap; do
	kill -0 "${DELAY_PID[$sr]}" 2>/dev/null || fail "np-delay for @$sr is gone"
done
lab_kill np-deviced TERM
run ping2 lab_in client timeout 60 "$BUILD/np" -F "$CONF" ping "$LAB_HOST"
expect_rc 1 "np ping without the device"
expect_match 'no answer from @demo within 8 s' "$ERR" "ping: the device's error"
expect_match '^rendezvous @sr_us: probe round trip [0-9]+ ms \(chosen\)$' "$OUT" "ping: @sr_us chosen, ours only"
expect_match '^rendezvous @sr_eu: FAIL: no answer within 3 s$' "$OUT" "ping: @sr_eu down"
expect_match '^relay @sr_us: granted ' "$OUT" "ping: relay line for @sr_us"

# 10. A rendezvous that grants the session but cannot be joined: @sr_us
# answers over the control plane, its data port (the delay line) is
# gone. The session is set up again through the next, @sr_ap, in the
# same ssh, and the cache puts @sr_us last.
lab_restart np-deviced
rm -f "$CACHE"
pssh s7
expect_match 'rendezvous @sr_us granted the session' "$(cat "$T/s7.err")" "s7: @sr_us used"
wait_for 10 eval '[ "$(done_sessions sr_us)" = 5 ]' || fail "@sr_us did not log session 7"
expect_eq "@sr_us" "$(sed -n '2p' "$CACHE" | awk '{print $1}')" "cache: @sr_us first"
kill "${DELAY_PID[sr_us]}"
wait_exit "${DELAY_PID[sr_us]}" 10 || fail "np-delay for @sr_us did not exit"
pssh s8
ERRTXT=$(cat "$T/s8.err")
expect_match 'rendezvous @sr_us, the cached choice' "$ERRTXT" "s8: cached @sr_us"
expect_match 'rendezvous @sr_us: cannot join the rendezvous at 127\.0\.2\.2 port [0-9]+: .*; trying @sr_ap' \
    "$ERRTXT" "s8: the join failed, the next asked"
expect_match 'rendezvous @sr_ap granted the session' "$ERRTXT" "s8: @sr_ap used"
expect_nomatch 'demo.noports: cannot join' "$ERRTXT" "s8: no error printed for the fallback"
wait_for 10 eval '[ "$(done_sessions sr_ap)" = 1 ]' ||
    fail "@sr_ap did not log session 8: $(tail -n 5 "$T/sr_ap-srd.log")"
expect_eq "@sr_ap @sr_eu @sr_us" "$(sed -n '2,$p' "$CACHE" | awk '{print $1}' | xargs)" \
    "cache ranking after the failed join"
plain

# 11. Four sessions at once and no cache: one measures (it takes
# RendezvousTimeout, @sr_eu being down), the others wait on the cache's
# lock and use its result; the device is asked for its probes once.
rm -f "$CACHE"
pongs0=$(grep -c 'pong to @client' "$LAB/logs/np-deviced.log")
ap0=$(done_sessions sr_ap)
pids=()
for i in 1 2 3 4; do
	lab_in client timeout 60 ssh -F "$SSHCONF" -o BatchMode=yes "$LAB_HOST" \
	    echo "hello-p$i" >"$T/p$i.sout" 2>"$T/p$i.err" &
	pids+=($!)
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fail "ssh (p$i) failed: $(tail -n 20 "$T/p$i.err")"
	expect_eq "hello-p$i" "$(cat "$T/p$i.sout")" "ssh (p$i) output"
done
expect_eq 1 "$(cat "$T"/p[1-4].err | grep -c 'probed 3 rendezvous')" \
    "parallel sessions: one measured"
expect_eq 3 "$(cat "$T"/p[1-4].err | grep -c 'rendezvous @sr_ap, the cached choice')" \
    "parallel sessions: three used its result"
log "parallel sessions: $(cat "$T"/p[1-4].err | grep -c 'waiting for its result') of 3 waited for the measuring one"
expect_eq $((pongs0 + 1)) "$(grep -c 'pong to @client' "$LAB/logs/np-deviced.log")" \
    "parallel sessions: the device probed once"
wait_for 10 eval '[ "$(done_sessions sr_ap)" = $((ap0 + 4)) ]' ||
    fail "@sr_ap did not log the four sessions"
log "ok"
