#!/usr/bin/env bash
# Two np-server instances on one PostgreSQL (a fleet: the same data, the
# same TLS key, each its own port).  A box sent through one instance
# reaches a recipient connected to the other while it waits (LISTEN /
# NOTIFY), also one whose seq is below what that instance pushed already;
# a client whose first server is down uses the next one of its Server
# list; boxes queued through both instances before every instance is
# stopped (SIGTERM and kill -9) are all delivered once afterwards, and
# nothing again; after PostgreSQL restarts under both, delivery across
# them resumes by itself.  Skipped (77) when no PostgreSQL can start here.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pglib.sh"

pg_start "$T/pg" || skip "$PG_WHY"

run init npsrv init -d "$T/s1" --store "$NP_TEST_PG_URI"
expect_rc 0 "np-server init --store"
FP_s1=$OUT
# The second instance: the same server.conf (Store) and TLS key, so
# clients pin one fingerprint for the fleet.
mkdir -m 0700 "$T/s2"
cp -p "$T/s1/server.conf" "$T/s1/tls.key" "$T/s1/tls.crt" "$T/s2/" ||
    fail "copying the instance's files"
FP_s2=$FP_s1
server_start s1 -v
server_start s2 -v
log "instances on ports $PORT_s1 and $PORT_s2"
grep -q 'store: postgresql' "$T/s1.log" || fail "s1 does not use PostgreSQL"
grep -q 'store: postgresql' "$T/s2.log" || fail "s2 does not use PostgreSQL"

# alice talks to s1, bob to s2: one Server line each, the other instance
# second (the list is what moves them when theirs goes away).
enroll alice s1
enroll bob s2
sed -i "s/^Server .*/Server 127.0.0.1:$PORT_s1 127.0.0.1:$PORT_s2/" \
    "$(config_of alice)"
sed -i "s/^Server .*/Server 127.0.0.1:$PORT_s2 127.0.0.1:$PORT_s1/" \
    "$(config_of bob)"

# 1. Live across instances: bob waits on s2, alice sends through s1.
# (a function, so that wait_for counts again on every poll)
bob_auths() { grep -c 'auth ok: .* @bob$' "$T/s2.log" || true; }
auth0=$(bob_auths)
bg bobrecv npas bob recv --count 3 --timeout 20
brecv=$BGPID
# bob is monitoring once s2 logged him in (this recv, not the enroll).
wait_for 10 eval '[ "$(bob_auths)" -gt "$auth0" ]' || fail "bob did not reach s2"
sleep 0.5
for w in one two three; do
	run live-$w npas alice send @bob "live $w"
	expect_rc 0 "alice send live $w (through s1)"
done
wait_exit "$brecv" 15 || fail "bob's recv on s2 did not get the boxes sent through s1"
expect_rc 0 "bob recv on s2"
expect_eq "@alice note live one
@alice note live two
@alice note live three" "$(cat "$T/bobrecv.out")" "live delivery across instances"
grep -q '@alice' "$T/s2.log" && fail "alice went to s2, not s1"

# 2. A seq below what was pushed already: bob's box to alice gets its
# seq on s2, which then stalls before committing (a test trigger sleeps
# in its INSERT); meanwhile alice's own box through s1 takes the next seq,
# commits and is pushed to her.  When s2 commits, s1 must still push the
# lower seq (what it hears is only "a box for @alice").
pg_psql "CREATE FUNCTION np_test_stall() RETURNS trigger AS \$\$
BEGIN
	IF NEW.sender = '@bob' THEN PERFORM pg_sleep(3); END IF;
	RETURN NEW;
END \$\$ LANGUAGE plpgsql" \
    "CREATE TRIGGER np_test_stall AFTER INSERT ON boxes FOR EACH ROW
	EXECUTE FUNCTION np_test_stall()" || fail "creating the stall trigger"
bg alicerecv npas alice recv --count 2 --timeout 25
arecv=$BGPID
sleep 1
bg bobsend npas bob send @alice "low seq, committed last"
bsend=$BGPID
sleep 1
run hi npas alice send @alice "high seq, committed first"
expect_rc 0 "alice send to herself through s1"
wait_exit "$bsend" 15 || fail "bob's send through s2 did not finish"
expect_rc 0 "bob send (stalled in s2)"
wait_exit "$arecv" 15 ||
    fail "alice's recv on s1 did not get both boxes: $(cat "$T/alicerecv.out")"
expect_rc 0 "alice recv"
expect_eq "@alice note high seq, committed first
@bob note low seq, committed last" "$(cat "$T/alicerecv.out")" \
    "both boxes, the later commit too"
lo=$(pg_psql "SELECT count(*) FROM boxes WHERE recipient = '@alice'")
expect_eq 0 "$lo" "both acknowledged"
pg_psql "DROP TRIGGER np_test_stall ON boxes" \
    "DROP FUNCTION np_test_stall()" || fail "dropping the stall trigger"

# 3. Failover: s1 stops; alice's next command uses s2 by itself.
server_stop s1 TERM || fail "s1 did not exit 0 on SIGTERM"
run fo npas alice -v send @bob "after s1 stopped"
expect_rc 0 "alice send with s1 down"
expect_match "connected to 127\\.0\\.0\\.1 port $PORT_s2 " "$ERR" "np -v names the instance it used"
run fo-r npas bob recv --timeout 10
expect_rc 0 "bob recv"
expect_eq "@alice note after s1 stopped" "$OUT" "delivered through s2"
server_start_on s1 "$PORT_s1"

# 3b. One name with several addresses: fleet.test is 127.0.0.2 and
# 127.0.0.1 (a private /etc/hosts in a mount namespace), s1 listens on
# 127.0.0.1 and s3 on 127.0.0.2, both on s1's port.  The instance alice
# reaches through the name is stopped; her next command reaches the
# other address.
if unshare -m true 2>/dev/null; then
	mkdir -m 0700 "$T/s3"
	cp -p "$T/s1/server.conf" "$T/s1/tls.key" "$T/s1/tls.crt" "$T/s3/"
	env --default-signal=INT "$NPSERVER" run -d "$T/s3" -l "127.0.0.2:$PORT_s1" \
	    --port-file "$T/s3/port" >>"$T/s3.log" 2>&1 &
	PID_s3=$!
	PIDS+=("$PID_s3")
	wait_for 10 test -s "$T/s3/port" || fail "np-server s3 did not start"
	printf '127.0.0.2 fleet.test\n127.0.0.1 fleet.test\n' >"$T/hosts"
	sed "s/^Server .*/Server fleet.test:$PORT_s1/" "$(config_of alice)" >"$T/alice-dns.conf"
	chmod 0600 "$T/alice-dns.conf"
	# dns TAG ARGS...: np as alice with the private hosts file.
	dns() {
		local tag=$1
		shift
		run "$tag" as alice timeout 30 unshare -m sh -c \
		    'mount --bind "$0" /etc/hosts && exec "$@"' "$T/hosts" \
		    "$NP" -F "$T/alice-dns.conf" "$@"
	}
	dns dns1 send @bob "through the name, first"
	expect_rc 0 "alice send through fleet.test"
	a3=$(grep -c 'auth ok: .* @alice$' "$T/s3.log")
	if [ "$a3" -ge 1 ]; then
		first=s3 other=s1
		kill -TERM "$PID_s3"
		wait "$PID_s3" 2>/dev/null
	else
		first=s1 other=s3
		server_stop s1 TERM || fail "s1 did not exit 0 on SIGTERM"
	fi
	log "fleet.test reached $first first; stopped it"
	before=$(grep -c 'auth ok: .* @alice$' "$T/$other.log")
	dns dns2 send @bob "through the name, second"
	expect_rc 0 "alice send through fleet.test with $first stopped"
	[ "$(grep -c 'auth ok: .* @alice$' "$T/$other.log")" -gt "$before" ] ||
	    fail "alice did not reach $other at the name's other address"
	run dns-r npas bob recv --count 2 --timeout 10
	expect_rc 0 "bob recv of the two"
	expect_eq "@alice note through the name, first
@alice note through the name, second" "$OUT" "both through the name"
	if [ "$first" = s1 ]; then
		server_start_on s1 "$PORT_s1"
		kill -TERM "$PID_s3"
		wait "$PID_s3" 2>/dev/null
	fi
else
	log "no mount namespaces here: the several-addresses case is not run"
fi

# 4. PostgreSQL restarts under the fleet: both instances reconnect and
# listen again, so delivery across them resumes by itself.
"$NP_TEST_PG_CTL" restart >/dev/null 2>&1 || fail "pg_ctl restart"
ok=0
for i in $(seq 1 20); do
	run pgr npas bob send @bob "probe after the restart"
	[ "$RC" = 0 ] && { ok=1; break; }
	sleep 0.5
done
[ "$ok" = 1 ] || fail "no send through s2 worked after PostgreSQL restarted: $(what)"
run pgr-r npas bob recv --timeout 10
expect_eq "@bob note probe after the restart" "$OUT" "s2 delivers after the restart"
# s1 must be listening again too: wait until it logged its reconnect.
wait_for 10 grep -qi 'reconnected' "$T/s1.log" || fail "s1 did not reconnect"
bg bobrecv3 npas bob recv --count 1 --timeout 20
brecv=$BGPID
sleep 1
run pgr-a npas alice send @bob "across instances after the restart"
expect_rc 0 "alice send through s1 after the restart"
wait_exit "$brecv" 15 || fail "bob on s2 did not get alice's box through s1 after PostgreSQL restarted"
expect_eq "@alice note across instances after the restart" \
    "$(cat "$T/bobrecv3.out")" "delivery across instances after the restart"

# 5. Boxes queued through both instances, then every instance stopped
# (s1 by SIGTERM, s2 by kill -9 right after its last send returned), then
# both started: everything is delivered once, nothing twice.
want=
for i in $(seq 1 10); do
	run q$i npas alice send @bob "queued $i"
	expect_rc 0 "alice send queued $i (s1)"
	want+="@alice note queued $i"$'\n'
done
for i in $(seq 11 20); do
	run q$i npas bob send @bob "queued $i"
	expect_rc 0 "bob send queued $i (s2)"
	want+="@bob note queued $i"$'\n'
done
run list npsrv list -d "$T/s1"
expect_match '^@bob active SHA256:[^ ]+ queued=20$' \
    "$(grep '^@bob ' "$T/list.out")" "twenty boxes queued in PostgreSQL"
server_stop s1 TERM || fail "s1 did not exit 0 on SIGTERM"
kill -KILL "$PID_s2"
wait "$PID_s2" 2>/dev/null
server_start_on s2 "$PORT_s2"
server_start_on s1 "$PORT_s1"
run all npas bob recv --count 20 --timeout 20
expect_rc 0 "bob recv --count 20 after the fleet restart"
expect_eq "$(printf '%s' "$want" | sort)" "$(sort "$T/all.out")" \
    "every queued box, once"
run again npas bob recv --timeout 3
expect_rc 1 "a second recv finds nothing"
expect_eq "" "$OUT" "nothing delivered twice"

log PASS
