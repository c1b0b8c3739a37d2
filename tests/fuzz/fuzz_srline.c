/*
 * libFuzzer target: the rendezvous token line.
 *   1. np_srline_len() on the input, as np-srd sees a growing buffer;
 *   2. np_srline_parse() on the first line found, and on the whole input;
 *   3. a parsed line is formatted again and must give the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "srproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_one(const uint8_t *p, size_t len)
{
	char sid[NP_SR_SID_LEN + 1];
	enum np_sr_side side;
	uint8_t tok[NP_SR_TOKEN_LEN];
	struct np_buf *b;

	if (np_srline_parse(p, len, sid, &side, tok) != NP_OK) {
		return;
	}
	if (strlen(sid) != NP_SR_SID_LEN ||
	    (side != NP_SR_CLIENT && side != NP_SR_DEVICE)) {
		abort();
	}
	if ((b = np_buf_new(NP_SRLINE_MAX)) == NULL) {
		return;
	}
	/* strict parsing means one encoding per value: a round trip */
	if (np_srline_format(sid, side, tok, b) != NP_OK ||
	    np_buf_len(b) != len || memcmp(np_buf_ptr(b), p, len) != 0) {
		abort();
	}
	np_buf_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i;
	int n;

	/* byte by byte, as bytes trickle in */
	for (i = 0; i <= size && i <= NP_SRLINE_MAX + 1; i++) {
		n = np_srline_len(data, i);
		if (n > 0 && ((size_t)n > i || (size_t)n > NP_SRLINE_MAX ||
		    data[n - 1] != '\n')) {
			abort();
		}
	}
	n = np_srline_len(data, size);
	if (n > 0) {
		parse_one(data, (size_t)n);
	}
	parse_one(data, size);
	return 0;
}
