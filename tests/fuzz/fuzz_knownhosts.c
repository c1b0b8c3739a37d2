/*
 * libFuzzer target: the known_hosts rewrite of np proxy (np_kh_rewrite)
 * on arbitrary file content.  The first byte picks the name; the rest is
 * the old file.  Only the name's own lines go, every other line is kept
 * byte for byte, the new keys come last, and rewriting the result again
 * gives the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
	"alice.noports", "[web.alice.noports]:2222", "a", "[a]:22",
};
static char *const keys[] = {
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
	"ecdsa-sha2-nistp256 AAAA",
};

static size_t
count_lines(const uint8_t *p, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++) {
		c += p[i] == '\n';
	}
	return c + (n > 0 && p[n - 1] != '\n');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_buf *out, *again;
	const char *name;
	size_t nkeys, in_lines, out_lines;

	if (size < 1) {
		return 0;
	}
	name = names[data[0] % 4];
	nkeys = (data[0] >> 2) % 3;
	data++;
	size--;
	if ((out = np_buf_new(2 * size + 4096)) == NULL ||
	    (again = np_buf_new(2 * size + 4096)) == NULL) {
		np_buf_free(out);
		return 0;
	}
	if (np_kh_rewrite(data, size, name, keys, nkeys, out) != NP_OK) {
		abort();
	}
	in_lines = count_lines(data, size);
	out_lines = count_lines(np_buf_ptr(out), np_buf_len(out));
	if (out_lines > in_lines + nkeys ||
	    (np_buf_len(out) > 0 &&
	    np_buf_ptr(out)[np_buf_len(out) - 1] != '\n')) {
		abort();
	}
	/* The same name and keys again: nothing changes. */
	if (np_kh_rewrite(np_buf_ptr(out), np_buf_len(out), name, keys, nkeys,
	    again) != NP_OK || np_buf_len(again) != np_buf_len(out) ||
	    memcmp(np_buf_ptr(again), np_buf_ptr(out), np_buf_len(out)) != 0) {
		abort();
	}
	np_buf_free(again);
	np_buf_free(out);
	return 0;
}
