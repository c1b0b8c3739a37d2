/*
 * libFuzzer target: OpenSSH public key lines (np_sshpub_parse), as read
 * from sshd's host key files and from the host keys of a device's
 * np.session.ok.  A line that parses is written again (np_sshpub_format)
 * and must parse to the same type and blob; the parser is strict, so the
 * text written is the line's own first two fields.  An Ed25519 blob goes
 * through np_sshkey_parse_blob_ed25519 and back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next blank-separated field of d[0..n) from *pos: [*s, *e). */
static void
field(const uint8_t *d, size_t n, size_t *pos, size_t *s, size_t *e)
{
	size_t i = *pos;

	while (i < n && (d[i] == ' ' || d[i] == '\t')) {
		i++;
	}
	*s = i;
	while (i < n && d[i] != ' ' && d[i] != '\t' && d[i] != '\n' &&
	    d[i] != '\r') {
		i++;
	}
	*e = i;
	*pos = i;
}

/* The formatted line is "TYPE BASE64" with the line's own two fields. */
static int
same_fields(const uint8_t *d, size_t n, const struct np_buf *b)
{
	size_t pos = 0, ts, te, bs, be, tl;
	const uint8_t *f = np_buf_ptr(b);

	field(d, n, &pos, &ts, &te);
	field(d, n, &pos, &bs, &be);
	tl = te - ts;
	return np_buf_len(b) == tl + 1 + (be - bs) &&
	    memcmp(f, d + ts, tl) == 0 && f[tl] == ' ' &&
	    memcmp(f + tl + 1, d + bs, be - bs) == 0;
}

static void
check_ed25519(const struct np_sshpub *p)
{
	uint8_t pk[NP_SSHKEY_PK_LEN];
	struct np_buf *b;

	if (np_sshkey_parse_blob_ed25519(p->blob, p->bloblen, pk) != NP_OK) {
		if (strcmp(p->type, NP_SSHKEY_ED25519) == 0) {
			abort(); /* the same check as the line parser's */
		}
		return;
	}
	if ((b = np_buf_new(NP_SSHKEY_BLOB_LEN)) == NULL) {
		return;
	}
	if (np_sshkey_ed25519_blob(pk, b) != NP_OK ||
	    np_buf_len(b) != p->bloblen ||
	    memcmp(np_buf_ptr(b), p->blob, p->bloblen) != 0) {
		abort();
	}
	np_buf_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_sshpub *p = NULL, *q = NULL;
	struct np_buf *b;

	if (np_sshpub_parse(data, size, &p) != NP_OK) {
		if (p != NULL) {
			abort();
		}
		return 0;
	}
	if ((b = np_buf_new(2 * NP_SSHPUB_LINE_MAX)) == NULL) {
		np_sshpub_free(p);
		return 0;
	}
	if (np_sshpub_format(p, b) != NP_OK) {
		abort();
	}
	/* One encoding per key: the fields we read are what we write. */
	if (!same_fields(data, size, b)) {
		abort();
	}
	if (np_sshpub_parse(np_buf_ptr(b), np_buf_len(b), &q) != NP_OK ||
	    strcmp(p->type, q->type) != 0 || p->bloblen != q->bloblen ||
	    memcmp(p->blob, q->blob, p->bloblen) != 0 || q->comment[0] != 0) {
		abort();
	}
	check_ed25519(p);
	np_sshpub_free(q);
	np_sshpub_free(p);
	np_buf_free(b);
	return 0;
}
