/*
 * libFuzzer target: OpenSSH key serialization (lib/sshkey.c).
 *   1. np_sshkey_parse_private() on the input as a private key file; a
 *      key that parses is written again (np_sshkey_private_pem) and must
 *      parse back to the same key, and its public line must parse back
 *      (np_sshpub_parse, np_sshkey_parse_blob_ed25519) to the same key;
 *   2. the round trip the other way: the first 32 bytes as a seed, the
 *      rest as a comment; write the private file and the public line,
 *      parse both, compare;
 *   3. np_sshkey_ed25519_from_b64() on the input, which is strict: what
 *      it accepts is exactly what np_sshkey_ed25519_b64() writes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The public line of k ("ssh-ed25519 BASE64[ comment]") parses back. */
static void
check_public(const struct np_sshkey *k, const char *comment)
{
	struct np_sshpub *p = NULL;
	struct np_buf *b;
	uint8_t pk[NP_SSHKEY_PK_LEN];

	if ((b = np_buf_new(NP_SSHPUB_LINE_MAX)) == NULL) {
		return;
	}
	if (np_sshkey_public_line(k, comment, b) != NP_OK) {
		abort();
	}
	if (np_sshpub_parse(np_buf_ptr(b), np_buf_len(b), &p) != NP_OK ||
	    strcmp(p->type, NP_SSHKEY_ED25519) != 0 ||
	    strcmp(p->comment, comment == NULL ? "" : comment) != 0 ||
	    np_sshkey_parse_blob_ed25519(p->blob, p->bloblen, pk) != NP_OK ||
	    memcmp(pk, np_sshkey_pk(k), sizeof(pk)) != 0) {
		abort();
	}
	np_sshpub_free(p);
	np_buf_free(b);
}

/* k written as a private key file parses back to the same key. */
static void
check_private(const struct np_sshkey *k, const char *comment)
{
	struct np_sshkey *k2 = NULL;
	struct np_buf *b;

	if ((b = np_buf_new_secure(2 * NP_SSHKEY_PRIV_MAX)) == NULL) {
		return;
	}
	if (np_sshkey_private_pem(k, comment, b) != NP_OK ||
	    np_sshkey_parse_private(np_buf_ptr(b), np_buf_len(b), &k2) !=
	    NP_OK ||
	    memcmp(np_sshkey_pk(k), np_sshkey_pk(k2), NP_SSHKEY_PK_LEN) != 0) {
		abort();
	}
	np_sshkey_free(k2);
	np_buf_free(b);
}

/* A comment np_sshkey_private_pem takes: printable ASCII, capped. */
static int
comment_ok(const char *c)
{
	size_t i;

	for (i = 0; c[i] != '\0'; i++) {
		if (i >= NP_SSHKEY_COMMENT_MAX || c[i] < 0x20 || c[i] > 0x7e) {
			return 0;
		}
	}
	return 1;
}

static void
from_seed(const uint8_t *data, size_t size)
{
	struct np_sshkey *k = NULL;
	char comment[NP_SSHKEY_COMMENT_MAX + 2];
	size_t n;

	if (size < 32) {
		return;
	}
	n = size - 32 < sizeof(comment) - 1 ? size - 32 : sizeof(comment) - 1;
	memcpy(comment, data + 32, n);
	comment[n] = '\0';
	if (memchr(comment, '\0', n) != NULL || !comment_ok(comment)) {
		comment[0] = '\0';
	}
	/* A public line's comment loses its leading blanks. */
	if (comment[0] == ' ' || comment[0] == '\t') {
		comment[0] = 'c';
	}
	/* ... and np_sshpub_parse keeps trailing ones, so do we. */
	if (np_sshkey_from_seed(data, &k) != NP_OK) {
		return;
	}
	check_private(k, comment);
	check_public(k, comment);
	np_sshkey_free(k);
}

static void
b64(const uint8_t *data, size_t size)
{
	uint8_t pk[NP_SSHKEY_PK_LEN];
	char again[NP_SSHKEY_B64_LEN + 1];

	if (np_sshkey_ed25519_from_b64((const char *)data, size, pk) !=
	    NP_OK) {
		return;
	}
	if (np_sshkey_ed25519_b64(pk, again, sizeof(again)) != NP_OK ||
	    size != NP_SSHKEY_B64_LEN || memcmp(again, data, size) != 0) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_sshkey *k = NULL;

	if (np_sshkey_parse_private(data, size, &k) == NP_OK) {
		check_private(k, "fuzz");
		check_public(k, NULL);
	} else if (k != NULL) {
		abort(); /* nothing on failure */
	}
	np_sshkey_free(k);
	from_seed(data, size);
	b64(data, size);
	return 0;
}
