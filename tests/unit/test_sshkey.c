/*
 * Unit tests for lib/sshkey.c: OpenSSH private key files, public lines,
 * fingerprints, host public key parsing.  The expected strings come from
 * OpenSSH 9.2's ssh-keygen (-y and -l) run on the same keys.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "sshkey.h"

/* ssh-keygen -y / -l on the key with the all-zero seed, comment "test". */
#define ZERO_PUB                                                               \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXN"          \
	"lMhV3HeJDpjrASKGLWdop"
#define ZERO_FP "SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo"

/* Host keys made by ssh-keygen, with ssh-keygen -l's fingerprints. */
#define HOST_ED                                                                \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBUWe0BE37Q8z47wjn++7/8"          \
	"+t1eYGzwq5cZnE46k/LrK root@host\n"
#define HOST_ED_FP "SHA256:oNMpGRU5+Op6HJkWGcG+GykBDGyadHKypW49kXA98vY"
#define HOST_P256                                                              \
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIb"            \
	"mlzdHAyNTYAAABBBL/HWuR23Cd+QDar6+AMsCD0OrVgJhJqatt7nf4uWSVn1NedCo/"   \
	"X6d2"                                                                 \
	"qtmrH5rw4wm7BrjHLjTatiBzjxuC433w= root@host\n"
#define HOST_P256_FP "SHA256:lwTYK2TASZz9Us4rmFiitYs2Q02vRbUWE7r7lBNVHqA"
#define HOST_P384                                                              \
	"ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIb"            \
	"mlzdHAzODQAAABhBIUrSjoICGh5gZ2EflVDm4uqzfbEJDIfLUAqW0uKPTs6pJ8EWO4ph" \
	"Yq"                                                                   \
	"KK23OHkQutQJxMbILIT/SoZ/"                                             \
	"Ml8Nt8+y8JZkOHzWcgggXvj9b6LBF5WfvBzuI7LXANOQr"                        \
	"jvRCJw== x"
#define HOST_RSA                                                               \
	"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC/J/l8zg3AL7MmUxtgjGSv"         \
	"N9z9cqoYSFQKVEtPFU56xQJZZDYtT56AN6SiKDBh3tfmJBNCnhMOg0rGsatd4GEKDsr6" \
	"jK2"                                                                  \
	"wx9+ugvFbtT3w0pXBikpQoRJIxrWgW9Z/"                                    \
	"6lTKJwnKBkGmhU+2FikjyYEHf83uRyD4LLwEcG"                               \
	"dBwPEaSt7mqcLdtPBzh6MirbqSk2nvi2Iz8l5PiTPAD5SJaetBrtF9H5GG46Qd5hrkmZ" \
	"WCQ"                                                                  \
	"jO6iUrf/zS7fzfKNPh9nz8LX09OqeHjYfQusUT0R/"                            \
	"oakaOhH1xE1pJZR4VC3VAqwopv08LN"                                       \
	"UFpYlanuOT+XsTjLpG+"                                                  \
	"nnMOWlqmD9B0dBj71aZsTTRO6lwnixRVWSERYgJ0v1L23PtRwMj8"                 \
	"3wb0blBAIy0TkCE5NYoCZMHUgAaXYmfUSk+mBF7J+"                            \
	"knCXjFcRzgInAaPMcWU4M4Mk3zSnKJ"                                       \
	"riwM0NRqOKby7GO/J6ZlXDZ48V5wnTrbZRfnF0miFu2Gr0FJYsHRAYHVEIsZo5Dk0= "  \
	"root@host\n"
#define HOST_RSA_FP "SHA256:zYBC79HQlZ57jbC38cNpSkdD7LIVN1T7H3Wi4m1r0hE"

static const uint8_t zero_seed[32];

static struct np_sshkey *
zero_key(void)
{
	struct np_sshkey *k = NULL;

	ck_assert_int_eq(np_sshkey_from_seed(zero_seed, &k), NP_OK);
	return k;
}

/* The PEM text of k with comment c, as a NUL-terminated malloc'ed copy. */
static char *
pem_of(const struct np_sshkey *k, const char *c)
{
	struct np_buf *b = np_buf_new_secure(NP_SSHKEY_PRIV_MAX);
	char *s;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(np_sshkey_private_pem(k, c, b), NP_OK);
	s = strndup((const char *)np_buf_ptr(b), np_buf_len(b));
	np_buf_free(b);
	return s;
}

/* Decode the PEM body of s into bin; returns its length. */
static size_t
pem_body(const char *s, uint8_t *bin, size_t max)
{
	const char *p = strchr(s, '\n') + 1, *e = strstr(s, "-----END");
	size_t n = 0;

	ck_assert_int_eq(sodium_base642bin(bin, max, p, (size_t)(e - p), "\n",
					   &n, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	return n;
}

/* Re-armour bin as a PEM file (70 columns). */
static char *
pem_wrap(const uint8_t *bin, size_t n)
{
	size_t elen =
	    sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *enc = malloc(elen), *out = malloc(elen * 2 + 100), *o;
	size_t i, len;

	sodium_bin2base64(enc, elen, bin, n, sodium_base64_VARIANT_ORIGINAL);
	len = strlen(enc);
	o = out + sprintf(out, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
	for (i = 0; i < len; i += 70) {
		o += sprintf(o, "%.70s\n", enc + i);
	}
	sprintf(o, "-----END OPENSSH PRIVATE KEY-----\n");
	free(enc);
	return out;
}

static int
parse_str(const char *s, struct np_sshkey **k)
{
	return np_sshkey_parse_private((const uint8_t *)s, strlen(s), k);
}

START_TEST(test_public_line_matches_ssh_keygen)
{
	struct np_sshkey *k = zero_key();
	struct np_buf *b = np_buf_new(1024);

	ck_assert_int_eq(np_sshkey_public_line(k, "test", b), NP_OK);
	ck_assert_int_eq(np_buf_len(b), strlen(ZERO_PUB " test"));
	ck_assert_mem_eq(np_buf_ptr(b), ZERO_PUB " test", np_buf_len(b));
	np_buf_reset(b);
	ck_assert_int_eq(np_sshkey_public_line(k, NULL, b), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), ZERO_PUB, strlen(ZERO_PUB));
	ck_assert_int_eq(np_buf_len(b), strlen(ZERO_PUB));
	np_buf_free(b);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_fingerprint_matches_ssh_keygen)
{
	struct np_sshkey *k = zero_key();
	struct np_buf *b = np_buf_new(NP_SSHKEY_BLOB_LEN);
	char fp[NP_FP_MAX], small[20];

	ck_assert_int_eq(np_sshkey_ed25519_blob(np_sshkey_pk(k), b), NP_OK);
	ck_assert_int_eq(np_buf_len(b), NP_SSHKEY_BLOB_LEN);
	ck_assert_int_eq(
	    np_sshkey_fingerprint(np_buf_ptr(b), np_buf_len(b), fp, sizeof(fp)),
	    NP_OK);
	ck_assert_str_eq(fp, ZERO_FP);
	ck_assert_int_eq(np_sshkey_fingerprint(np_buf_ptr(b), np_buf_len(b),
					       small, sizeof(small)),
			 NP_ERR_TOO_BIG);
	np_buf_free(b);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_pem_layout)
{
	struct np_sshkey *k = zero_key();
	char *s = pem_of(k, "noports-session-0123"), *line, *save = NULL;
	uint8_t bin[2048];
	size_t n, nlines = 0;
	struct np_buf *b;
	const uint8_t *p;
	size_t plen;
	uint32_t u, c1, c2;
	uint8_t pad, want = 1;

	ck_assert_int_eq(
	    strncmp(s, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36), 0);
	ck_assert_ptr_nonnull(
	    strstr(s, "\n-----END OPENSSH PRIVATE KEY-----\n"));
	ck_assert_int_eq(s[strlen(s) - 1], '\n');
	for (line = strtok_r(s, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), nlines++) {
		ck_assert_uint_le(strlen(line), 70);
	}
	ck_assert_uint_ge(nlines, 4);
	free(s);
	s = pem_of(k, "noports-session-0123");
	n = pem_body(s, bin, sizeof(bin));
	b = np_buf_from(bin, n);
	ck_assert_mem_eq(np_buf_ptr(b), "openssh-key-v1\0", 15);
	ck_assert_int_eq(np_buf_consume(b, 15), NP_OK);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_mem_eq(p, "none", 4);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_mem_eq(p, "none", 4);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_uint_eq(plen, 0);
	ck_assert_int_eq(np_buf_get_u32(b, &u), NP_OK);
	ck_assert_uint_eq(u, 1);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_uint_eq(plen, NP_SSHKEY_BLOB_LEN);
	ck_assert_int_eq(np_buf_get_u32(b, &u), NP_OK);
	ck_assert_uint_eq(u % 8, 0);
	ck_assert_uint_eq(u, np_buf_len(b));
	ck_assert_int_eq(np_buf_get_u32(b, &c1), NP_OK);
	ck_assert_int_eq(np_buf_get_u32(b, &c2), NP_OK);
	ck_assert_uint_eq(c1, c2);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_mem_eq(p, "ssh-ed25519", 11);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_mem_eq(p, np_sshkey_pk(k), 32);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_uint_eq(plen, 64);
	ck_assert_mem_eq(p, zero_seed, 32);
	ck_assert_mem_eq(p + 32, np_sshkey_pk(k), 32);
	ck_assert_int_eq(np_buf_get_string_direct(b, &p, &plen), NP_OK);
	ck_assert_uint_eq(plen, strlen("noports-session-0123"));
	while (np_buf_len(b) > 0) {
		ck_assert_int_eq(np_buf_get_u8(b, &pad), NP_OK);
		ck_assert_uint_eq(pad, want++);
	}
	np_buf_free(b);
	free(s);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_checkints_random)
{
	struct np_sshkey *k = zero_key();
	char *a = pem_of(k, "x"), *b = pem_of(k, "x");

	/* Same key, same comment: only the random check ints differ. */
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_private_roundtrip)
{
	struct np_sshkey *k, *k2 = NULL;
	const char *comments[] = {
	    "",	       "a",	   "noports-session-0123456789abcdef",
	    "1234567", "12345678", NULL};
	char *s;
	size_t i;

	ck_assert_int_eq(np_sshkey_generate(&k), NP_OK);
	for (i = 0; i < sizeof(comments) / sizeof(comments[0]); i++) {
		s = pem_of(k, comments[i]);
		ck_assert_int_eq(parse_str(s, &k2), NP_OK);
		ck_assert_mem_eq(np_sshkey_pk(k2), np_sshkey_pk(k), 32);
		np_sshkey_free(k2);
		k2 = NULL;
		/* Without the final newline too. */
		s[strlen(s) - 1] = '\0';
		ck_assert_int_eq(parse_str(s, &k2), NP_OK);
		np_sshkey_free(k2);
		k2 = NULL;
		free(s);
	}
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_two_keys_differ)
{
	struct np_sshkey *a, *b;

	ck_assert_int_eq(np_sshkey_generate(&a), NP_OK);
	ck_assert_int_eq(np_sshkey_generate(&b), NP_OK);
	ck_assert_mem_ne(np_sshkey_pk(a), np_sshkey_pk(b), 32);
	np_sshkey_free(a);
	np_sshkey_free(b);
	np_sshkey_free(NULL);
}
END_TEST

START_TEST(test_bad_comments)
{
	struct np_sshkey *k = zero_key();
	struct np_buf *b = np_buf_new_secure(NP_SSHKEY_PRIV_MAX);
	char longc[NP_SSHKEY_COMMENT_MAX + 2];

	memset(longc, 'a', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	ck_assert_int_eq(np_sshkey_private_pem(k, "a\nb", b), NP_ERR_INVALID);
	ck_assert_int_eq(np_sshkey_private_pem(k, "\x7f", b), NP_ERR_INVALID);
	ck_assert_int_eq(np_sshkey_private_pem(k, "caf\xc3\xa9", b),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_sshkey_private_pem(k, longc, b), NP_ERR_INVALID);
	ck_assert_int_eq(np_sshkey_public_line(k, "a\tb", b), NP_ERR_INVALID);
	ck_assert_uint_eq(np_buf_len(b), 0);
	longc[NP_SSHKEY_COMMENT_MAX] = '\0';
	ck_assert_int_eq(np_sshkey_private_pem(k, longc, b), NP_OK);
	np_buf_free(b);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_output_buffer_too_small)
{
	struct np_sshkey *k = zero_key();
	struct np_buf *b = np_buf_new_secure(200);

	ck_assert_int_eq(np_sshkey_private_pem(k, "x", b), NP_ERR_TOO_BIG);
	np_buf_free(b);
	np_sshkey_free(k);
}
END_TEST

/* Mutate the decoded body of a good key at off and expect a refusal. */
static void
expect_mutation_refused(size_t off, uint8_t x)
{
	struct np_sshkey *k = zero_key(), *k2 = NULL;
	char *s = pem_of(k, "comment"), *t;
	uint8_t bin[2048];
	size_t n = pem_body(s, bin, sizeof(bin));

	ck_assert_uint_lt(off, n);
	bin[off] ^= x;
	t = pem_wrap(bin, n);
	ck_assert_int_ne(parse_str(t, &k2), NP_OK);
	ck_assert_ptr_null(k2);
	free(s);
	free(t);
	np_sshkey_free(k);
}

START_TEST(test_private_mutations_refused)
{
	/* Offsets into the 15+8+8+4+4+55+4 = 98-byte header, then the
	 * private section: check ints at 98..105, type, pk, sk, comment. */
	size_t offs[] = {0,  14, 19,  27,  34,	38,  45,  60,  90, 93,
			 97, 98, 102, 109, 125, 150, 190, 215, 228};
	size_t i;

	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		expect_mutation_refused(offs[i], 0x01);
	}
}
END_TEST

START_TEST(test_private_padding_refused)
{
	struct np_sshkey *k = zero_key(), *k2 = NULL;
	char *s = pem_of(k, "comment"), *t;
	uint8_t bin[2048];
	size_t n = pem_body(s, bin, sizeof(bin));

	/* The last byte is padding ("comment" leaves 1..N of it). */
	bin[n - 1] = 0;
	t = pem_wrap(bin, n);
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	/* Truncated body: the outer string lengths no longer fit. */
	t = pem_wrap(bin, n - 8);
	ck_assert_int_ne(parse_str(t, &k2), NP_OK);
	free(t);
	/* Trailing bytes after the private section. */
	bin[n - 1] = (uint8_t)bin[n - 2] + 1;
	memset(bin + n, 0, 4);
	t = pem_wrap(bin, n + 4);
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	ck_assert_ptr_null(k2);
	free(s);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_private_armour_refused)
{
	struct np_sshkey *k = zero_key(), *k2 = NULL;
	char *s = pem_of(k, "c"), *t;
	size_t n = strlen(s);
	char big[NP_SSHKEY_PRIV_MAX + 10];

	ck_assert_int_eq(parse_str("", &k2), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str("-----BEGIN OPENSSH PRIVATE KEY-----\n"
				   "-----END OPENSSH PRIVATE KEY-----\n",
				   &k2),
			 NP_ERR_INVALID);
	t = strdup(s);
	t[5] = 'X'; /* BEGIN line */
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	t = strdup(s);
	t[n - 5] = 'X'; /* END line */
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	t = strdup(s);
	t[40] = '*'; /* not base64 */
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	t = malloc(n + 10);
	snprintf(t, n + 10, "%sjunk", s); /* after END */
	ck_assert_int_eq(parse_str(t, &k2), NP_ERR_INVALID);
	free(t);
	ck_assert_int_eq(
	    np_sshkey_parse_private((const uint8_t *)s, n - 10, &k2),
	    NP_ERR_INVALID);
	memset(big, 'A', sizeof(big));
	ck_assert_int_eq(
	    np_sshkey_parse_private((const uint8_t *)big, sizeof(big), &k2),
	    NP_ERR_TOO_BIG);
	ck_assert_ptr_null(k2);
	free(s);
	np_sshkey_free(k);
}
END_TEST

START_TEST(test_ed25519_b64)
{
	struct np_sshkey *k = zero_key();
	char b64[NP_SSHKEY_B64_LEN + 1], bad[NP_SSHKEY_B64_LEN + 1];
	uint8_t pk[32];

	ck_assert_int_eq(
	    np_sshkey_ed25519_b64(np_sshkey_pk(k), b64, sizeof(b64)), NP_OK);
	ck_assert_str_eq(b64, ZERO_PUB + strlen("ssh-ed25519 "));
	ck_assert_int_eq(np_sshkey_ed25519_b64(np_sshkey_pk(k), bad, 10),
			 NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_sshkey_ed25519_from_b64(b64, strlen(b64), pk),
			 NP_OK);
	ck_assert_mem_eq(pk, np_sshkey_pk(k), 32);
	ck_assert_int_eq(np_sshkey_ed25519_from_b64(b64, strlen(b64) - 1, pk),
			 NP_ERR_INVALID);
	/* The blob's type string differs. */
	memcpy(bad, b64, sizeof(bad));
	bad[8] = 'X';
	ck_assert_int_ne(np_sshkey_ed25519_from_b64(bad, strlen(bad), pk),
			 NP_OK);
	/* Not base64 at all, or padding where none belongs. */
	memcpy(bad, b64, sizeof(bad));
	bad[30] = ' ';
	ck_assert_int_ne(np_sshkey_ed25519_from_b64(bad, strlen(bad), pk),
			 NP_OK);
	memcpy(bad, b64, sizeof(bad));
	bad[NP_SSHKEY_B64_LEN - 1] = '=';
	ck_assert_int_ne(np_sshkey_ed25519_from_b64(bad, strlen(bad), pk),
			 NP_OK);
	/* An ecdsa blob is not an ed25519 one. */
	ck_assert_int_ne(np_sshkey_ed25519_from_b64(HOST_P256 + 20, 68, pk),
			 NP_OK);
	np_sshkey_free(k);
}
END_TEST

static void
check_host_line(const char *line, const char *type, const char *fp,
		const char *comment)
{
	struct np_sshpub *p = NULL;
	struct np_buf *b = np_buf_new(NP_SSHPUB_LINE_MAX);
	char got[NP_FP_MAX];
	size_t sp;

	ck_assert_int_eq(
	    np_sshpub_parse((const uint8_t *)line, strlen(line), &p), NP_OK);
	ck_assert_str_eq(p->type, type);
	ck_assert_str_eq(p->comment, comment);
	if (fp != NULL) {
		ck_assert_int_eq(np_sshkey_fingerprint(p->blob, p->bloblen, got,
						       sizeof(got)),
				 NP_OK);
		ck_assert_str_eq(got, fp);
	}
	ck_assert_int_eq(np_sshpub_format(p, b), NP_OK);
	sp = strcspn(line + strlen(type) + 1, " \r\n") + strlen(type) + 1;
	ck_assert_uint_eq(np_buf_len(b), sp);
	ck_assert_mem_eq(np_buf_ptr(b), line, sp);
	np_sshpub_free(p);
	np_buf_free(b);
}

START_TEST(test_host_lines)
{
	check_host_line(HOST_ED, "ssh-ed25519", HOST_ED_FP, "root@host");
	check_host_line(HOST_P256, "ecdsa-sha2-nistp256", HOST_P256_FP,
			"root@host");
	check_host_line(HOST_P384, "ecdsa-sha2-nistp384", NULL, "x");
	check_host_line(HOST_RSA, "ssh-rsa", HOST_RSA_FP, "root@host");
	check_host_line(ZERO_PUB, "ssh-ed25519", ZERO_FP, "");
	check_host_line(ZERO_PUB "\r\n", "ssh-ed25519", ZERO_FP, "");
	check_host_line(ZERO_PUB " two words\n", "ssh-ed25519", ZERO_FP,
			"two words");
	np_sshpub_free(NULL);
}
END_TEST

static int
parse_line(const char *s)
{
	struct np_sshpub *p = NULL;
	int r = np_sshpub_parse((const uint8_t *)s, strlen(s), &p);

	if (r != NP_OK) {
		ck_assert_ptr_null(p);
	}
	np_sshpub_free(p);
	return r;
}

START_TEST(test_host_lines_refused)
{
	struct np_sshpub *q = NULL;
	char *big, buf[1024];
	size_t n;

	ck_assert_int_eq(parse_line(""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_line("\n"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_line("ssh-ed25519"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_line("ssh-ed25519 \n"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_line("ssh-ed25519 !!!!"), NP_ERR_INVALID);
	/* Line type and blob type differ. */
	snprintf(buf, sizeof(buf), "ssh-rsa %s", ZERO_PUB + 12);
	ck_assert_int_eq(parse_line(buf), NP_ERR_INVALID);
	snprintf(buf, sizeof(buf), "ecdsa-sha2-nistp384 %s", HOST_P256 + 20);
	ck_assert_int_eq(parse_line(buf), NP_ERR_INVALID);
	/* Unknown types, even when the blob agrees. */
	ck_assert_int_eq(parse_line("ssh-dss AAAAB3NzaC1kc3M="),
			 NP_ERR_INVALID);
	ck_assert_int_eq(parse_line("foo AAAAA2Zvbw=="), NP_ERR_INVALID);
	/* Truncated blob, trailing bytes in the blob. */
	ck_assert_int_eq(parse_line("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ"
				    "7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWQ=="),
			 NP_ERR_INVALID);
	ck_assert_int_eq(
	    parse_line("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ"
		       "7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdopAA=="),
	    NP_ERR_INVALID);
	/* Control bytes, NUL, text after the newline. */
	snprintf(buf, sizeof(buf), "%s\x1b[31m", ZERO_PUB " c");
	ck_assert_int_eq(parse_line(buf), NP_ERR_INVALID);
	snprintf(buf, sizeof(buf), "%s\nssh-ed25519 AAAA", ZERO_PUB);
	ck_assert_int_eq(parse_line(buf), NP_ERR_INVALID);
	memcpy(buf, ZERO_PUB " c", sizeof(ZERO_PUB " c"));
	n = strlen(buf);
	buf[n - 1] = '\0';
	ck_assert_int_eq(np_sshpub_parse((const uint8_t *)buf, n, &q),
			 NP_ERR_INVALID);
	/* Oversized. */
	big = malloc(NP_SSHPUB_LINE_MAX + 2);
	memset(big, 'A', NP_SSHPUB_LINE_MAX + 1);
	memcpy(big, "ssh-rsa ", 8);
	big[NP_SSHPUB_LINE_MAX + 1] = '\0';
	ck_assert_int_eq(parse_line(big), NP_ERR_TOO_BIG);
	big[NP_SSHPUB_LINE_MAX - 10] = '\0';
	ck_assert_int_eq(parse_line(big), NP_ERR_INVALID);
	free(big);
	/* A type name over the cap. */
	memset(buf, 'a', 100);
	snprintf(buf + 100, sizeof(buf) - 100, " AAAA");
	ck_assert_int_eq(parse_line(buf), NP_ERR_INVALID);
}
END_TEST

START_TEST(test_host_key_load)
{
	char dir[] = "/tmp/np-test-sshkey-XXXXXX", path[128], link[128];
	struct np_sshpub *p = NULL;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ssh_host_ed25519_key.pub", dir);
	snprintf(link, sizeof(link), "%s/link.pub", dir);
	f = fopen(path, "w");
	fputs(HOST_ED, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(np_sshpub_load(path, &p), NP_OK);
	ck_assert_str_eq(p->type, "ssh-ed25519");
	np_sshpub_free(p);
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(np_sshpub_load(link, &p), NP_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0664), 0);
	ck_assert_int_eq(np_sshpub_load(path, &p), NP_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0644), 0);
	snprintf(link, sizeof(link), "%s/none.pub", dir);
	ck_assert_int_eq(np_sshpub_load(link, &p), NP_ERR_NOT_FOUND);
	ck_assert_ptr_null(p);
	unlink(path);
	snprintf(link, sizeof(link), "%s/link.pub", dir);
	unlink(link);
	rmdir(dir);
}
END_TEST

static Suite *
sshkey_suite(void)
{
	Suite *s = suite_create("sshkey");
	TCase *tc = tcase_create("private");
	TCase *tp = tcase_create("public");

	tcase_add_test(tc, test_pem_layout);
	tcase_add_test(tc, test_checkints_random);
	tcase_add_test(tc, test_private_roundtrip);
	tcase_add_test(tc, test_two_keys_differ);
	tcase_add_test(tc, test_bad_comments);
	tcase_add_test(tc, test_output_buffer_too_small);
	tcase_add_test(tc, test_private_mutations_refused);
	tcase_add_test(tc, test_private_padding_refused);
	tcase_add_test(tc, test_private_armour_refused);
	suite_add_tcase(s, tc);
	tcase_add_test(tp, test_public_line_matches_ssh_keygen);
	tcase_add_test(tp, test_fingerprint_matches_ssh_keygen);
	tcase_add_test(tp, test_ed25519_b64);
	tcase_add_test(tp, test_host_lines);
	tcase_add_test(tp, test_host_lines_refused);
	tcase_add_test(tp, test_host_key_load);
	suite_add_tcase(s, tp);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (np_crypto_init() != NP_OK) {
		return EXIT_FAILURE;
	}
	sr = srunner_create(sshkey_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
