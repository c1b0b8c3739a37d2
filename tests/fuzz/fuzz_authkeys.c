/*
 * libFuzzer target: the authorized_keys rewrite (np_authkeys_sweep_buf,
 * np_authkeys_install_buf) on arbitrary file content.  Checks that only
 * marked lines ever go, that install puts exactly one line in front of
 * the swept content, and that sweeping it after its expiry gives the
 * swept content back.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "spool.h"

#define NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
entry(struct np_spool_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->sid, "0123456789abcdef0123456789abcdef", NP_SID_HEX_LEN);
	e->expires = NOW + 10;
	memset(e->pk, 0x5a, sizeof(e->pk));
}

/* Every byte of out appears in in, in order (lines were only dropped). */
static int
is_subsequence(const struct np_buf *out, const uint8_t *in, size_t n)
{
	const uint8_t *o = np_buf_ptr(out);
	size_t i = 0, j = 0, olen = np_buf_len(out);

	for (; i < n && j < olen; i++) {
		if (in[i] == o[j]) {
			j++;
		}
	}
	return j == olen;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_buf *swept, *inst, *again, *line;
	struct np_spool_entry e;
	unsigned n;
	int r;

	if (size > 65536) {
		return 0;
	}
	swept = np_buf_new(size + 1);
	inst = np_buf_new(size + 512);
	again = np_buf_new(size + 512);
	line = np_buf_new(512);
	entry(&e);
	if (swept == NULL || inst == NULL || again == NULL || line == NULL ||
	    np_authkeys_sweep_buf(data, size, NOW, swept, &n) != NP_OK) {
		goto out;
	}
	if (np_buf_len(swept) > size || !is_subsequence(swept, data, size) ||
	    (n == 0 && (np_buf_len(swept) != size ||
			memcmp(np_buf_ptr(swept), data, size) != 0))) {
		__builtin_trap();
	}
	r = np_authkeys_install_buf(data, size, &e, NOW, inst);
	if (r == NP_ERR_EXISTS) {
		goto out;
	}
	if (r != NP_OK || np_authkey_format(&e, line) != NP_OK ||
	    np_buf_put_u8(line, '\n') != NP_OK ||
	    np_buf_len(inst) != np_buf_len(line) + np_buf_len(swept) ||
	    memcmp(np_buf_ptr(inst), np_buf_ptr(line), np_buf_len(line)) ||
	    memcmp(np_buf_ptr(inst) + np_buf_len(line), np_buf_ptr(swept),
		   np_buf_len(swept))) {
		__builtin_trap();
	}
	/* At its expiry our line goes, with any other that expired by then. */
	if (np_authkeys_sweep_buf(np_buf_ptr(inst), np_buf_len(inst), e.expires,
				  again, &n) != NP_OK ||
	    n < 1 || np_buf_len(again) > np_buf_len(swept)) {
		__builtin_trap();
	}
out:
	np_buf_free(swept);
	np_buf_free(inst);
	np_buf_free(again);
	np_buf_free(line);
	return 0;
}
