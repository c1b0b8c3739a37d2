/*
 * libFuzzer target: np-srd's probe line (np_srprobe_is,
 * np_srprobe_parse) and the ticket check on what it gives: a parsed
 * line encodes back to the same bytes, and a ticket made under another
 * key never checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "srproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[NP_SR_PROBE_KEY_LEN] = { 1, 2, 3 };
	uint8_t t[NP_SR_TICKET_LEN];
	char b64[NP_SR_TICKET_B64_LEN + 1], line[NP_SRLINE_MAX];
	int n, len;

	len = np_srline_len(data, size);
	(void)np_srprobe_is(data, size);
	if (np_srprobe_parse(data, size, t) != NP_OK) {
		return 0;
	}
	if (len != (int)size) {
		abort(); /* a probe line is one whole line */
	}
	np_sr_ticket_encode(t, b64);
	n = snprintf(line, sizeof(line), "NPSR1 PROBE %s\n", b64);
	if (n < 0 || (size_t)n != size || memcmp(line, data, size) != 0) {
		abort();
	}
	if (np_sr_ticket_check(key, t, 0) == NP_OK) {
		abort(); /* nobody made it under this key */
	}
	return 0;
}
