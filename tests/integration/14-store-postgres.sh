#!/usr/bin/env bash
# np-server on PostgreSQL (Store postgresql://... in server.conf): init
# creates the tables there, then the enroll / send / offline delivery flow
# of 01 and 02 through the np CLI, a restart (SIGTERM and kill -9) losing
# nothing, and PostgreSQL itself restarting under a running np-server.
# The URI's password never shows in any output.  Skipped (77) when no
# PostgreSQL can start here (tests/pglib.sh).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pglib.sh"

pg_start "$T/pg" || skip "$PG_WHY"
URI=$NP_TEST_PG_URI
pw=${URI#postgresql://np:}
pw=${pw%%@*}
log "PostgreSQL on port $NP_TEST_PG_PORT"

# init --store: the tables in PostgreSQL, the Store line in server.conf
# (0600: it holds the password), no SQLite file.
run init npsrv init -d "$T/s" --store "$URI"
expect_rc 0 "np-server init --store"
expect_match '^SHA256:' "$OUT" "init prints the fingerprint"
FP_s=$OUT
expect_eq "Store $URI" "$(grep '^Store ' "$T/s/server.conf")" \
    "server.conf has the Store line"
expect_eq 600 "$(stat -c %a "$T/s/server.conf")" "server.conf mode"
[ ! -e "$T/s/np.db" ] || fail "init made an SQLite file too"
expect_eq 1 "$(pg_psql 'SELECT max(version) FROM schema_version')" \
    "schema version in PostgreSQL"

# A second init on the same database is refused, saying why.
run init2 npsrv init -d "$T/s2" --store "$URI"
expect_rc 1 "second init on the same database"
expect_match 'already' "$ERR" "second init says the tables exist"

server_start s
grep -qi 'cannot open' "$T/s.log" && fail "np-server run did not use Store"
enroll alice s
enroll bob s
expect_eq "@alice
@bob" "$(pg_psql 'SELECT name FROM identities ORDER BY name')" \
    "identities in PostgreSQL"

# Offline delivery, in order, nothing twice (02).
for w in one two three; do
	run send-$w npas alice send @bob "message $w"
	expect_rc 0 "alice send $w"
	expect_match '^[0-9a-f]{32}$' "$OUT" "message id"
done
run list1 npsrv list -d "$T/s"
expect_rc 0 "np-server list"
expect_match '^@bob active SHA256:[^ ]+ queued=3$' \
    "$(grep '^@bob ' "$T/list1.out")" "three boxes queued for bob"
run r1 npas bob recv --count 3 --timeout 10
expect_rc 0 "bob recv --count 3"
expect_eq "@alice note message one
@alice note message two
@alice note message three" "$OUT" "bob got the three boxes in order"
run r2 npas bob recv --timeout 2
expect_rc 1 "second recv finds nothing"
expect_eq "" "$OUT" "nothing shown twice"

# Live delivery the other way (01).
bg alicerecv npas alice recv --count 1 --timeout 20
arecv=$BGPID
sleep 1
run s2 npas bob send --type chat @alice "hi alice"
expect_rc 0 "bob send"
wait_exit "$arecv" 15 || fail "alice's recv did not finish"
expect_rc 0 "alice recv"
expect_eq "@bob chat hi alice" "$(cat "$T/alicerecv.out")" "live delivery"

# Restart (03): SIGTERM, then kill -9 right after the sends returned.
port=$PORT_s
for i in 1 2; do
	run send-t$i npas alice send @bob "before restart $i"
	expect_rc 0 "alice send t$i"
done
server_stop s TERM || fail "np-server did not exit 0 on SIGTERM"
run list2 npsrv list -d "$T/s"
expect_match '^@bob active SHA256:[^ ]+ queued=2$' \
    "$(grep '^@bob ' "$T/list2.out")" "two boxes in PostgreSQL while stopped"
server_start_on s "$port"
run send-k npas alice send @bob "before kill"
expect_rc 0 "alice send k"
kill -KILL "$PID_s"
wait "$PID_s" 2>/dev/null
server_start_on s "$port"
run r3 npas bob recv --count 3 --timeout 10
expect_rc 0 "bob recv after the restarts"
expect_eq "@alice note before restart 1
@alice note before restart 2
@alice note before kill" "$OUT" "nothing lost across restarts"

# PostgreSQL restarts under the running server: calls during the outage
# fail, then the server reconnects by itself.
"$NP_TEST_PG_CTL" restart >/dev/null 2>&1 || fail "pg_ctl restart"
ok=0
for i in $(seq 1 20); do
	run send-pg npas alice send @bob "after the database restart"
	if [ "$RC" = 0 ]; then
		ok=1
		break
	fi
	sleep 0.5
done
[ "$ok" = 1 ] || fail "no send worked after PostgreSQL restarted: $(what)"
run r4 npas bob recv --timeout 10
expect_rc 0 "bob recv after the database restart"
expect_eq "@alice note after the database restart" "$OUT" \
    "delivered after the database restart"
grep -qi 'reconnected' "$T/s.log" || fail "no reconnect in the server log"

run list3 npsrv list -d "$T/s"
expect_eq 2 "$(grep -c ' active ' "$T/list3.out")" "both still active"

# The password is in no output or log of ours.
if grep -rlF --include='*.log' --include='*.out' --include='*.err' \
    -- "$pw" "$T" | grep -v "^$T/pg/"; then
	fail "the database password shows in the files above"
fi
grep -q 'postgresql://np:xxx@' "$T/s.log" ||
    fail "the server log does not name the database (redacted)"

log PASS
