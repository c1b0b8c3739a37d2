#!/usr/bin/env bash
# File transfer through `demo.noports`: scp of 50 MiB both ways (sftp
# protocol, and the legacy scp protocol with -O), sftp put/get in batch
# mode, and rsync over ssh when rsync is installed; every copy has the
# original's sha256.  (The device is this machine, so the remote side's
# files are in $T too.)
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up
SIZE=${SSH_TEST_BYTES:-52428800}
head -c "$SIZE" /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
mkdir -m 0755 "$T/remote" "$T/back"
# lscp ARGS...: scp through the lab, bounded to 300 s.
lscp() {
	timeout 300 scp -F "$LAB/ssh_config" -o BatchMode=yes -q "$@"
}

# sha FILE
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# 1. scp up and down (default: sftp protocol).
t0=$(now_ms)
run up lscp "$T/big" "$LAB_HOST:$T/remote/big"
expect_rc 0 "scp to the device"
t1=$(now_ms)
expect_eq "$want" "$(sha "$T/remote/big")" "sha256 after scp up"
run down lscp "$LAB_HOST:$T/remote/big" "$T/back/big"
expect_rc 0 "scp from the device"
t2=$(now_ms)
expect_eq "$want" "$(sha "$T/back/big")" "sha256 after scp down"
log "scp $((SIZE / 1048576)) MiB: up $((t1 - t0)) ms, down $((t2 - t1)) ms"

# 2. Legacy scp protocol (scp -O runs `scp -t` on the remote).
rm -f "$T/remote/big" "$T/back/big"
run upo lscp -O "$T/big" "$LAB_HOST:$T/remote/big"
expect_rc 0 "scp -O to the device"
expect_eq "$want" "$(sha "$T/remote/big")" "sha256 after scp -O up"
run downo lscp -O "$LAB_HOST:$T/remote/big" "$T/back/big"
expect_rc 0 "scp -O from the device"
expect_eq "$want" "$(sha "$T/back/big")" "sha256 after scp -O down"

# 3. sftp in batch mode: put, ls, get, rm.
head -c 3000000 /dev/urandom >"$T/small"
rm -f "$T/back/small"
cat >"$T/batch" <<B
put $T/small $T/remote/small
ls -l $T/remote/small
get $T/remote/small $T/back/small
rm $T/remote/small
B
run sftp timeout 120 sftp -F "$LAB/ssh_config" -o BatchMode=yes -b "$T/batch" "$LAB_HOST"
expect_rc 0 "sftp batch"
expect_match 'small' "$OUT" "sftp ls output"
expect_eq "$(sha "$T/small")" "$(sha "$T/back/small")" "sha256 after sftp put/get"
[ ! -e "$T/remote/small" ] || fail "sftp rm did not remove the file"

# 4. rsync over ssh.
if command -v rsync >/dev/null; then
	rm -rf "$T/rs" "$T/rsback"
	mkdir -p "$T/rs/sub"
	cp "$T/small" "$T/rs/a"
	head -c 100000 /dev/urandom >"$T/rs/sub/b"
	run rs1 timeout 120 rsync -a -e "ssh -F $LAB/ssh_config -o BatchMode=yes" \
	    "$T/rs/" "$LAB_HOST:$T/remote/rs/"
	expect_rc 0 "rsync to the device"
	run rs2 timeout 120 rsync -a -e "ssh -F $LAB/ssh_config -o BatchMode=yes" \
	    "$LAB_HOST:$T/remote/rs/" "$T/rsback/"
	expect_rc 0 "rsync from the device"
	diff -r "$T/rs" "$T/rsback" >/dev/null || fail "rsync round trip differs"
	log "rsync ok"
else
	log "rsync not installed: rsync part skipped"
fi
log PASS
