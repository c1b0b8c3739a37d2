/*
 * Unit tests for lib/spool.c: the key spool file format and directory
 * walk, the authorized_keys line, and the authorized_keys rewrite that
 * np-keyhelper install/sweep use.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "log.h"
#include "spool.h"
#include "sshkey.h"

/* The all-zero-seed key (see test_sshkey.c), as ssh-keygen -y prints it. */
#define ZB64                                                                   \
	"AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
#define SID1 "0123456789abcdef0123456789abcdef"
#define SID2 "fedcba9876543210fedcba9876543210"
#define T0 1700000000 /* 2023-11-14 22:13:20 UTC */
#define T0S "20231114221320Z"

#define GOOD                                                                   \
	"noports-spool-v1\nuser alice\nexpires 1700000000\n"                   \
	"session " SID1 "\nkey ssh-ed25519 " ZB64 "\n"
#define AKLINE(ts, sid)                                                        \
	"expiry-time=\"" ts "\",from=\"127.0.0.1,::1\" "                       \
	"ssh-ed25519 " ZB64 " noports-session-" sid

static char tmpdir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/np-test-spool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(chmod(tmpdir, 0700), 0);
}

static void
teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
zero_entry(struct np_spool_entry *e, const char *user, const char *sid,
	   int64_t expires)
{
	struct np_sshkey *k;
	static const uint8_t seed[32];

	memset(e, 0, sizeof(*e));
	snprintf(e->user, sizeof(e->user), "%s", user);
	snprintf(e->sid, sizeof(e->sid), "%s", sid);
	e->expires = expires;
	ck_assert_int_eq(np_sshkey_from_seed(seed, &k), NP_OK);
	memcpy(e->pk, np_sshkey_pk(k), 32);
	np_sshkey_free(k);
}

static int
parse(const char *s, struct np_spool_entry *e)
{
	return np_spool_parse((const uint8_t *)s, strlen(s), e);
}

static void
write_file(const char *name, const char *s, mode_t mode)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fwrite(s, 1, strlen(s), f);
	fclose(f);
	ck_assert_int_eq(chmod(p, mode), 0);
}

/* Whole file as a malloc'ed string. */
static char *
slurp(const char *path)
{
	char *s = calloc(1, 1 << 16);
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_lt(fread(s, 1, (1 << 16) - 1, f), (1 << 16) - 1);
	fclose(f);
	return s;
}

START_TEST(test_user_names)
{
	char l33[40];

	ck_assert(np_user_valid("alice"));
	ck_assert(np_user_valid("_apt"));
	ck_assert(np_user_valid("a"));
	ck_assert(np_user_valid("deploy-1.x_y"));
	ck_assert(np_user_valid("host$"));
	memset(l33, 'a', 32);
	l33[32] = '\0';
	ck_assert(np_user_valid(l33));
	l33[32] = '$';
	l33[33] = '\0';
	ck_assert(np_user_valid(l33));
	l33[32] = 'a';
	ck_assert(!np_user_valid(l33));
	ck_assert(!np_user_valid(""));
	ck_assert(!np_user_valid(NULL));
	ck_assert(!np_user_valid("$"));
	ck_assert(!np_user_valid("Alice"));
	ck_assert(!np_user_valid("-oProxy"));
	ck_assert(!np_user_valid("1abc"));
	ck_assert(!np_user_valid(".hidden"));
	ck_assert(!np_user_valid("a b"));
	ck_assert(!np_user_valid("a/b"));
	ck_assert(!np_user_valid("a$b"));
	ck_assert(!np_user_valid("a\n"));
	ck_assert(!np_user_valid("caf\xc3\xa9"));
	ck_assert(np_sid_valid(SID1));
	ck_assert(!np_sid_valid("0123456789ABCDEF0123456789abcdef"));
	ck_assert(!np_sid_valid("0123456789abcdef0123456789abcde"));
	ck_assert(!np_sid_valid(SID1 "0"));
	ck_assert(!np_sid_valid("../../../../../../../../etc/pass"));
	ck_assert(!np_sid_valid(NULL));
}
END_TEST

START_TEST(test_spool_roundtrip)
{
	struct np_spool_entry e, f;
	struct np_buf *b = np_buf_new(NP_SPOOL_FILE_MAX);

	ck_assert_int_eq(parse(GOOD, &e), NP_OK);
	ck_assert_str_eq(e.user, "alice");
	ck_assert_str_eq(e.sid, SID1);
	ck_assert_int_eq(e.expires, T0);
	zero_entry(&f, "alice", SID1, T0);
	ck_assert_mem_eq(e.pk, f.pk, 32);
	ck_assert_int_eq(np_spool_format(&e, b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), strlen(GOOD));
	ck_assert_mem_eq(np_buf_ptr(b), GOOD, strlen(GOOD));
	/* Formatting refuses what parsing would refuse. */
	np_buf_reset(b);
	snprintf(f.user, sizeof(f.user), "Bad");
	ck_assert_int_eq(np_spool_format(&f, b), NP_ERR_INVALID);
	zero_entry(&f, "alice", "xyz", T0);
	ck_assert_int_eq(np_spool_format(&f, b), NP_ERR_INVALID);
	zero_entry(&f, "alice", SID1, -1);
	ck_assert_int_eq(np_spool_format(&f, b), NP_ERR_INVALID);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
}
END_TEST

START_TEST(test_spool_parse_refuses)
{
	static const char *bad[] = {
	    "",
	    "noports-spool-v1\n",
	    "noports-spool-v2\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    /* no final newline */
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64,
	    /* an extra line */
	    GOOD "x\n",
	    GOOD "\n",
	    /* CRLF */
	    "noports-spool-v1\r\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\r\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    /* fields out of order */
	    "noports-spool-v1\nexpires 1700000000\nuser alice\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    /* bad user names */
	    "noports-spool-v1\nuser Alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser  alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser \nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\nexpires 1700000000\nsession " SID1 "\nkey ssh-ed25519 " ZB64
	    "\n",
	    /* bad times */
	    "noports-spool-v1\nuser alice\nexpires 01700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires -1\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires +5\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 253402300800\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 99999999999999999999\n"
	    "session " SID1 "\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 17e8\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 "\n",
	    /* bad sessions */
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession "
	    "0123456789ABCDEF0123456789abcdef\nkey ssh-ed25519 " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "0\nkey ssh-ed25519 " ZB64 "\n",
	    /* bad keys */
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-rsa " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519  " ZB64 "\n",
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 " ZB64 " comment\n",
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zO\n",
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey ssh-ed25519 AAAAC3NzaC1yc2EAAAAIDtqJ7zOtqQtYqOo"
	    "0CpvDXNlMhV3HeJDpjrASKGLWdop\n",
	    /* a forged option smuggled into a field */
	    "noports-spool-v1\nuser alice\nexpires 1700000000\nsession " SID1
	    "\nkey command=\"sh\" ssh-ed25519 " ZB64 "\n",
	};
	struct np_spool_entry e;
	char big[NP_SPOOL_FILE_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &e) == NP_OK) {
			ck_abort_msg("accepted bad spool text #%zu", i);
		}
		ck_assert_str_eq(e.user, "");
	}
	/* An embedded NUL. */
	ck_assert_int_eq(np_spool_parse((const uint8_t *)"noports-spool-v1\n"
							 "user al\0ce\n",
					29, &e),
			 NP_ERR_INVALID);
	memset(big, 'x', sizeof(big));
	memcpy(big, GOOD, strlen(GOOD));
	ck_assert_int_eq(np_spool_parse((const uint8_t *)big, sizeof(big), &e),
			 NP_ERR_TOO_BIG);
}
END_TEST

START_TEST(test_authkey_line)
{
	struct np_spool_entry e, f;
	struct np_buf *b = np_buf_new(512);
	char ts[16];

	zero_entry(&e, "alice", SID1, T0);
	ck_assert_int_eq(np_authkey_format(&e, b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), strlen(AKLINE(T0S, SID1)));
	ck_assert_mem_eq(np_buf_ptr(b), AKLINE(T0S, SID1), np_buf_len(b));
	ck_assert_int_eq(np_authkey_parse(np_buf_ptr(b), np_buf_len(b), &f),
			 NP_OK);
	ck_assert_str_eq(f.sid, SID1);
	ck_assert_int_eq(f.expires, T0);
	ck_assert_mem_eq(f.pk, e.pk, 32);
	ck_assert_str_eq(f.user, "");
	ck_assert_int_eq(np_expiry_format(0, ts, sizeof(ts)), NP_OK);
	ck_assert_str_eq(ts, "19700101000000Z");
	ck_assert_int_eq(np_expiry_format(NP_SPOOL_TIME_MAX, ts, sizeof(ts)),
			 NP_OK);
	ck_assert_str_eq(ts, "99991231235959Z");
	ck_assert_int_eq(np_expiry_format(-1, ts, sizeof(ts)), NP_ERR_INVALID);
	ck_assert_int_eq(np_expiry_format(T0, ts, 15), NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

START_TEST(test_authkey_parse_refuses)
{
	static const char *bad[] = {
	    "",
	    AKLINE("20231314221320Z", SID1), /* month 13 */
	    AKLINE("20230230221320Z", SID1), /* Feb 30 */
	    AKLINE("20231114246020Z", SID1),
	    AKLINE("2023111422132OZ", SID1),
	    AKLINE("20231114221320X", SID1),
	    AKLINE(T0S, "0123456789ABCDEF0123456789abcdef"),
	    AKLINE(T0S, SID1) " ",
	    " " AKLINE(T0S, SID1),
	    "expiry-time=\"" T0S "\",from=\"0.0.0.0/0\" ssh-ed25519 " ZB64
	    " noports-session-" SID1,
	    "expiry-time=\"" T0S "\",from=\"127.0.0.1,::1\" ssh-ed25519 " ZB64
	    " noports-sessiom-" SID1,
	    "command=\"" T0S "\",from=\"127.0.0.1,::1\" ssh-ed25519 " ZB64
	    " noports-session-" SID1,
	    "ssh-ed25519 " ZB64 " noports-session-" SID1,
	};
	struct np_spool_entry e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (np_authkey_parse((const uint8_t *)bad[i], strlen(bad[i]),
				     &e) == NP_OK) {
			ck_abort_msg("took a foreign line for ours: #%zu", i);
		}
	}
}
END_TEST

/* sweep_buf of in at now must give want, removing n lines. */
static void
expect_sweep(const char *in, int64_t now, const char *want, unsigned n)
{
	struct np_buf *b = np_buf_new(1 << 16);
	unsigned removed = 99;

	ck_assert_int_eq(np_authkeys_sweep_buf((const uint8_t *)in, strlen(in),
					       now, b, &removed),
			 NP_OK);
	ck_assert_uint_eq(removed, n);
	ck_assert_uint_eq(np_buf_len(b), strlen(want));
	ck_assert_mem_eq(np_buf_ptr(b), want, strlen(want));
	np_buf_free(b);
}

#define OTHER1 "# my keys\r\n"
#define OTHER2                                                                 \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBUWe0BE37Q8z47wjn++7/8"          \
	"+t1eYGzwq5cZnE46k/LrK me@laptop\n"
#define OTHER3 "\n  \t\n"
#define OTHER_LAST "restrict ssh-rsa AAAA no-final-newline"
#define EXP1 AKLINE(T0S, SID1) "\n"
#define LATER AKLINE("20231114221321Z", SID2) "\n"

START_TEST(test_sweep_buf)
{
	const char *in = EXP1 OTHER1 OTHER2 LATER OTHER3 OTHER_LAST;

	expect_sweep("", T0, "", 0);
	/* expires <= now goes, expires > now stays, nothing else moves. */
	expect_sweep(in, T0 - 1, in, 0);
	expect_sweep(in, T0, OTHER1 OTHER2 LATER OTHER3 OTHER_LAST, 1);
	expect_sweep(in, T0 + 1, OTHER1 OTHER2 OTHER3 OTHER_LAST, 2);
	/* A marked line as the last line without newline; CRLF ones. */
	expect_sweep(OTHER2 AKLINE(T0S, SID1), T0, OTHER2, 1);
	expect_sweep(OTHER1 AKLINE(T0S, SID1) "\r\n" OTHER1, T0, OTHER1 OTHER1,
		     1);
	/* Lines that merely look like ours are kept. */
	expect_sweep("#" EXP1 " " EXP1 EXP1 "x", T0 + 5, "#" EXP1 " " EXP1 "x",
		     1);
}
END_TEST

START_TEST(test_install_buf)
{
	static const char *origs[] = {
	    "",	  OTHER1,     OTHER2 OTHER_LAST, OTHER1 OTHER2 OTHER3,
	    "\n", OTHER_LAST, "\r\n\r\n"};
	struct np_spool_entry e;
	struct np_buf *b = np_buf_new(1 << 16), *c = np_buf_new(1 << 16);
	unsigned n;
	size_t i;

	zero_entry(&e, "", SID1, T0);
	for (i = 0; i < sizeof(origs) / sizeof(origs[0]); i++) {
		np_buf_reset(b);
		np_buf_reset(c);
		ck_assert_int_eq(
		    np_authkeys_install_buf((const uint8_t *)origs[i],
					    strlen(origs[i]), &e, T0 - 10, b),
		    NP_OK);
		ck_assert_uint_eq(np_buf_len(b),
				  strlen(EXP1) + strlen(origs[i]));
		ck_assert_mem_eq(np_buf_ptr(b), EXP1, strlen(EXP1));
		ck_assert_mem_eq(np_buf_ptr(b) + strlen(EXP1), origs[i],
				 strlen(origs[i]));
		/* Not expired yet: sweep keeps it; after: the original back. */
		ck_assert_int_eq(np_authkeys_sweep_buf(np_buf_ptr(b),
						       np_buf_len(b), T0 - 1, c,
						       &n),
				 NP_OK);
		ck_assert_uint_eq(n, 0);
		np_buf_reset(c);
		ck_assert_int_eq(np_authkeys_sweep_buf(
				     np_buf_ptr(b), np_buf_len(b), T0, c, &n),
				 NP_OK);
		ck_assert_uint_eq(n, 1);
		ck_assert_uint_eq(np_buf_len(c), strlen(origs[i]));
		ck_assert_mem_eq(np_buf_ptr(c), origs[i], strlen(origs[i]));
	}
	/* Same session twice: refused.  Install sweeps expired ones. */
	np_buf_reset(c);
	ck_assert_int_eq(np_authkeys_install_buf(np_buf_ptr(b), np_buf_len(b),
						 &e, T0 - 10, c),
			 NP_ERR_EXISTS);
	np_buf_reset(c);
	zero_entry(&e, "", SID2, T0 + 1);
	ck_assert_int_eq(np_authkeys_install_buf(np_buf_ptr(b), np_buf_len(b),
						 &e, T0 + 1, c),
			 NP_OK);
	ck_assert_uint_eq(np_buf_len(c), strlen(LATER) + strlen(origs[6]));
	ck_assert_mem_eq(np_buf_ptr(c), LATER, strlen(LATER));
	/* Bad entries, oversized input. */
	np_buf_reset(c);
	zero_entry(&e, "", "nothex", T0);
	ck_assert_int_eq(
	    np_authkeys_install_buf((const uint8_t *)"", 0, &e, T0, c),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_authkeys_install_buf((const uint8_t *)"",
						 NP_AUTHKEYS_MAX + 1, &e, T0,
						 c),
			 NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_authkeys_sweep_buf((const uint8_t *)"",
					       NP_AUTHKEYS_MAX + 1, T0, c,
					       NULL),
			 NP_ERR_TOO_BIG);
	np_buf_free(b);
	np_buf_free(c);
}
END_TEST

struct seen {
	char sids[8][NP_SID_HEX_LEN + 1];
	int n;
};

static int
collect(const struct np_spool_entry *e, void *arg)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, 8);
	memcpy(s->sids[s->n++], e->sid, NP_SID_HEX_LEN + 1);
	return NP_OK;
}

static int
seen_has(const struct seen *s, const char *sid)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->sids[i], sid) == 0) {
			return 1;
		}
	}
	return 0;
}

static struct seen
list(const char *user, int64_t now)
{
	struct seen s;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(np_spool_list(tmpdir, user, now, collect, &s), NP_OK);
	return s;
}

#define SID(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

START_TEST(test_spool_dir)
{
	struct np_spool_entry e;
	struct np_buf *b = np_buf_new(NP_SPOOL_FILE_MAX);
	struct seen s;
	char p[256], q[256], text[NP_SPOOL_FILE_MAX];
	unsigned n;

	zero_entry(&e, "alice", SID1, T0);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_OK);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_ERR_EXISTS);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID1);
	{
		struct stat st;

		ck_assert_int_eq(lstat(p, &st), 0);
		ck_assert_uint_eq(st.st_mode & 0777, 0600);
	}
	zero_entry(&e, "bob", SID2, T0);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_OK);
	zero_entry(&e, "alice", SID("1"), T0 + 100);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_OK);
	/* Hostile entries: symlink, group-writable, foreign owner, too big,
	 * name/session mismatch, garbage, a FIFO, a directory. */
	zero_entry(&e, "alice", SID("2"), T0 + 100);
	ck_assert_int_eq(np_spool_format(&e, b), NP_OK);
	snprintf(text, sizeof(text), "%.*s", (int)np_buf_len(b),
		 (const char *)np_buf_ptr(b));
	write_file("elsewhere", text, 0600);
	snprintf(p, sizeof(p), "%s/elsewhere", tmpdir);
	snprintf(q, sizeof(q), "%s/%s.key", tmpdir, SID("2"));
	ck_assert_int_eq(symlink(p, q), 0);
	np_buf_reset(b);
	zero_entry(&e, "alice", SID("3"), T0 + 100);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_OK);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID("3"));
	ck_assert_int_eq(chmod(p, 0620), 0);
	zero_entry(&e, "alice", SID("4"), T0 + 100);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_OK);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID("4"));
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(p, 4321, 4321), 0);
	} else {
		unlink(p);
	}
	zero_entry(&e, "alice", SID("5"), T0 + 100);
	ck_assert_int_eq(np_spool_format(&e, b), NP_OK);
	memset(text, '#', sizeof(text));
	snprintf(text, sizeof(text), "%.*s", (int)np_buf_len(b),
		 (const char *)np_buf_ptr(b));
	text[strlen(text)] = '#';
	text[sizeof(text) - 1] = '\0';
	write_file(SID("5") ".key", text, 0600);
	write_file(SID("6") ".key", GOOD, 0600); /* session is SID1 */
	write_file(SID("7") ".key", "garbage\n", 0600);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID("8"));
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID("9"));
	ck_assert_int_eq(mkdir(p, 0700), 0);
	write_file("README", "not a key\n", 0600);

	s = list("alice", T0 - 1);
	ck_assert_int_eq(s.n, 2);
	ck_assert(seen_has(&s, SID1));
	ck_assert(seen_has(&s, SID("1")));
	s = list("alice", T0);
	ck_assert_int_eq(s.n, 1);
	ck_assert(seen_has(&s, SID("1")));
	s = list("bob", T0 - 1);
	ck_assert_int_eq(s.n, 1);
	ck_assert(seen_has(&s, SID2));
	s = list("carol", T0 - 1);
	ck_assert_int_eq(s.n, 0);
	ck_assert_int_eq(np_spool_list(tmpdir, "Bad", T0, collect, &s),
			 NP_ERR_INVALID);

	/* Sweep: the two that expired at T0 go, nothing else. */
	ck_assert_int_eq(np_spool_sweep(tmpdir, T0, &n), NP_OK);
	ck_assert_uint_eq(n, 2);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID1);
	ck_assert_int_ne(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/%s.key", tmpdir, SID("1"));
	ck_assert_int_eq(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/elsewhere", tmpdir);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(np_spool_remove(tmpdir, SID("1")), NP_OK);
	ck_assert_int_eq(np_spool_remove(tmpdir, SID("1")), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_spool_remove(tmpdir, "../x"), NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

START_TEST(test_spool_stale_temp)
{
	char p[256];
	unsigned n;

	write_file(SID1 ".key.tmp.0011223344556677", "partial", 0600);
	snprintf(p, sizeof(p), "%s/%s.key.tmp.0011223344556677", tmpdir, SID1);
	ck_assert_int_eq(np_spool_sweep(tmpdir, (int64_t)time(NULL), &n),
			 NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(np_spool_sweep(tmpdir, (int64_t)time(NULL) + 3600, &n),
			 NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_spool_dir_refused)
{
	struct np_spool_entry e;
	struct seen s;
	char p[256];
	int fd;

	memset(&s, 0, sizeof(s));
	zero_entry(&e, "alice", SID1, T0);
	ck_assert_int_eq(chmod(tmpdir, 0770), 0);
	ck_assert_int_eq(np_spool_list(tmpdir, "alice", T0, collect, &s),
			 NP_ERR_PERM);
	ck_assert_int_eq(np_spool_write(tmpdir, &e), NP_ERR_PERM);
	ck_assert_int_eq(np_spool_sweep(tmpdir, T0, NULL), NP_ERR_PERM);
	ck_assert_int_eq(chmod(tmpdir, 0702), 0);
	ck_assert_int_eq(np_spool_open_dir(tmpdir, &fd), NP_ERR_PERM);
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	ck_assert_int_eq(np_spool_open_dir(tmpdir, &fd), NP_OK);
	close(fd);
	snprintf(p, sizeof(p), "%s/real", tmpdir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/link", tmpdir);
	ck_assert_int_eq(symlink("real", p), 0);
	ck_assert_int_eq(np_spool_open_dir(p, &fd), NP_ERR_PERM);
	snprintf(p, sizeof(p), "%s/missing", tmpdir);
	ck_assert_int_eq(np_spool_open_dir(p, &fd), NP_ERR_NOT_FOUND);
	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/real", tmpdir);
		ck_assert_int_eq(chown(p, 4321, 4321), 0);
		ck_assert_int_eq(np_spool_open_dir(p, &fd), NP_ERR_PERM);
	}
	ck_assert_int_eq(chmod(tmpdir, 0700), 0);
}
END_TEST

START_TEST(test_authkeys_file)
{
	struct np_spool_entry e;
	char dir[128], path[256], *s;
	struct stat st, st2;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	unsigned n;

	snprintf(dir, sizeof(dir), "%s/.ssh", tmpdir);
	snprintf(path, sizeof(path), "%s/authorized_keys", dir);
	zero_entry(&e, "", SID1, T0 + 10);
	/* Missing dir without mkdir: refused; with mkdir: 0700 + 0600. */
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 1, &e, T0), NP_OK);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	s = slurp(path);
	ck_assert_str_eq(s, AKLINE("20231114221330Z", SID1) "\n");
	free(s);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 1, &e, T0),
			 NP_ERR_EXISTS);
	ck_assert_int_eq(np_authkeys_sweep(path, uid, T0 + 10, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	s = slurp(path);
	ck_assert_str_eq(s, "");
	free(s);

	/* An existing file keeps every byte, its owner and its mode. */
	write_file(".ssh/authorized_keys", OTHER1 OTHER2 OTHER_LAST, 0640);
	if (uid == 0) {
		ck_assert_int_eq(chown(path, 4321, 4322), 0);
		ck_assert_int_eq(chown(dir, 4321, 4322), 0);
		uid = 4321;
	}
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0), NP_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_uint_eq(st.st_uid, uid);
	if (uid == 4321) {
		ck_assert_uint_eq(st.st_gid, 4322);
	}
	s = slurp(path);
	ck_assert_str_eq(
	    s, AKLINE("20231114221330Z", SID1) "\n" OTHER1 OTHER2 OTHER_LAST);
	free(s);
	/* Nothing expired: the file is not rewritten (same inode). */
	ck_assert_int_eq(np_authkeys_sweep(path, uid, T0 + 9, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(stat(path, &st2), 0);
	ck_assert_uint_eq(st.st_ino, st2.st_ino);
	ck_assert_int_eq(np_authkeys_sweep(path, uid, T0 + 10, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	s = slurp(path);
	ck_assert_str_eq(s, OTHER1 OTHER2 OTHER_LAST);
	free(s);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_uint_eq(st.st_uid, uid);
	/* No temp files left behind. */
	{
		char tmpl[300];

		snprintf(tmpl, sizeof(tmpl), "ls -A %s | grep -q np-tmp", dir);
		ck_assert_int_ne(system(tmpl), 0);
	}
}
END_TEST

START_TEST(test_authkeys_file_refused)
{
	struct np_spool_entry e;
	char dir[128], path[256], other[256];
	uid_t uid = geteuid();
	gid_t gid = getegid();

	snprintf(dir, sizeof(dir), "%s/.ssh", tmpdir);
	snprintf(path, sizeof(path), "%s/authorized_keys", dir);
	snprintf(other, sizeof(other), "%s/victim", tmpdir);
	zero_entry(&e, "", SID1, T0 + 10);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_file("victim", OTHER1, 0600);
	/* A symlink in place of the file. */
	ck_assert_int_eq(symlink(other, path), 0);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0),
			 NP_ERR_PERM);
	ck_assert_int_eq(np_authkeys_sweep(path, uid, T0, NULL), NP_ERR_PERM);
	unlink(path);
	/* A hard link to someone else's file. */
	ck_assert_int_eq(link(other, path), 0);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0),
			 NP_ERR_PERM);
	unlink(path);
	/* A group-writable directory, a symlinked directory. */
	ck_assert_int_eq(chmod(dir, 0770), 0);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0),
			 NP_ERR_PERM);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	snprintf(other, sizeof(other), "%s/sshlink", tmpdir);
	ck_assert_int_eq(symlink(".ssh", other), 0);
	strcat(other, "/authorized_keys");
	ck_assert_int_eq(np_authkeys_install(other, uid, gid, 1, &e, T0),
			 NP_ERR_PERM);
	/* A file owned by someone else than uid or root. */
	if (uid == 0) {
		write_file(".ssh/authorized_keys", OTHER1, 0600);
		ck_assert_int_eq(chown(path, 4321, 4321), 0);
		ck_assert_int_eq(
		    np_authkeys_install(path, 1234, 1234, 0, &e, T0),
		    NP_ERR_PERM);
	}
	ck_assert_int_eq(np_authkeys_install("", uid, gid, 0, &e, T0),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_authkeys_install("/tmp/", uid, gid, 0, &e, T0),
			 NP_ERR_INVALID);
	/* The victim was never touched. */
	{
		char *s;

		snprintf(other, sizeof(other), "%s/victim", tmpdir);
		s = slurp(other);
		ck_assert_str_eq(s, OTHER1);
		free(s);
	}
}
END_TEST

/* A session that failed before relaying: its line goes at once (also
 * before its expiry), with the expired ones; nothing else moves. */
START_TEST(test_remove_buf)
{
	const char *in = LATER OTHER1 EXP1 OTHER2 OTHER_LAST;
	struct np_buf *b = np_buf_new(1 << 16);
	unsigned n = 99;

	ck_assert_int_eq(np_authkeys_remove_buf((const uint8_t *)in,
						strlen(in), SID1, T0 - 10, b,
						&n),
			 NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(np_buf_len(b),
			  strlen(LATER OTHER1 OTHER2 OTHER_LAST));
	ck_assert_mem_eq(np_buf_ptr(b), LATER OTHER1 OTHER2 OTHER_LAST,
			 np_buf_len(b));
	np_buf_reset(b);
	ck_assert_int_eq(np_authkeys_remove_buf((const uint8_t *)in,
						strlen(in), SID1, T0 + 1, b,
						&n),
			 NP_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(np_buf_len(b), strlen(OTHER1 OTHER2 OTHER_LAST));
	ck_assert_mem_eq(np_buf_ptr(b), OTHER1 OTHER2 OTHER_LAST,
			 np_buf_len(b));
	/* Another session: nothing of SID1 or SID2 goes before expiry. */
	np_buf_reset(b);
	ck_assert_int_eq(np_authkeys_remove_buf((const uint8_t *)in,
						strlen(in),
						"00000000000000000000000000000000",
						T0 - 10, b, &n),
			 NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(np_buf_len(b), strlen(in));
	/* Look-alikes are kept (not byte for byte ours). */
	np_buf_reset(b);
	ck_assert_int_eq(np_authkeys_remove_buf(
			     (const uint8_t *)"#" EXP1 " " EXP1,
			     strlen("#" EXP1 " " EXP1), SID1, T0 - 10, b, &n),
			 NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(np_buf_len(b), strlen("#" EXP1 " " EXP1));
	np_buf_reset(b);
	ck_assert_int_eq(np_authkeys_remove_buf((const uint8_t *)in,
						strlen(in), "nothex", T0, b,
						NULL),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_authkeys_remove_buf((const uint8_t *)"",
						NP_AUTHKEYS_MAX + 1, SID1, T0,
						b, NULL),
			 NP_ERR_TOO_BIG);
	np_buf_free(b);
}
END_TEST

/* The file version keeps owner, mode and every other byte. */
START_TEST(test_authkeys_file_remove)
{
	struct np_spool_entry e;
	char dir[128], path[256], *s;
	struct stat st;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	unsigned n;

	snprintf(dir, sizeof(dir), "%s/.ssh", tmpdir);
	snprintf(path, sizeof(path), "%s/authorized_keys", dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_file(".ssh/authorized_keys", OTHER1 OTHER2 OTHER_LAST, 0640);
	zero_entry(&e, "", SID1, T0 + 10);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0), NP_OK);
	zero_entry(&e, "", SID2, T0 + 10);
	ck_assert_int_eq(np_authkeys_install(path, uid, gid, 0, &e, T0), NP_OK);
	ck_assert_int_eq(np_authkeys_remove(path, uid, SID1, T0, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	s = slurp(path);
	ck_assert_str_eq(s, AKLINE("20231114221330Z", SID2) "\n" OTHER1 OTHER2
			    OTHER_LAST);
	free(s);
	ck_assert_int_eq(np_authkeys_remove(path, uid, SID2, T0, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	s = slurp(path);
	ck_assert_str_eq(s, OTHER1 OTHER2 OTHER_LAST);
	free(s);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_uint_eq(st.st_uid, uid);
	ck_assert_int_eq(np_authkeys_remove(path, uid, "x", T0, &n),
			 NP_ERR_INVALID);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tf = tcase_create("format");
	TCase *td = tcase_create("files");

	tcase_add_test(tf, test_user_names);
	tcase_add_test(tf, test_spool_roundtrip);
	tcase_add_test(tf, test_spool_parse_refuses);
	tcase_add_test(tf, test_authkey_line);
	tcase_add_test(tf, test_authkey_parse_refuses);
	tcase_add_test(tf, test_sweep_buf);
	tcase_add_test(tf, test_install_buf);
	tcase_add_test(tf, test_remove_buf);
	suite_add_tcase(s, tf);
	tcase_add_checked_fixture(td, setup, teardown);
	tcase_add_test(td, test_spool_dir);
	tcase_add_test(td, test_spool_stale_temp);
	tcase_add_test(td, test_spool_dir_refused);
	tcase_add_test(td, test_authkeys_file);
	tcase_add_test(td, test_authkeys_file_refused);
	tcase_add_test(td, test_authkeys_file_remove);
	suite_add_tcase(s, td);
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
	np_log_init("test_spool", 0, NP_LOG_ERROR);
	sr = srunner_create(spool_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
