/*
 * The client side of sessions (proxy/session.c): host names and ssh's
 * %h %p %r, known_hosts rewriting (also with concurrent writers), the
 * session key file (made once, reused, refused when unsafe, raced), and
 * the np.session.ok (ssh and tunnel, its relay cipher) and np.session.err
 * bodies.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "key.h"
#include "session.h"
#include "spool.h"
#include "srec.h"
#include "sshkey.h"

static char dir[64];

static void
setup(void)
{
	ck_assert_int_eq(np_crypto_init(), NP_OK);
	snprintf(dir, sizeof(dir), "/tmp/test_session.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	p = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (len != NULL) {
		*len = (size_t)n;
	}
	return p;
}

static void
spit(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* ---- names ---- */

static const struct np_alias aliases[] = {
	{ "prod", "@acme", "web" },
	{ "home", "@me", "default" },
	{ "x.y", "@other", "d1" },
};

static void
resolve_ok(const char *host, const char *want_host, const char *ident,
    const char *device)
{
	struct np_target t;
	char why[128];

	ck_assert_msg(np_target_resolve(host, aliases, 3, &t, why,
	    sizeof(why)) == NP_OK, "%s refused: %s", host, why);
	ck_assert_str_eq(t.host, want_host);
	ck_assert_str_eq(t.ident, ident);
	ck_assert_str_eq(t.device, device);
}

START_TEST(resolve_good)
{
	resolve_ok("demo.noports", "demo.noports", "@demo", "default");
	resolve_ok("web.demo.noports", "web.demo.noports", "@demo", "web");
	resolve_ok("WEB.Demo.NoPorts", "web.demo.noports", "@demo", "web");
	resolve_ok("a.b.c.noports", "a.b.c.noports", "@b.c", "a");
	resolve_ok("_x-1.my_id-2.noports", "_x-1.my_id-2.noports",
	    "@my_id-2", "_x-1");
	resolve_ok("prod.noports", "prod.noports", "@acme", "web");
	resolve_ok("prod", "prod", "@acme", "web");
	resolve_ok("home.noports", "home.noports", "@me", "default");
	resolve_ok("x.y.noports", "x.y.noports", "@other", "d1");
	/* Not an alias: the structural rule applies. */
	resolve_ok("prod2.noports", "prod2.noports", "@prod2", "default");
	resolve_ok("y.noports", "y.noports", "@y", "default");
}
END_TEST

START_TEST(resolve_bad)
{
	static const char *bad[] = {
		"", ".noports", "noports", "demo", "demo.example.com",
		"demo.noports.", "a;b.noports", "a b.noports", "$(id).noports",
		"`id`.noports", "demo.noports\n", "-oProxyCommand=x.noports",
		"@demo.noports", "de/mo.noports", "dé.noports", "x..noports",
		".demo.noports", "-d.demo.noports", "d.-x.noports",
		"%h.noports", "a\\b.noports", "a'b.noports",
		/* device name of 33 characters */
		"abcdefghijabcdefghijabcdefghijabc.demo.noports",
		/* identity of 56 characters */
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdef"
		    ".noports",
	};
	struct np_target t;
	char why[128], big[400];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(np_target_resolve(bad[i], aliases, 3, &t, why,
		    sizeof(why)) == NP_ERR_INVALID, "accepted '%s'", bad[i]);
		ck_assert_msg(why[0] != '\0', "no reason for '%s'", bad[i]);
	}
	ck_assert_int_eq(np_target_resolve(NULL, NULL, 0, &t, why,
	    sizeof(why)), NP_ERR_INVALID);
	memset(big, 'a', sizeof(big));
	memcpy(big + 300, ".noports", 9);
	ck_assert_int_eq(np_target_resolve(big, NULL, 0, &t, why,
	    sizeof(why)), NP_ERR_INVALID);
	/* 55-character identity and 32-character device: the limits. */
	resolve_ok("abcdefghijabcdefghijabcdefghijab.abcdefghijabcdefghij"
	    "abcdefghijabcdefghijabcdefghijabcde.noports",
	    "abcdefghijabcdefghijabcdefghijab.abcdefghijabcdefghij"
	    "abcdefghijabcdefghijabcdefghijabcde.noports",
	    "@abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde",
	    "abcdefghijabcdefghijabcdefghijab");
}
END_TEST

START_TEST(users_and_ports)
{
	uint16_t p = 0;

	ck_assert(np_user_valid("root"));
	ck_assert(np_user_valid("_svc.x-1"));
	ck_assert(np_user_valid("machine$"));
	ck_assert(!np_user_valid(""));
	ck_assert(!np_user_valid(NULL));
	ck_assert(!np_user_valid("-oProxyCommand=x"));
	ck_assert(!np_user_valid("Root;id"));
	ck_assert(!np_user_valid("a b"));
	ck_assert(!np_user_valid("a/b"));
	ck_assert(!np_user_valid("a@b"));
	ck_assert(!np_user_valid("$(id)"));
	ck_assert(!np_user_valid("abcdefghijabcdefghijabcdefghijabc"));

	ck_assert_int_eq(np_port_parse("22", &p), 0);
	ck_assert_uint_eq(p, 22);
	ck_assert_int_eq(np_port_parse("1", &p), 0);
	ck_assert_uint_eq(p, 1);
	ck_assert_int_eq(np_port_parse("65535", &p), 0);
	ck_assert_uint_eq(p, 65535);
	ck_assert_int_ne(np_port_parse("0", &p), 0);
	ck_assert_int_ne(np_port_parse("65536", &p), 0);
	ck_assert_int_ne(np_port_parse("022", &p), 0);
	ck_assert_int_ne(np_port_parse("+22", &p), 0);
	ck_assert_int_ne(np_port_parse("-22", &p), 0);
	ck_assert_int_ne(np_port_parse(" 22", &p), 0);
	ck_assert_int_ne(np_port_parse("22 ", &p), 0);
	ck_assert_int_ne(np_port_parse("22;id", &p), 0);
	ck_assert_int_ne(np_port_parse("", &p), 0);
	ck_assert_int_ne(np_port_parse(NULL, &p), 0);
	ck_assert_int_ne(np_port_parse("99999999999999999999", &p), 0);
	ck_assert_uint_eq(p, 65535); /* untouched by failures */
}
END_TEST

/* ---- known_hosts ---- */

static char *
rewrite(const char *old, const char *name, char *const *keys, size_t n)
{
	struct np_buf *b = np_buf_new(1 << 20);
	char *s;

	ck_assert_int_eq(np_kh_rewrite((const uint8_t *)old, strlen(old),
	    name, keys, n, b), NP_OK);
	s = strndup((const char *)np_buf_ptr(b), np_buf_len(b));
	np_buf_free(b);
	return s;
}

START_TEST(kh_rewrite)
{
	char *keys[] = { "ssh-ed25519 AAAAnew", "ecdsa-sha2-nistp256 AAAAe" };
	const char *old =
	    "# my hosts\n"
	    "other.example ssh-rsa AAAAother\n"
	    "demo.noports ssh-ed25519 AAAAold\n"
	    "\n"
	    "  demo.noports\tssh-rsa AAAAold2 comment\n"
	    "@revoked demo.noports ssh-ed25519 AAAAbad\n"
	    "demo.noports,alias ssh-ed25519 AAAAlist\n"
	    "[demo.noports]:2222 ssh-ed25519 AAAAport\n"
	    "|1|salt=|hash= ssh-ed25519 AAAAhashed\r\n"
	    "demo.noportsX ssh-ed25519 AAAAx\n"
	    "web.demo.noports ssh-ed25519 AAAAweb";
	char *s;
	char kn[64];

	s = rewrite(old, "demo.noports", keys, 2);
	ck_assert_str_eq(s,
	    "# my hosts\n"
	    "other.example ssh-rsa AAAAother\n"
	    "\n"
	    "@revoked demo.noports ssh-ed25519 AAAAbad\n"
	    "demo.noports,alias ssh-ed25519 AAAAlist\n"
	    "[demo.noports]:2222 ssh-ed25519 AAAAport\n"
	    "|1|salt=|hash= ssh-ed25519 AAAAhashed\r\n"
	    "demo.noportsX ssh-ed25519 AAAAx\n"
	    "web.demo.noports ssh-ed25519 AAAAweb\n"
	    "demo.noports ssh-ed25519 AAAAnew\n"
	    "demo.noports ecdsa-sha2-nistp256 AAAAe\n");
	free(s);

	/* [host]:port form replaces only that form. */
	ck_assert_int_eq(np_kh_name("demo.noports", 2222, kn, sizeof(kn)),
	    NP_OK);
	ck_assert_str_eq(kn, "[demo.noports]:2222");
	s = rewrite(old, kn, keys, 1);
	ck_assert_ptr_null(strstr(s, "AAAAport"));
	ck_assert_ptr_nonnull(strstr(s, "demo.noports ssh-ed25519 AAAAold\n"));
	ck_assert_ptr_nonnull(strstr(s,
	    "\n[demo.noports]:2222 ssh-ed25519 AAAAnew\n"));
	free(s);
	ck_assert_int_eq(np_kh_name("demo.noports", 22, kn, sizeof(kn)),
	    NP_OK);
	ck_assert_str_eq(kn, "demo.noports");
	ck_assert_int_eq(np_kh_name("demo.noports", 22, kn, 5),
	    NP_ERR_TOO_BIG);

	/* Empty file, no keys: nothing; no keys: lines only removed. */
	s = rewrite("", "demo.noports", keys, 0);
	ck_assert_str_eq(s, "");
	free(s);
	s = rewrite("demo.noports ssh-ed25519 A\n", "demo.noports", keys, 0);
	ck_assert_str_eq(s, "");
	free(s);
	s = rewrite("demo.noports", "demo.noports", keys, 0);
	ck_assert_str_eq(s, "demo.noports\n"); /* no key field: kept */
	free(s);
}
END_TEST

START_TEST(kh_rewrite_refuses_newlines)
{
	char *evil[] = { "ssh-ed25519 AAAA\nevil.example ssh-rsa X" };
	char *evil2[] = { "ssh-ed25519 AAAA\rx" };
	struct np_buf *b = np_buf_new(4096);

	ck_assert_int_eq(np_kh_rewrite(NULL, 0, "h", evil, 1, b),
	    NP_ERR_INVALID);
	np_buf_reset(b);
	ck_assert_int_eq(np_kh_rewrite(NULL, 0, "h", evil2, 1, b),
	    NP_ERR_INVALID);
	np_buf_free(b);
	/* Output over the buffer's cap: an error, not a truncation. */
	b = np_buf_new(10);
	ck_assert_int_ne(np_kh_rewrite((const uint8_t *)"0123456789abc\n",
	    14, "h", NULL, 0, b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(kh_update_file)
{
	char path[128], *s;
	char *k1[] = { "ssh-ed25519 AAAA1" };
	char *k2[] = { "ssh-ed25519 AAAA2" };
	struct stat st;

	snprintf(path, sizeof(path), "%s/sub/dir/known_hosts", dir);
	ck_assert_int_eq(np_kh_update(path, "demo.noports", k1, 1), NP_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	s = slurp(path, NULL);
	ck_assert_str_eq(s, "demo.noports ssh-ed25519 AAAA1\n");
	free(s);
	snprintf(path, sizeof(path), "%s/sub/dir", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);

	snprintf(path, sizeof(path), "%s/known_hosts", dir);
	spit(path, "# mine\nx ssh-rsa AAAAx\ndemo.noports ssh-ed25519 OLD", 0644);
	ck_assert_int_eq(np_kh_update(path, "demo.noports", k2, 1), NP_OK);
	s = slurp(path, NULL);
	ck_assert_str_eq(s, "# mine\nx ssh-rsa AAAAx\n"
	    "demo.noports ssh-ed25519 AAAA2\n");
	free(s);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);

	/* A known_hosts that others may write is refused, untouched. */
	ck_assert_int_eq(chmod(path, 0666), 0);
	ck_assert_int_eq(np_kh_update(path, "demo.noports", k1, 1),
	    NP_ERR_PERM);
	s = slurp(path, NULL);
	ck_assert_ptr_nonnull(strstr(s, "AAAA2"));
	free(s);
	/* A symlink is not followed. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	ck_assert_int_ne(np_kh_update(path, "demo.noports", k1, 1), NP_OK);
}
END_TEST

#define KH_WRITERS 12
#define KH_ROUNDS 15

START_TEST(kh_update_concurrent)
{
	char path[128], host[64], key[64], *s, *p;
	char *keys[1] = { key };
	pid_t pids[KH_WRITERS];
	int i, j, status, n;

	snprintf(path, sizeof(path), "%s/known_hosts", dir);
	spit(path, "# keep me\nkeep.example ssh-rsa AAAAkeep\n", 0600);
	for (i = 0; i < KH_WRITERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			for (j = 0; j < KH_ROUNDS; j++) {
				snprintf(host, sizeof(host), "h%d.noports", i);
				snprintf(key, sizeof(key), "ssh-ed25519 K%d-%d",
				    i, j);
				if (np_kh_update(path, host, keys, 1) !=
				    NP_OK) {
					_exit(1);
				}
			}
			_exit(0);
		}
	}
	for (i = 0; i < KH_WRITERS; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	s = slurp(path, NULL);
	ck_assert_msg(strncmp(s, "# keep me\nkeep.example ssh-rsa AAAAkeep\n",
	    40) == 0, "%s", s);
	for (i = 0; i < KH_WRITERS; i++) {
		/* exactly one line per host: its last key */
		snprintf(host, sizeof(host), "\nh%d.noports ", i);
		for (n = 0, p = s; (p = strstr(p, host)) != NULL; p++) {
			n++;
		}
		ck_assert_msg(n == 1, "%d lines for h%d", n, i);
		snprintf(key, sizeof(key), "\nh%d.noports ssh-ed25519 K%d-%d\n",
		    i, i, KH_ROUNDS - 1);
		ck_assert_msg(strstr(s, key) != NULL, "lost %s", key + 1);
	}
	free(s);
}
END_TEST

/* ---- the key file ---- */

/* The public line of the key in path (parsed from the file). */
static void
file_pubkey(const char *path, uint8_t pk[32])
{
	struct np_sshkey *k = NULL;
	size_t len;
	char *s = slurp(path, &len);

	ck_assert_int_eq(np_sshkey_parse_private((const uint8_t *)s, len,
	    &k), NP_OK);
	memcpy(pk, np_sshkey_pk(k), 32);
	np_sshkey_free(k);
	free(s);
}

START_TEST(keyfile_create_reuse)
{
	char kd[128], path[256], path2[256], pub[128], pub2[128];
	struct np_sshkey *k = NULL;
	uint8_t pk[32];
	struct stat st, st2;
	int created = -1;

	snprintf(kd, sizeof(kd), "%s/cache/keys", dir);
	/* Missing: made (and the directory, 0700). */
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "demo.noports", path,
	    sizeof(path), &k, &created), NP_OK);
	ck_assert_int_eq(created, 1);
	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(strstr(path, "/cache/keys/alice@demo.noports"));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(kd, &st2), 0);
	ck_assert_uint_eq(st2.st_mode & 0777, 0700);
	file_pubkey(path, pk);
	ck_assert(memcmp(pk, np_sshkey_pk(k), 32) == 0);
	np_sshkey_free(k);
	k = NULL;

	/* Present: the same key, the same file (never replaced). */
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "demo.noports", path2,
	    sizeof(path2), &k, &created), NP_OK);
	ck_assert_int_eq(created, 0);
	ck_assert_str_eq(path, path2);
	ck_assert(memcmp(pk, np_sshkey_pk(k), 32) == 0);
	ck_assert_int_eq(lstat(path, &st2), 0);
	ck_assert(st.st_ino == st2.st_ino);
	ck_assert(st.st_mtime == st2.st_mtime);
	np_sshkey_free(k);
	k = NULL;

	/* The public line is the one ssh-keygen -y would print. */
	ck_assert_int_eq(np_keyfile_publine(kd, "alice", "demo.noports",
	    path2, sizeof(path2), pub, sizeof(pub), &created), NP_OK);
	ck_assert_int_eq(created, 0);
	ck_assert(strncmp(pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
	    37) == 0);
	ck_assert_ptr_null(strchr(pub + 12, ' ')); /* no comment */
	ck_assert_int_eq(np_keyfile_publine(kd, "alice", "demo.noports",
	    path2, sizeof(path2), pub2, sizeof(pub2), NULL), NP_OK);
	ck_assert_str_eq(pub, pub2);
	ck_assert_int_eq(np_keyfile_publine(kd, "alice", "demo.noports",
	    path2, sizeof(path2), pub2, 20, NULL), NP_ERR_TOO_BIG);
	/* Another USER@HOST gets another key. */
	ck_assert_int_eq(np_keyfile_publine(kd, "bob", "demo.noports",
	    path2, sizeof(path2), pub2, sizeof(pub2), &created), NP_OK);
	ck_assert_int_eq(created, 1);
	ck_assert_str_ne(pub, pub2);

	/* A key dir others can read is tightened. */
	ck_assert_int_eq(chmod(kd, 0755), 0);
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "demo.noports", path,
	    sizeof(path), &k, NULL), NP_OK);
	np_sshkey_free(k);
	k = NULL;
	ck_assert_int_eq(stat(kd, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);

	/* Names that would leave the directory, or bad users. */
	ck_assert_int_eq(np_keyfile_get(kd, "../x", "demo.noports", path,
	    sizeof(path), &k, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "../../x", path,
	    sizeof(path), &k, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "a/b", path,
	    sizeof(path), &k, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "", path,
	    sizeof(path), &k, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "demo.noports", path,
	    10, &k, NULL), NP_ERR_TOO_BIG);
	ck_assert_ptr_null(k);
	/* Only the key files are there (no temp or lock files left). */
	snprintf(path, sizeof(path), "ls -A '%s' | grep -v -x -e "
	    "alice@demo.noports -e bob@demo.noports", kd);
	ck_assert_int_ne(system(path), 0);
}
END_TEST

/* np_keyfile_get refuses path with r, and leaves it as it was. */
static void
refused(const char *kd, const char *path, int want)
{
	struct np_sshkey *k = NULL;
	char p2[256], *s1 = NULL, *s2;
	struct stat st1, st2;
	int created = -1, have = lstat(path, &st1) == 0 &&
	    !S_ISLNK(st1.st_mode) && S_ISREG(st1.st_mode);

	if (have) {
		s1 = slurp(path, NULL);
	}
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "h.noports", p2,
	    sizeof(p2), &k, &created), want);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(created, 0);
	ck_assert_int_eq(lstat(path, &st2), 0);
	ck_assert(st1.st_ino == st2.st_ino);
	ck_assert_uint_eq(st1.st_mode, st2.st_mode);
	if (have) {
		s2 = slurp(path, NULL);
		ck_assert_str_eq(s1, s2);
		free(s2);
	}
	free(s1);
}

START_TEST(keyfile_refuse)
{
	char kd[128], path[256], other[256], pem_text[8192];
	struct np_sshkey *k = NULL;
	struct np_buf *pem = np_buf_new_secure(8192);

	snprintf(kd, sizeof(kd), "%s/keys", dir);
	ck_assert_int_eq(mkdir(kd, 0700), 0);
	snprintf(path, sizeof(path), "%s/alice@h.noports", kd);
	ck_assert_int_eq(np_sshkey_generate(&k), NP_OK);
	ck_assert_int_eq(np_sshkey_private_pem(k, "c", pem), NP_OK);
	ck_assert_uint_lt(np_buf_len(pem), sizeof(pem_text));
	memcpy(pem_text, np_buf_ptr(pem), np_buf_len(pem));
	pem_text[np_buf_len(pem)] = '\0';
	np_sshkey_free(k);
	np_buf_free(pem);

	/* Not a key, a truncated key, an empty file, an oversized file. */
	spit(path, "hello\n", 0600);
	refused(kd, path, NP_ERR_INVALID);
	ck_assert_int_eq(unlink(path), 0);
	pem_text[100] = '\0';
	spit(path, pem_text, 0600);
	refused(kd, path, NP_ERR_INVALID);
	ck_assert_int_eq(unlink(path), 0);
	spit(path, "", 0600);
	refused(kd, path, NP_ERR_INVALID);
	ck_assert_int_eq(unlink(path), 0);
	{
		char *big = malloc(NP_SSHKEY_PRIV_MAX + 2);

		memset(big, 'A', NP_SSHKEY_PRIV_MAX + 1);
		big[NP_SSHKEY_PRIV_MAX + 1] = '\0';
		spit(path, big, 0600);
		free(big);
	}
	refused(kd, path, NP_ERR_INVALID);
	ck_assert_int_eq(unlink(path), 0);

	/* A good key with a mode others can read: unsafe. */
	ck_assert_int_eq(np_keyfile_get(kd, "alice", "h.noports", other,
	    sizeof(other), &k, NULL), NP_OK);
	np_sshkey_free(k);
	k = NULL;
	ck_assert_int_eq(chmod(path, 0644), 0);
	refused(kd, path, NP_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0640), 0);
	refused(kd, path, NP_ERR_PERM);
	/* A symlink to a good key; a dangling symlink; a directory; a fifo. */
	ck_assert_int_eq(chmod(path, 0600), 0);
	snprintf(other, sizeof(other), "%s/real", dir);
	ck_assert_int_eq(rename(path, other), 0);
	ck_assert_int_eq(symlink(other, path), 0);
	refused(kd, path, NP_ERR_PERM);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("/nonexistent/x", path), 0);
	refused(kd, path, NP_ERR_PERM);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	refused(kd, path, NP_ERR_PERM);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	refused(kd, path, NP_ERR_PERM);
	ck_assert_int_eq(unlink(path), 0);
	/* Owned by someone else (only testable as root). */
	if (geteuid() == 0) {
		ck_assert_int_eq(rename(other, path), 0);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		refused(kd, path, NP_ERR_PERM);
	}
}
END_TEST

#define RACERS 16

/*
 * Processes creating one key file at once: exactly one makes it, all end
 * with its key.
 */
START_TEST(keyfile_race)
{
	char kd[128], path[256], pub[128], want[128], line[256];
	int pfd[2], i, status, made = 0, n;
	pid_t pids[RACERS];
	FILE *f;

	snprintf(kd, sizeof(kd), "%s/keys", dir);
	ck_assert_int_eq(pipe(pfd), 0);
	for (i = 0; i < RACERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			int created = 0;

			close(pfd[0]);
			if (np_keyfile_publine(kd, "alice", "race.noports",
			    path, sizeof(path), pub, sizeof(pub), &created) !=
			    NP_OK) {
				_exit(1);
			}
			n = snprintf(line, sizeof(line), "%d %s\n", created,
			    pub);
			_exit(write(pfd[1], line, (size_t)n) == n ? 0 : 1);
		}
	}
	close(pfd[1]);
	for (i = 0; i < RACERS; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_ptr_nonnull(f = fdopen(pfd[0], "r"));
	want[0] = '\0';
	for (i = 0; i < RACERS; i++) {
		int c;

		ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
		ck_assert_int_eq(sscanf(line, "%d %127[^\n]", &c, pub), 2);
		made += c;
		if (want[0] == '\0') {
			snprintf(want, sizeof(want), "%s", pub);
		}
		ck_assert_str_eq(pub, want);
	}
	ck_assert_ptr_null(fgets(line, sizeof(line), f));
	fclose(f);
	ck_assert_int_eq(made, 1);
	/* The file holds that key. */
	ck_assert_int_eq(np_keyfile_publine(kd, "alice", "race.noports",
	    path, sizeof(path), pub, sizeof(pub), NULL), NP_OK);
	ck_assert_str_eq(pub, want);
	snprintf(line, sizeof(line), "ls -A '%s' | grep -v -x -e "
	    "alice@race.noports", kd);
	ck_assert_int_ne(system(line), 0);
}
END_TEST

/* ---- np.session.ok ---- */

#define SID "0123456789abcdef0123456789abcdef"

static struct json_object *
ok_body(void)
{
	struct np_sshkey *hk = NULL;
	struct np_buf *pub = np_buf_new(1024);
	struct json_object *o = json_object_new_object(), *a;
	uint8_t kx[32];
	char b64[64];

	ck_assert_int_eq(np_sshkey_generate(&hk), NP_OK);
	ck_assert_int_eq(np_sshkey_public_line(hk, "host comment", pub),
	    NP_OK);
	ck_assert_int_eq(np_buf_put_u8(pub, 0), NP_OK);
	randombytes_buf(kx, sizeof(kx));
	ck_assert_int_eq(np_b64_encode(kx, 32, b64, sizeof(b64)), NP_OK);
	json_object_object_add(o, "sid", json_object_new_string(SID));
	json_object_object_add(o, "expires", json_object_new_int64(1700000000));
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string(
	    (const char *)np_buf_ptr(pub)));
	json_object_object_add(o, "hostkeys", a);
	json_object_object_add(o, "kx", json_object_new_string(b64));
	np_sshkey_free(hk);
	np_buf_free(pub);
	return o;
}

START_TEST(ok_good)
{
	struct json_object *o = ok_body();
	struct np_session_ok ok;

	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_OK);
	ck_assert_int_eq(ok.expires, 1700000000);
	ck_assert_uint_eq(ok.nhostkeys, 1);
	ck_assert(strncmp(ok.hostkeys[0], "ssh-ed25519 AAAA", 16) == 0);
	ck_assert_ptr_null(strchr(ok.hostkeys[0] + 12, ' ')); /* no comment */
	np_session_ok_clear(&ok);
	ck_assert_uint_eq(ok.nhostkeys, 0);
	np_session_ok_clear(&ok);
	np_session_ok_clear(NULL);
	json_object_put(o);
}
END_TEST

/* "enc_handoff": only with "enc", an integer within MIN..MAX. */
START_TEST(ok_handoff)
{
	static const char *const bad[] = { "4095", "16777217", "0", "-5",
	    "\"65536\"", "[1]", "null" };
	struct np_session_ok ok;
	struct json_object *o;
	size_t i;

	o = ok_body();
	json_object_object_add(o, "enc", json_object_new_string("aes-256-gcm"));
	json_object_object_add(o, "enc_handoff", json_object_new_int(65536));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_OK);
	ck_assert_uint_eq(ok.handoff, 65536);
	np_session_ok_clear(&ok);
	json_object_put(o);
	o = ok_body();
	json_object_object_add(o, "enc", json_object_new_string("aes-256-gcm"));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_OK);
	ck_assert_uint_eq(ok.handoff, 0);
	np_session_ok_clear(&ok);
	json_object_put(o);
	/* Without "enc": refused. */
	o = ok_body();
	json_object_object_add(o, "enc_handoff", json_object_new_int(65536));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = ok_body();
		json_object_object_add(o, "enc",
		    json_object_new_string("aes-256-gcm"));
		json_object_object_add(o, "enc_handoff",
		    json_tokener_parse(bad[i]));
		ck_assert_msg(np_session_ok_parse(o, SID, &ok) == NP_ERR_PROTO,
		    "enc_handoff %s", bad[i]);
		json_object_put(o);
	}
}
END_TEST

START_TEST(ok_bad)
{
	struct np_session_ok ok;
	struct json_object *o, *a;
	int i;

	/* wrong sid */
	o = ok_body();
	ck_assert_int_eq(np_session_ok_parse(o, "ffffffffffffffffffffffffffff"
	    "ffff", &ok), NP_ERR_PROTO);
	json_object_put(o);
	/* each member missing in turn */
	static const char *members[] = { "sid", "expires", "hostkeys", "kx" };
	for (i = 0; i < 4; i++) {
		o = ok_body();
		json_object_object_del(o, members[i]);
		ck_assert_msg(np_session_ok_parse(o, SID, &ok) == NP_ERR_PROTO,
		    "without %s", members[i]);
		ck_assert_uint_eq(ok.nhostkeys, 0);
		json_object_put(o);
	}
	/* wrong types */
	static const char *wrong[][2] = {
		{ "sid", "int" }, { "expires", "str" }, { "hostkeys", "str" },
		{ "kx", "int" },
	};
	for (i = 0; i < 4; i++) {
		o = ok_body();
		json_object_object_add(o, wrong[i][0],
		    strcmp(wrong[i][1], "int") == 0 ? json_object_new_int(1) :
		    json_object_new_string("x"));
		ck_assert_msg(np_session_ok_parse(o, SID, &ok) == NP_ERR_PROTO,
		    "%s as %s", wrong[i][0], wrong[i][1]);
		json_object_put(o);
	}
	/* kx of the wrong length */
	o = ok_body();
	json_object_object_add(o, "kx", json_object_new_string("AAAA"));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	/* host keys: empty, too many, not strings, injected lines */
	o = ok_body();
	json_object_object_add(o, "hostkeys", json_object_new_array());
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	o = ok_body();
	json_object_object_get_ex(o, "hostkeys", &a);
	for (i = 0; i < NP_HOSTKEYS_MAX; i++) {
		json_object_array_add(a, json_object_get(
		    json_object_array_get_idx(a, 0)));
	}
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	o = ok_body();
	json_object_object_get_ex(o, "hostkeys", &a);
	json_object_array_add(a, json_object_new_int(3));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	o = ok_body();
	json_object_object_get_ex(o, "hostkeys", &a);
	json_object_array_add(a, json_object_new_string(
	    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
	    "evil.example ssh-ed25519 AAAA"));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	/* not an object */
	o = json_object_new_array();
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	ck_assert_int_eq(np_session_ok_parse(NULL, SID, &ok), NP_ERR_PROTO);
}
END_TEST

/* "enc": absent (no relay encryption) or a cipher name we know. */
START_TEST(ok_enc)
{
	static const struct {
		const char *json;
		int cipher; /* -1: refused */
	} cases[] = {
		{ "\"" NP_SREC_NAME_AES "\"", NP_SREC_AES256GCM },
		{ "\"" NP_SREC_NAME_CHACHA "\"", NP_SREC_CHACHA20POLY1305 },
		{ "\"none\"", -1 },
		{ "\"\"", -1 },
		{ "\"rc4\"", -1 },
		{ "\"aes-128-gcm\"", -1 },
		{ "\"" NP_SREC_NAME_AES " \"", -1 },
		{ "\"" NP_SREC_NAME_AES "\\u0000x\"", -1 }, /* NUL inside */
		{ "5", -1 },
		{ "true", -1 },
		{ "null", -1 },
		{ "[\"" NP_SREC_NAME_AES "\"]", -1 },
		{ "{\"name\":\"" NP_SREC_NAME_AES "\"}", -1 },
	};
	struct np_session_ok ok;
	struct json_object *o, *v;
	size_t i;
	int r;

	o = ok_body();
	memset(&ok, 0x55, sizeof(ok));
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_OK);
	ck_assert_int_eq(ok.cipher, NP_SREC_NONE);
	np_session_ok_clear(&ok);
	json_object_put(o);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		o = ok_body();
		v = json_tokener_parse(cases[i].json);
		ck_assert(v != NULL || strcmp(cases[i].json, "null") == 0);
		json_object_object_add(o, "enc", v);
		r = np_session_ok_parse(o, SID, &ok);
		if (cases[i].cipher < 0) {
			ck_assert_msg(r == NP_ERR_PROTO, "enc %s: %d",
			    cases[i].json, r);
			ck_assert_uint_eq(ok.nhostkeys, 0);
			ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID,
			    &ok), NP_ERR_PROTO);
		} else {
			ck_assert_msg(r == NP_OK, "enc %s: %d", cases[i].json,
			    r);
			ck_assert_int_eq(ok.cipher, cases[i].cipher);
			ck_assert_uint_eq(ok.nhostkeys, 1);
			np_session_ok_clear(&ok);
			ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID,
			    &ok), NP_OK);
			ck_assert_int_eq(ok.cipher, cases[i].cipher);
		}
		np_session_ok_clear(&ok);
		json_object_put(o);
	}
}
END_TEST

/* A tunnel's answer may have no host keys; an ssh session's may not. */
START_TEST(ok_tunnel)
{
	struct np_session_ok ok;
	struct json_object *o, *a;

	/* Absent. */
	o = ok_body();
	json_object_object_del(o, "hostkeys");
	json_object_object_add(o, "enc",
	    json_object_new_string(NP_SREC_NAME_CHACHA));
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok), NP_OK);
	ck_assert_uint_eq(ok.nhostkeys, 0);
	ck_assert_int_eq(ok.expires, 1700000000);
	ck_assert_int_eq(ok.cipher, NP_SREC_CHACHA20POLY1305);
	np_session_ok_clear(&ok);
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	/* Empty. */
	json_object_object_add(o, "hostkeys", json_object_new_array());
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok), NP_OK);
	ck_assert_uint_eq(ok.nhostkeys, 0);
	np_session_ok_clear(&ok);
	ck_assert_int_eq(np_session_ok_parse(o, SID, &ok), NP_ERR_PROTO);
	json_object_put(o);
	/* Present: checked as ever. */
	o = ok_body();
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok), NP_OK);
	ck_assert_uint_eq(ok.nhostkeys, 1);
	ck_assert(strncmp(ok.hostkeys[0], "ssh-ed25519 AAAA", 16) == 0);
	np_session_ok_clear(&ok);
	json_object_object_get_ex(o, "hostkeys", &a);
	json_object_array_add(a, json_object_new_int(3));
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	ck_assert_uint_eq(ok.nhostkeys, 0);
	json_object_object_add(o, "hostkeys", json_object_new_string("x"));
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_object_add(o, "hostkeys", NULL);
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_object_add(o, "hostkeys", json_object_new_object());
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_put(o);
	/* The rest is not optional: sid, expires, kx. */
	o = ok_body();
	json_object_object_del(o, "hostkeys");
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, "ffffffffffffffffffff"
	    "ffffffffffff", &ok), NP_ERR_PROTO);
	json_object_object_del(o, "kx");
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_put(o);
	o = ok_body();
	json_object_object_del(o, "hostkeys");
	json_object_object_add(o, "expires", json_object_new_string("1"));
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_put(o);
	o = json_object_new_array();
	ck_assert_int_eq(np_session_ok_parse_tunnel(o, SID, &ok),
	    NP_ERR_PROTO);
	json_object_put(o);
	ck_assert_int_eq(np_session_ok_parse_tunnel(NULL, SID, &ok),
	    NP_ERR_PROTO);
}
END_TEST

/* np.session.err bodies: this sid or not, reasons made printable. */
START_TEST(err_parse)
{
	struct json_object *o;
	char why[32];

	o = json_tokener_parse("{\"sid\":\"" SID "\",\"reason\":"
	    "\"sshd unreachable: Connection refused\"}");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(np_session_err_parse(o, SID, why, sizeof(why)),
	    NP_OK);
	/* cut to the buffer, NUL-terminated */
	ck_assert_str_eq(why, "sshd unreachable: Connection re");
	ck_assert_int_eq(np_session_err_parse(o, "ffffffffffffffffffffffffffff"
	    "ffff", why, sizeof(why)), NP_ERR_AGAIN);
	json_object_put(o);
	/* escapes and bytes beyond ASCII never reach the terminal */
	o = json_tokener_parse("{\"sid\":\"" SID "\",\"reason\":"
	    "\"a\\u001b[2Jb\\nc\\u00e9\"}");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(np_session_err_parse(o, SID, why, sizeof(why)),
	    NP_OK);
	ck_assert_str_eq(why, "a?[2Jb?c??");
	json_object_put(o);
	/* no reason, an empty one, or one that is no string */
	static const char *noreason[] = {
		"{\"sid\":\"" SID "\"}",
		"{\"sid\":\"" SID "\",\"reason\":\"\"}",
		"{\"sid\":\"" SID "\",\"reason\":7}",
	};
	for (size_t i = 0; i < 3; i++) {
		o = json_tokener_parse(noreason[i]);
		ck_assert_int_eq(np_session_err_parse(o, SID, why,
		    sizeof(why)), NP_OK);
		ck_assert_str_eq(why, "(no reason given)");
		json_object_put(o);
	}
	/* no sid, a sid that is no string, no object */
	static const char *other[] = {
		"{\"reason\":\"x\"}", "{\"sid\":1,\"reason\":\"x\"}",
	};
	for (size_t i = 0; i < 2; i++) {
		o = json_tokener_parse(other[i]);
		ck_assert_int_eq(np_session_err_parse(o, SID, why,
		    sizeof(why)), NP_ERR_AGAIN);
		json_object_put(o);
	}
	o = json_object_new_array();
	ck_assert_int_eq(np_session_err_parse(o, SID, why, sizeof(why)),
	    NP_ERR_PROTO);
	json_object_put(o);
	ck_assert_int_eq(np_session_err_parse(NULL, SID, why, sizeof(why)),
	    NP_ERR_PROTO);
}
END_TEST

static Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *names = tcase_create("names");
	TCase *files = tcase_create("files");
	TCase *ok = tcase_create("session_ok");

	tcase_add_test(names, resolve_good);
	tcase_add_test(names, resolve_bad);
	tcase_add_test(names, users_and_ports);
	tcase_add_checked_fixture(files, setup, teardown);
	tcase_set_timeout(files, 30);
	tcase_add_test(files, kh_rewrite);
	tcase_add_test(files, kh_rewrite_refuses_newlines);
	tcase_add_test(files, kh_update_file);
	tcase_add_test(files, kh_update_concurrent);
	tcase_add_test(files, keyfile_create_reuse);
	tcase_add_test(files, keyfile_refuse);
	tcase_add_test(files, keyfile_race);
	tcase_add_checked_fixture(ok, setup, teardown);
	tcase_add_test(ok, ok_good);
	tcase_add_test(ok, ok_bad);
	tcase_add_test(ok, ok_enc);
	tcase_add_test(ok, ok_handoff);
	tcase_add_test(ok, ok_tunnel);
	tcase_add_test(ok, err_parse);
	suite_add_tcase(s, names);
	suite_add_tcase(s, files);
	suite_add_tcase(s, ok);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(session_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
