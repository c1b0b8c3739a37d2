#!/usr/bin/env bash
# np-keyhelper against a real, private sshd (never the system one): session
# keys from the spool work until their expiry, for their user only; unsafe
# spool files are ignored; a session that logged in before the expiry
# carries on.  Then authorized_keys mode: install, login, sweep gives the
# original file back byte for byte.
. "$(dirname "$0")/../lib.sh"

SSHD=/usr/sbin/sshd
KH=${NP_KEYHELPER:-$BUILD/np-keyhelper}
MK=${NP_MKSESSION:-$BUILD/tools/np-mksession}

[ -x "$SSHD" ] || skip "/usr/sbin/sshd not installed (apt-get install openssh-server)"
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null ||
    skip "ssh or ssh-keygen not installed"
[ "$(id -u)" = 0 ] || skip "needs root (the private sshd runs its AuthorizedKeysCommand as root)"
[ -x "$KH" ] || fail "$KH not built"
[ -x "$MK" ] || fail "$MK not built"

# sshd runs AuthorizedKeysCommand only when the program and every parent
# directory are root-owned and not writable by group or other.
p=$KH
while :; do
	read -r owner mode < <(stat -L -c '%u %a' "$p")
	if [ "$owner" != 0 ] || [ $((8#$mode & 8#022)) != 0 ]; then
		skip "sshd would refuse $KH: $p is not root-owned or is group/other-writable (mode $mode, uid $owner); build in a root-owned checkout"
	fi
	[ "$p" = / ] && break
	p=$(dirname "$p")
done
# sshd's privilege separation directory.
[ -d /run/sshd ] || mkdir -p -m 0755 /run/sshd

SPOOL=$T/spool
mkdir -m 0700 "$SPOOL" "$T/other" "$T/keys"
ssh-keygen -q -t ed25519 -N '' -C testhost -f "$T/hostkey" || fail "host key"

# start_sshd NAME EXTRA_CONFIG: a private sshd on a free loopback port;
# sets PORT_NAME and writes known_hosts for it.
start_sshd() {
	local name=$1 extra=$2 port try cfg=$T/$1.sshd_config
	for try in 1 2 3 4 5 6 7 8; do
		port=$((20000 + RANDOM % 40000))
		ss -ltn | grep -q ":$port " && continue
		cat >"$cfg" <<-EOF
		Port $port
		ListenAddress 127.0.0.1
		HostKey $T/hostkey
		PidFile $T/$name.pid
		UsePAM no
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PubkeyAuthentication yes
		PermitRootLogin prohibit-password
		Subsystem sftp internal-sftp
		LogLevel VERBOSE
		$extra
		EOF
		"$SSHD" -t -f "$cfg" || fail "sshd -t refused $cfg"
		"$SSHD" -D -e -f "$cfg" >>"$T/$name.log" 2>&1 &
		PIDS+=("$!")
		if wait_for 5 bash -c "ss -ltn | grep -q '127.0.0.1:$port '"; then
			printf -v "PORT_$name" '%s' "$port"
			echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$T/hostkey.pub")" \
			    >>"$T/known_hosts"
			return 0
		fi
		kill "$!" 2>/dev/null
	done
	fail "could not start sshd $name"
}

# try_ssh PORT KEY CMD...: ssh as root with only KEY; sets RC/OUT/ERR.
try_ssh() {
	local port=$1 key=$2
	shift 2
	run ssh timeout 20 ssh -F /dev/null -i "$key" -o IdentitiesOnly=yes \
	    -o BatchMode=yes -o StrictHostKeyChecking=yes \
	    -o UserKnownHostsFile="$T/known_hosts" -o ConnectTimeout=5 \
	    -p "$port" root@127.0.0.1 "$@"
}

# mk NAME USER EXPIRES [SPOOLDIR]: a session key $T/keys/NAME; sets SID.
mk() {
	local spool=${4:-}
	SID=$("$MK" ${spool:+-s "$spool"} "$T/keys/$1" "$2" "$3") ||
	    fail "np-mksession $*"
}

start_sshd a "AuthorizedKeysFile none
AuthorizedKeysCommand $KH -s $SPOOL %u
AuthorizedKeysCommandUser root"
log "private sshd on 127.0.0.1:$PORT_a"

# 1. A valid entry: login works, the command runs, exit status passes.
mk good root +60 "$SPOOL"
good_sid=$SID
try_ssh "$PORT_a" "$T/keys/good" 'echo hello-from-sshd; exit 3'
expect_rc 3 "login with a valid spool key"
expect_eq hello-from-sshd "$OUT" "command output"

# The keyhelper's own output: exactly the line for that key, nothing else.
run kh "$KH" -s "$SPOOL" root
expect_rc 0 "np-keyhelper root"
expect_match "^expiry-time=\"[0-9]{14}Z\",from=\"127\\.0\\.0\\.1,::1\" $(re_quote "$(cut -d' ' -f1,2 "$T/keys/good.pub")") noports-session-$good_sid\$" \
    "$OUT" "keyhelper line"
[ "$(wc -l <"$T/kh.out")" = 1 ] || fail "keyhelper printed more than one line"
run khn "$KH" -s "$SPOOL" nobody
expect_rc 0 "np-keyhelper for a user without keys"
expect_eq "" "$OUT" "no keys, no output"
run khbad "$KH" -s "$SPOOL" 'Root;id'
expect_rc 1 "invalid user name"
expect_eq "" "$OUT" "invalid user prints nothing"

# 2. Expired entry: refused.
mk old root -5 "$SPOOL"
try_ssh "$PORT_a" "$T/keys/old" true
[ "$RC" != 0 ] || fail "an expired key logged in"
expect_match "permission denied" "$ERR" "expired key refused"

# 3. An entry for another user does not let its key in as root.
mk nob nobody +60 "$SPOOL"
try_ssh "$PORT_a" "$T/keys/nob" true
[ "$RC" != 0 ] || fail "a key for nobody logged in as root"
expect_match "permission denied" "$ERR" "other user's key refused"

# 4. A symlinked spool file and a group-writable one are ignored; the same
# entries made safe work, so the refusal was about the file itself.
mk linked root +60 "$T/other"
linked_sid=$SID
ln -s "$T/other/$linked_sid.key" "$SPOOL/$linked_sid.key"
try_ssh "$PORT_a" "$T/keys/linked" true
[ "$RC" != 0 ] || fail "a symlinked spool file was used"
expect_match "permission denied" "$ERR" "symlinked entry refused"
rm "$SPOOL/$linked_sid.key"
cp -p "$T/other/$linked_sid.key" "$SPOOL/$linked_sid.key"
try_ssh "$PORT_a" "$T/keys/linked" true
expect_rc 0 "the same entry as a regular file"

mk gw root +60 "$SPOOL"
chmod 0620 "$SPOOL/$SID.key"
try_ssh "$PORT_a" "$T/keys/gw" true
[ "$RC" != 0 ] || fail "a group-writable spool file was used"
expect_match "permission denied" "$ERR" "group-writable entry refused"
chmod 0600 "$SPOOL/$SID.key"
try_ssh "$PORT_a" "$T/keys/gw" true
expect_rc 0 "the same entry at 0600"

# A group-writable spool directory: the keyhelper refuses all of it.
chmod 0770 "$SPOOL"
try_ssh "$PORT_a" "$T/keys/good" true
[ "$RC" != 0 ] || fail "a group-writable spool dir was used"
run khdir "$KH" -s "$SPOOL" root
expect_rc 1 "keyhelper on a group-writable spool dir"
expect_eq "" "$OUT" "nothing printed for an unsafe spool dir"
chmod 0700 "$SPOOL"

# 5. Expiry: a session opened before it carries on, a new login is refused.
mk short root +3 "$SPOOL"
bg longsess timeout 30 ssh -F /dev/null -i "$T/keys/short" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$T/known_hosts" -p "$PORT_a" root@127.0.0.1 \
    'echo in; sleep 6; echo done'
longpid=$BGPID
wait_for 3 grep -q '^in$' "$T/longsess.out" ||
    fail "the session did not log in before its expiry: $(cat "$T/longsess.log")"
sleep 4
try_ssh "$PORT_a" "$T/keys/short" true
[ "$RC" != 0 ] || fail "a new login after the expiry worked"
expect_match "permission denied" "$ERR" "expired session key refused"
wait_exit "$longpid" 15 || fail "the open session did not finish"
expect_rc 0 "the session opened before the expiry"
expect_eq "$(printf 'in\ndone')" "$(cat "$T/longsess.out")" \
    "the open session ran to its end"

# sweep -s removes the expired entries (old, short) and nothing else.
before=$(ls "$SPOOL" | wc -l)
run sw "$KH" sweep -v -s "$SPOOL"
expect_rc 0 "sweep -s"
expect_match "removed 2 " "$ERR" "sweep count"
[ "$(ls "$SPOOL" | wc -l)" = $((before - 2)) ] || fail "sweep removed the wrong files"
[ -f "$SPOOL/$good_sid.key" ] || fail "sweep removed a valid entry"
log "spool mode ok"

# 6. authorized_keys mode: install, login, refuse after expiry, sweep.
AKD=$T/akhome/.ssh
AK=$AKD/authorized_keys
mkdir -p -m 0700 "$AKD"
printf '# my own keys\r\n%s\n\nssh-rsa AAAAB3NzaC1yc2E= no-final-newline' \
    "$(cat "$T/hostkey.pub")" >"$AK"
chmod 0640 "$AK"
cp -p "$AK" "$T/ak.orig"
start_sshd b "AuthorizedKeysFile $AK
StrictModes no"
mk ak root +5
ak_sid=$SID
exp=$(($(date +%s) + 5))
run inst "$KH" install -f "$AK" --user root --key "$(cat "$T/keys/ak.pub")" \
    --expires "$exp" --session "$ak_sid"
expect_rc 0 "np-keyhelper install"
[ "$(stat -c '%a %U' "$AK")" = "640 root" ] || fail "install changed mode/owner: $(stat -c '%a %U' "$AK")"
expect_match "^expiry-time=\"[0-9]{14}Z\",from=\"127\\.0\\.0\\.1,::1\" ssh-ed25519 [A-Za-z0-9+/]{68} noports-session-$ak_sid\$" \
    "$(head -n 1 "$AK")" "installed line"
tail -c +"$(($(head -n 1 "$AK" | wc -c) + 1))" "$AK" | cmp -s - "$T/ak.orig" ||
    fail "install changed the other lines"
run inst2 "$KH" install -f "$AK" --user root --key "$(cat "$T/keys/ak.pub")" \
    --expires "$exp" --session "$ak_sid"
expect_rc 1 "installing the same session twice"
try_ssh "$PORT_b" "$T/keys/ak" 'echo via-authorized-keys'
expect_rc 0 "login with an installed key"
expect_eq via-authorized-keys "$OUT" "authorized_keys login output"
try_ssh "$PORT_b" "$T/keys/good" true
[ "$RC" != 0 ] || fail "a key that is not in authorized_keys logged in"
run sw1 "$KH" sweep -v -f "$AK" --user root
expect_rc 0 "sweep before the expiry"
expect_match "removed 0 " "$ERR" "nothing to sweep yet"
sleep 6
try_ssh "$PORT_b" "$T/keys/ak" true
[ "$RC" != 0 ] || fail "an expired authorized_keys line logged in"
expect_match "permission denied" "$ERR" "expired authorized_keys line refused"
run sw2 "$KH" sweep -v -f "$AK" --user root
expect_rc 0 "sweep after the expiry"
expect_match "removed 1 " "$ERR" "one line swept"
cmp -s "$AK" "$T/ak.orig" || fail "sweep did not give the original file back"
[ "$(stat -c '%a %U' "$AK")" = "640 root" ] || fail "sweep changed mode/owner"
ls -A "$AKD" | grep -q np-tmp && fail "temp file left in $AKD"
log "authorized_keys mode ok"
exit 0
