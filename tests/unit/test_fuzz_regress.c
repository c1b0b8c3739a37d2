/*
 * Regression tests for what the fuzz targets (tests/fuzz/) found; each
 * input is also kept in its target's seed corpus.  docs/SECURITY.md,
 * "Fuzzing", lists them.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "key.h"
#include "sshkey.h"

/* ssh-keygen -y of the key with the all-zero seed (test_sshkey.c). */
#define ZERO_B64                                                               \
	"AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"

/*
 * fuzz_sshpub: libsodium 1.0.18 decodes a byte >= 0x80 as the letter
 * '/', so "ssh-ed25519 ...\x82..." parsed as a key whose canonical text
 * is another string.  One key, one encoding: refused now.
 */
START_TEST(test_sshpub_high_byte_refused)
{
	struct np_sshpub *p = NULL;
	char line[] = "ssh-ed25519 " ZERO_B64 " c";
	size_t i, off = strlen("ssh-ed25519 ");

	ck_assert_int_eq(np_sshpub_parse((const uint8_t *)line,
	    strlen(line), &p), NP_OK);
	np_sshpub_free(p);
	p = NULL;
	for (i = off; i < off + strlen(ZERO_B64); i++) {
		if (line[i] != '/' && line[i] != 'z') {
			continue;
		}
		char save = line[i];

		line[i] = (char)0x82;
		ck_assert_int_ne(np_sshpub_parse((const uint8_t *)line,
		    strlen(line), &p), NP_OK);
		ck_assert_ptr_null(p);
		line[i] = (char)0xff;
		ck_assert_int_ne(np_sshpub_parse((const uint8_t *)line,
		    strlen(line), &p), NP_OK);
		ck_assert_ptr_null(p);
		line[i] = save;
	}
}
END_TEST

/*
 * The same for the body of a private key file (found by reading the
 * parser after the finding above: the comment's bytes are not checked,
 * so a high byte there gave a second encoding of the same key).
 */
START_TEST(test_private_high_byte_refused)
{
	uint8_t seed[32] = { 0 };
	struct np_sshkey *k = NULL, *k2 = NULL;
	struct np_buf *b = np_buf_new_secure(NP_SSHKEY_PRIV_MAX);
	uint8_t *pem;
	size_t i, n, hits = 0;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(np_sshkey_from_seed(seed, &k), NP_OK);
	/* '?' is 0x3f: the comment's base64 holds '/' at any alignment. */
	ck_assert_int_eq(np_sshkey_private_pem(k, "?????????", b), NP_OK);
	n = np_buf_len(b);
	pem = malloc(n);
	ck_assert_ptr_nonnull(pem);
	memcpy(pem, np_buf_ptr(b), n);
	ck_assert_int_eq(np_sshkey_parse_private(pem, n, &k2), NP_OK);
	np_sshkey_free(k2);
	k2 = NULL;
	/* Past the BEGIN line: every '/' made a high byte is refused. */
	for (i = 36; i < n; i++) {
		if (pem[i] != '/') {
			continue;
		}
		pem[i] = 0x82;
		ck_assert_int_ne(np_sshkey_parse_private(pem, n, &k2), NP_OK);
		ck_assert_ptr_null(k2);
		pem[i] = '/';
		hits++;
	}
	/* A high byte anywhere in the body is refused too. */
	pem[40] = 0xff;
	ck_assert_int_ne(np_sshkey_parse_private(pem, n, &k2), NP_OK);
	ck_assert_uint_gt(hits, 0);
	free(pem);
	np_sshkey_free(k);
	np_buf_free(b);
}
END_TEST

/*
 * Found while listing the parsers for fuzz_sanitize: cli_err, which
 * prints a device's or a rendezvous' refusal reason, replaced C0
 * controls and DEL but let C1 controls through (U+009B, CSI, is
 * "\xc2\x9b" in UTF-8), unlike cli_sanitize.
 */
START_TEST(test_sanitize_inplace_c1)
{
	char s[] = "a\xc2\x9b" "31mb\x1b[0m\x7f\xc2\xa0\xc2";

	cli_sanitize_inplace(s);
	ck_assert_str_eq(s, "a??31mb?[0m?\xc2\xa0\xc2");
}
END_TEST

static Suite *
fuzz_regress_suite(void)
{
	Suite *s = suite_create("fuzz_regress");
	TCase *tc = tcase_create("found");

	tcase_add_test(tc, test_sshpub_high_byte_refused);
	tcase_add_test(tc, test_private_high_byte_refused);
	tcase_add_test(tc, test_sanitize_inplace_c1);
	suite_add_tcase(s, tc);
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
	sr = srunner_create(fuzz_regress_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
