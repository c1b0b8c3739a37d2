/* Unit tests for lib/key.c: identity keys, key files, base64, messages. */
#include <sys/stat.h>
#include <sys/types.h>

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"

/* RFC 8032 section 7.1, test 1. */
static const uint8_t rfc_seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
	0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
	0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const uint8_t rfc_pk[32] = {
	0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
	0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
	0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};

static char tmpdir[64];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/np-test-key-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

static void
teardown(void)
{
	ck_assert_int_eq(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static void
tpath(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

/* Key-file text of a fixed key, into a plain string. */
static char *
keyfile_text(const char *name)
{
	struct np_key *k;
	struct np_buf *b;
	char *s;

	ck_assert_int_eq(np_key_from_seed(name, rfc_seed, &k), NP_OK);
	b = np_buf_new_secure(NP_KEYFILE_MAX);
	ck_assert_int_eq(np_key_serialize(k, b), NP_OK);
	s = strndup((const char *)np_buf_ptr(b), np_buf_len(b));
	np_buf_free(b);
	np_key_free(k);
	return s;
}

static int
parse_str(const char *s)
{
	struct np_key *k = NULL;
	int r;

	r = np_key_parse((const uint8_t *)s, strlen(s), &k);
	if (r == NP_OK) {
		ck_assert_ptr_nonnull(k);
	} else {
		ck_assert_ptr_null(k);
	}
	np_key_free(k);
	return r;
}

static void
write_file(const char *path, const char *s, mode_t mode)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

START_TEST(t_from_seed_vector)
{
	struct np_key *k;
	char fp[NP_FP_MAX];

	ck_assert_int_eq(np_key_from_seed("alice", rfc_seed, &k), NP_OK);
	ck_assert_str_eq(np_key_name(k), "@alice");
	ck_assert_mem_eq(np_key_pk(k), rfc_pk, 32);
	ck_assert_int_eq(np_fingerprint(np_key_pk(k), 32, fp, sizeof(fp)),
	    NP_OK);
	ck_assert_int_eq(strncmp(fp, "SHA256:", 7), 0);
	ck_assert_uint_eq(strlen(fp), 7 + 43);
	np_key_free(k);
	ck_assert_int_eq(np_key_from_seed("Bad Name", rfc_seed, &k),
	    NP_ERR_INVALID);
	ck_assert_ptr_null(k);
	np_key_free(NULL);
}
END_TEST

START_TEST(t_generate_sign_verify)
{
	struct np_key *a, *b;
	uint8_t sig[NP_SIG_LEN], x1[32], x2[32];
	const uint8_t msg[] = "hello";

	ck_assert_int_eq(np_key_generate("@alice", &a), NP_OK);
	ck_assert_int_eq(np_key_generate("@alice", &b), NP_OK);
	ck_assert_mem_ne(np_key_pk(a), np_key_pk(b), 32);
	ck_assert_int_eq(np_key_sign(a, msg, 5, sig), NP_OK);
	ck_assert_int_eq(np_sig_verify(np_key_pk(a), msg, 5, sig), NP_OK);
	ck_assert_int_eq(np_sig_verify(np_key_pk(b), msg, 5, sig),
	    NP_ERR_CRYPTO);
	ck_assert_int_eq(np_sig_verify(np_key_pk(a), msg, 4, sig),
	    NP_ERR_CRYPTO);
	sig[10] ^= 1;
	ck_assert_int_eq(np_sig_verify(np_key_pk(a), msg, 5, sig),
	    NP_ERR_CRYPTO);
	/* The X25519 halves agree with each other. */
	ck_assert_int_eq(np_pk_box_pk(np_key_pk(a), x1), NP_OK);
	ck_assert_int_eq(crypto_scalarmult_base(x2, np_key_box_sk(a)), 0);
	ck_assert_mem_eq(x1, x2, 32);
	np_key_free(a);
	np_key_free(b);
	ck_assert_int_eq(np_key_generate("", &a), NP_ERR_INVALID);
	ck_assert_int_eq(np_key_generate("@UPPER", &a), NP_ERR_INVALID);
}
END_TEST

START_TEST(t_save_load_roundtrip)
{
	struct np_key *k, *l;
	char path[128];
	uint8_t sig[NP_SIG_LEN];
	struct stat st;

	tpath(path, sizeof(path), "id_key");
	umask(0);
	ck_assert_int_eq(np_key_generate("@dev-1.x", &k), NP_OK);
	ck_assert_int_eq(np_key_save(k, path, 0), NP_OK);
	umask(022);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(np_key_load(path, &l), NP_OK);
	ck_assert_str_eq(np_key_name(l), "@dev-1.x");
	ck_assert_mem_eq(np_key_pk(l), np_key_pk(k), 32);
	ck_assert_int_eq(np_key_sign(l, (const uint8_t *)"m", 1, sig), NP_OK);
	ck_assert_int_eq(np_sig_verify(np_key_pk(k), (const uint8_t *)"m", 1,
	    sig), NP_OK);
	np_key_free(l);
	np_key_free(k);
}
END_TEST

START_TEST(t_save_refuses_overwrite)
{
	struct np_key *k, *k2, *l;
	char path[128];
	struct stat st;

	tpath(path, sizeof(path), "k");
	ck_assert_int_eq(np_key_generate("@a", &k), NP_OK);
	ck_assert_int_eq(np_key_generate("@b", &k2), NP_OK);
	ck_assert_int_eq(np_key_save(k, path, 0), NP_OK);
	ck_assert_int_eq(np_key_save(k2, path, 0), NP_ERR_EXISTS);
	ck_assert_int_eq(np_key_load(path, &l), NP_OK);
	ck_assert_str_eq(np_key_name(l), "@a");
	np_key_free(l);
	ck_assert_int_eq(np_key_save(k2, path, 1), NP_OK);
	ck_assert_int_eq(np_key_load(path, &l), NP_OK);
	ck_assert_str_eq(np_key_name(l), "@b");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	np_key_free(l);
	/* No temp files left behind. */
	ck_assert_int_eq(count_entries(tmpdir), 1);
	tpath(path, sizeof(path), "nodir/k");
	ck_assert_int_eq(np_key_save(k, path, 0), NP_ERR_NOT_FOUND);
	np_key_free(k);
	np_key_free(k2);
}
END_TEST

START_TEST(t_load_refuses_unsafe)
{
	struct np_key *k;
	char path[128], link[128], *txt;

	txt = keyfile_text("@alice");
	tpath(path, sizeof(path), "k");
	write_file(path, txt, 0644);
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_PERM);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0602), 0);
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(np_key_load(path, &k), NP_OK);
	np_key_free(k);
	tpath(link, sizeof(link), "link");
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(np_key_load(link, &k), NP_ERR_PERM);
	ck_assert_int_eq(np_key_load(tmpdir, &k), NP_ERR_PERM);
	tpath(path, sizeof(path), "fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_PERM);
	tpath(path, sizeof(path), "missing");
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_NOT_FOUND);
	free(txt);
}
END_TEST

START_TEST(t_load_too_big)
{
	struct np_key *k;
	char path[128], *big;

	big = malloc(NP_KEYFILE_MAX + 2);
	memset(big, 'a', NP_KEYFILE_MAX + 1);
	big[NP_KEYFILE_MAX + 1] = '\0';
	tpath(path, sizeof(path), "big");
	write_file(path, big, 0600);
	ck_assert_int_eq(np_key_load(path, &k), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_key_parse((const uint8_t *)big, NP_KEYFILE_MAX + 1,
	    &k), NP_ERR_TOO_BIG);
	free(big);
}
END_TEST

START_TEST(t_parse_good_forms)
{
	char *txt = keyfile_text("@alice"), *s;
	size_t n = strlen(txt);

	ck_assert_int_eq(parse_str(txt), NP_OK);
	s = strndup(txt, n - 1); /* without the final newline */
	ck_assert_int_eq(parse_str(s), NP_OK);
	free(s);
	free(txt);
}
END_TEST

/* Replace the first occurrence of from by to in the key text. */
static int
parse_edit(const char *from, const char *to)
{
	char *txt = keyfile_text("@alice"), *at, buf[1024];
	int r;

	at = strstr(txt, from);
	ck_assert_ptr_nonnull(at);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - txt), txt, to,
	    at + strlen(from));
	r = parse_str(buf);
	free(txt);
	return r;
}

START_TEST(t_parse_bad_forms)
{
	char *txt = keyfile_text("@alice"), buf[1024], *sec;

	ck_assert_int_eq(parse_str(""), NP_ERR_INVALID);
	{
		struct np_key *k = NULL;

		ck_assert_int_eq(np_key_parse(NULL, 0, &k), NP_ERR_INVALID);
		ck_assert_ptr_null(k);
	}
	ck_assert_int_eq(parse_str("noports-identity-key-v1\n"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(parse_str("noports-identity-key-v1\nname @a\n"),
	    NP_ERR_INVALID);
	/* trailing junk, extra newline, CRLF, spaces */
	snprintf(buf, sizeof(buf), "%sx", txt);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	snprintf(buf, sizeof(buf), "%s\n", txt);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("v1\n", "v1\r\n"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("v1\n", "v2\n"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("name @", "name  @"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("name @", "Name @"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("secret ", "secret  "), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("=\n", "= \n"), NP_ERR_INVALID);
	/* invalid names */
	ck_assert_int_eq(parse_edit("@alice", "alice"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("@alice", "@Alice"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("@alice", "@"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("@alice", "@al ice"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("@alice",
	    "@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	    NP_ERR_INVALID);
	/* lines out of order */
	sec = strstr(txt, "secret ");
	snprintf(buf, sizeof(buf), "noports-identity-key-v1\n%sname @alice\n",
	    sec);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	free(txt);
}
END_TEST

START_TEST(t_parse_bad_secret)
{
	char buf[512], b64[128];
	uint8_t sk[64], pk[32], other[64];

	/* corrupted base64 */
	ck_assert_int_eq(parse_edit("secret ", "secret !"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_edit("==\n", "=A\n"), NP_ERR_INVALID);
	/* wrong lengths: 63 and 65 bytes */
	memset(other, 7, sizeof(other));
	ck_assert_int_eq(np_b64_encode(other, 63, b64, sizeof(b64)), NP_OK);
	snprintf(buf, sizeof(buf),
	    "noports-identity-key-v1\nname @alice\nsecret %s\n", b64);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_encode(other, 48, b64, sizeof(b64)), NP_OK);
	snprintf(buf, sizeof(buf),
	    "noports-identity-key-v1\nname @alice\nsecret %s\n", b64);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* public half not matching the seed */
	crypto_sign_seed_keypair(pk, sk, rfc_seed);
	sk[40] ^= 0x01;
	ck_assert_int_eq(np_b64_encode(sk, 64, b64, sizeof(b64)), NP_OK);
	snprintf(buf, sizeof(buf),
	    "noports-identity-key-v1\nname @alice\nsecret %s\n", b64);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	sk[40] ^= 0x01;
	ck_assert_int_eq(np_b64_encode(sk, 64, b64, sizeof(b64)), NP_OK);
	snprintf(buf, sizeof(buf),
	    "noports-identity-key-v1\nname @alice\nsecret %s", b64);
	ck_assert_int_eq(parse_str(buf), NP_OK);
	/* NUL inside the name line */
	{
		static const char nul[] =
		    "noports-identity-key-v1\nname @a\0b\n";
		struct np_key *k;

		ck_assert_int_eq(np_key_parse((const uint8_t *)nul,
		    sizeof(nul) - 1, &k), NP_ERR_INVALID);
	}
}
END_TEST

START_TEST(t_b64)
{
	uint8_t in[5] = { 0, 1, 2, 0xfe, 0xff }, out[8];
	char s[16];
	size_t n;

	ck_assert_int_eq(np_b64_encode(in, 5, s, sizeof(s)), NP_OK);
	ck_assert_str_eq(s, "AAEC/v8=");
	ck_assert_int_eq(np_b64_encode(in, 5, s, 8), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_b64_decode("AAEC/v8=", out, sizeof(out), &n),
	    NP_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(out, in, 5);
	ck_assert_int_eq(np_b64_decode_exact("AAEC/v8=", out, 5), NP_OK);
	ck_assert_int_eq(np_b64_decode_exact("AAEC/v8=", out, 4),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode_exact("AAEC/v8=", out, 6),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("AAEC/v8", out, 8, &n), NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("AAEC_v8=", out, 8, &n), NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("AAEC/v8=A", out, 8, &n),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("AAEC/v8= ", out, 8, &n),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("", out, 8, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(np_b64_decode_exact("", out, 1), NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode(NULL, out, 8, &n), NP_ERR_INVALID);
}
END_TEST

/* Bytes >= 0x80 are not base64, whatever libsodium 1.0.18 thinks. */
START_TEST(t_b64_high_bytes)
{
	uint8_t out[32];
	size_t n;

	ck_assert_int_eq(np_b64_decode("QUJD", out, sizeof(out), &n), NP_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(np_b64_decode("QU\xdf" "D", out, sizeof(out), &n),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_b64_decode("QUJ\x80", out, sizeof(out), &n),
	    NP_ERR_INVALID);
	ck_assert(!np_b64_alphabet_ok("ab-_", 4, 0));
	ck_assert(np_b64_alphabet_ok("ab-_", 4, 1));
	ck_assert(!np_b64_alphabet_ok("ab+/", 4, 1));
}
END_TEST

START_TEST(t_fingerprint)
{
	char fp[NP_FP_MAX];

	/* ssh-style: SHA-256 of the empty string, unpadded base64 */
	ck_assert_int_eq(np_fingerprint((const uint8_t *)"", 0, fp,
	    sizeof(fp)), NP_OK);
	ck_assert_str_eq(fp,
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	ck_assert_int_eq(np_fingerprint((const uint8_t *)"", 0, fp, 40),
	    NP_ERR_TOO_BIG);
}
END_TEST

START_TEST(t_messages)
{
	struct np_buf *b = np_buf_new(1024);
	uint8_t nonce[32], cb[32], pk[32];
	const uint8_t *p;

	memset(nonce, 1, 32);
	memset(cb, 2, 32);
	memset(pk, 3, 32);
	ck_assert_int_eq(np_auth_message(nonce, cb, "@alice", b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 16 + 64 + 6);
	p = np_buf_ptr(b);
	ck_assert_mem_eq(p, "noports-auth-v1\0", 16);
	ck_assert_mem_eq(p + 16, nonce, 32);
	ck_assert_mem_eq(p + 48, cb, 32);
	ck_assert_mem_eq(p + 80, "@alice", 6);
	np_buf_reset(b);
	ck_assert_int_eq(np_enroll_message(nonce, cb, pk, "@alice", b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 18 + 96 + 6);
	p = np_buf_ptr(b);
	ck_assert_mem_eq(p, "noports-enroll-v1\0", 18);
	ck_assert_mem_eq(p + 18, nonce, 32);
	ck_assert_mem_eq(p + 50, cb, 32);
	ck_assert_mem_eq(p + 82, pk, 32);
	ck_assert_mem_eq(p + 114, "@alice", 6);
	np_buf_reset(b);
	ck_assert_int_eq(np_auth_message(nonce, cb, "alice", b),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_enroll_message(nonce, cb, pk, "@A", b),
	    NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

START_TEST(t_file_helpers)
{
	struct np_buf *b;
	char path[128];
	struct stat st;

	tpath(path, sizeof(path), "f");
	umask(0);
	ck_assert_int_eq(np_file_write_atomic(path, (const uint8_t *)"abc", 3,
	    0), NP_OK);
	umask(022);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(np_file_write_atomic(path, (const uint8_t *)"x", 1,
	    0), NP_ERR_EXISTS);
	ck_assert_int_eq(np_file_read_checked(path, 100, 077, 0, &b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 3);
	ck_assert_mem_eq(np_buf_ptr(b), "abc", 3);
	np_buf_free(b);
	ck_assert_int_eq(np_file_read_checked(path, 2, 077, 1, &b),
	    NP_ERR_TOO_BIG);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(np_file_write_atomic(path, (const uint8_t *)"", 0, 1),
	    NP_OK);
	ck_assert_int_eq(np_file_read_checked(path, 100, 077, 1, &b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
	ck_assert_int_eq(np_file_write_atomic("", (const uint8_t *)"", 0, 1),
	    NP_ERR_INVALID);
}
END_TEST

static Suite *
key_suite(void)
{
	Suite *s = suite_create("key");
	TCase *tc;

	tc = tcase_create("keys");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_from_seed_vector);
	tcase_add_test(tc, t_generate_sign_verify);
	tcase_add_test(tc, t_save_load_roundtrip);
	tcase_add_test(tc, t_save_refuses_overwrite);
	tcase_add_test(tc, t_load_refuses_unsafe);
	tcase_add_test(tc, t_load_too_big);
	tcase_add_test(tc, t_file_helpers);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, t_parse_good_forms);
	tcase_add_test(tc, t_parse_bad_forms);
	tcase_add_test(tc, t_parse_bad_secret);
	suite_add_tcase(s, tc);

	tc = tcase_create("encodings");
	tcase_add_test(tc, t_b64);
	tcase_add_test(tc, t_fingerprint);
	tcase_add_test(tc, t_b64_high_bytes);
	tcase_add_test(tc, t_messages);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(key_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
