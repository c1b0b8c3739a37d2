#!/usr/bin/env bash
# The manual pages (man/) pass mandoc -T lint and man --warnings.
. "$(dirname "$0")/../lib.sh"
command -v mandoc >/dev/null || command -v man >/dev/null ||
    skip "neither mandoc nor man installed (scripts/install-deps)"
run lint "$TOP/scripts/man-lint"
expect_rc 0 "scripts/man-lint: $OUT $ERR"
expect_match "^man-lint: [0-9]+ pages ok" "$OUT" "man-lint's summary"
log PASS
