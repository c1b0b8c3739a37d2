#!/usr/bin/env bash
# ssh through an np-server fleet: two instances on one PostgreSQL (the
# same Store and TLS key, each its own port).  The device and np-srd are
# on instance 1, the client on instance 2, and `ssh demo.noports` works
# (the session's boxes cross instances).  Then instance 1 is killed
# (kill -9): the device and np-srd move to instance 2 by their Server
# lists, and ssh works again within a bound (60 s; what it took is
# printed).  Skipped (77) when no PostgreSQL or no sshd can run here.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
. "$TOP/tests/pglib.sh"
lab_require
pg_start "$T/pg" || skip "$PG_WHY"
LAB_SERVER_STORE=$NP_TEST_PG_URI lab_up
grep -q 'store: postgresql' "$LAB/logs/np-server.log" ||
    fail "instance 1 does not use PostgreSQL"
P1=$SERVER_PORT

# Instance 2: a copy of instance 1's server.conf (Store) and TLS key.
mkdir -m 0700 "$T/s2"
cp -p "$LAB/server/server.conf" "$LAB/server/tls.key" \
    "$LAB/server/tls.crt" "$T/s2/" || fail "copying instance 1's files"
server_start s2 -v
P2=$PORT_s2
log "instance 1 on port $P1, instance 2 on port $P2"

# The device and np-srd try instance 1 first, the client instance 2.
sed -i "s/^Server .*/Server 127.0.0.1:$P1 127.0.0.1:$P2/" \
    "$LAB/device/deviced.conf" "$LAB/sr/srd.conf"
sed -i "s/^Server .*/Server 127.0.0.1:$P2 127.0.0.1:$P1/" "$LAB/client.conf"
lab_kill np-srd TERM
lab_restart np-srd
lab_kill np-deviced TERM
lab_restart np-deviced

# auths LOG IDENT: how often IDENT authenticated on the instance writing LOG.
auths() { grep -c "auth ok: .* $2\$" "$1" 2>/dev/null || true; }
[ "$(auths "$LAB/logs/np-server.log" "$LAB_IDENT")" -ge 1 ] ||
    fail "the device is not on instance 1"

run t1 lssh "$LAB_HOST" 'echo fleet-ok'
expect_rc 0 "ssh with the client on instance 2, the device on 1"
expect_eq fleet-ok "$OUT" "command output"
[ "$(auths "$T/s2.log" @client)" -ge 1 ] || fail "the client was not on instance 2"
[ "$(auths "$T/s2.log" "$LAB_IDENT")" = 0 ] ||
    fail "the device was on instance 2 before instance 1 went away"

# Instance 1 goes away for good.
lab_kill np-server KILL
t0=$(now_ms)
ok=0
for i in $(seq 1 60); do
	run t2 lssh "$LAB_HOST" 'echo after-failover'
	if [ "$RC" = 0 ]; then
		ok=1
		break
	fi
	[ $(($(now_ms) - t0)) -lt 60000 ] || break
	sleep 0.5
done
took=$(($(now_ms) - t0))
[ "$ok" = 1 ] || fail "no ssh worked within 60 s of instance 1's death: $(what)"
expect_eq after-failover "$OUT" "command output after the failover"
log "ssh worked again $took ms after instance 1 was killed"
[ "$(auths "$T/s2.log" "$LAB_IDENT")" -ge 1 ] ||
    fail "the device did not move to instance 2"
[ "$(auths "$T/s2.log" @sr)" -ge 1 ] || fail "np-srd did not move to instance 2"
grep -Eq "trying the next server|connected to 127\\.0\\.0\\.1 port $P2" \
    "$LAB/logs/np-deviced.log" || fail "the device's log does not show the move"

# And again, to be sure the first was not a leftover session.
run t3 lssh "$LAB_HOST" 'exit 3'
expect_rc 3 "exit status through the fleet after the failover"

log PASS
