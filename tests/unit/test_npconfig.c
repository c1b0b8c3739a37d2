/*
 * The np client's config table (proxy/config.c) and small CLI helpers
 * (proxy/cli.c).
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "key.h"

#define FP "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

static char home[64];

static void
setup(void)
{
	snprintf(home, sizeof(home), "/tmp/test_npconfig.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(home));
	setenv("HOME", home, 1);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	ck_assert_int_eq(system(cmd), 0);
}

static int
parse(const char *text, struct np_config *cfg, char *err, size_t errlen)
{
	ck_assert_int_eq(np_config_defaults(cfg), NP_OK);
	return np_config_parse(cfg, text, strlen(text), "cfg", err, errlen);
}

START_TEST(defaults)
{
	struct np_config cfg;
	char want[128];

	ck_assert_int_eq(np_config_defaults(&cfg), NP_OK);
	ck_assert_ptr_null(cfg.identity);
	ck_assert_ptr_null(cfg.server.host);
	ck_assert_ptr_null(cfg.server_fingerprint);
	ck_assert_int_eq(cfg.connect_timeout, 10);
	snprintf(want, sizeof(want), "%s/.config/noports/identity.key", home);
	ck_assert_str_eq(cfg.identity_file, want);
	snprintf(want, sizeof(want), "%s/.config/noports/known_identities",
	    home);
	ck_assert_str_eq(cfg.known_identities, want);
	np_config_free(&cfg);
	ck_assert_ptr_null(cfg.identity_file);
	np_config_free(&cfg); /* twice is fine */
	np_config_free(NULL);
	/* Without HOME there are no default paths, but no failure. */
	unsetenv("HOME");
	ck_assert_int_eq(np_config_defaults(&cfg), NP_OK);
	ck_assert_ptr_null(cfg.identity_file);
	ck_assert_int_eq(np_config_path("config", want, sizeof(want)),
	    NP_ERR_CONF);
	np_config_free(&cfg);
}
END_TEST

START_TEST(good_file)
{
	struct np_config cfg;
	char err[256], want[128];

	ck_assert_int_eq(parse("# client\n"
	    "Identity @alice\n"
	    "  identityfile ~/keys/alice.key\n"
	    "Server cp.example.com:6464\n"
	    "ServerFingerprint " FP "\n"
	    "KnownIdentities=/etc/np/known\n"
	    "ConnectTimeout 5m\n", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(cfg.identity, "@alice");
	snprintf(want, sizeof(want), "%s/keys/alice.key", home);
	ck_assert_str_eq(cfg.identity_file, want);
	ck_assert_str_eq(cfg.server.host, "cp.example.com");
	ck_assert_str_eq(cfg.server.port, "6464");
	ck_assert_str_eq(cfg.server_fingerprint, FP);
	ck_assert_str_eq(cfg.known_identities, "/etc/np/known");
	ck_assert_int_eq(cfg.connect_timeout, 300);
	np_config_free(&cfg);

	ck_assert_int_eq(parse("Server [::1]:7000\n", &cfg, err, sizeof(err)),
	    NP_OK);
	ck_assert_str_eq(cfg.server.host, "::1");
	ck_assert_str_eq(cfg.server.port, "7000");
	np_config_free(&cfg);
	ck_assert_int_eq(parse("", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.connect_timeout, 10);
	np_config_free(&cfg);
}
END_TEST

START_TEST(bad_files)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{ "Identity @alice\nFoo bar\n", "cfg:2:" },
		{ "Identity alice\n", "cfg:1:" },
		{ "Identity @Alice\n", "cfg:1:" },
		{ "Identity @a @b\n", "cfg:1:" },
		{ "Identity\n", "cfg:1:" },
		{ "Identity @a\nIdentity @b\n", "cfg:2:" },
		{ "Server example.com\n", "cfg:1:" },
		{ "Server example.com:0\n", "cfg:1:" },
		{ "Server example.com:70000\n", "cfg:1:" },
		{ "ConnectTimeout 0\n", "cfg:1:" },
		{ "ConnectTimeout 2h\n", "cfg:1:" },
		{ "ConnectTimeout soon\n", "cfg:1:" },
		{ "IdentityFile ~bob/key\n", "cfg:1:" },
		{ "ServerFingerprint abc\n", "ServerFingerprint" },
		{ "ServerFingerprint SHA256:abc\n", "ServerFingerprint" },
		{ "ServerFingerprint MD5:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZ"
		    "G3hSuFU\n", "ServerFingerprint" },
		{ "ServerFingerprint " FP "=\n", "ServerFingerprint" },
		{ "ServerFingerprint SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMp"
		    "JWZG3hSu!U\n", "ServerFingerprint" },
	};
	struct np_config cfg;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse(bad[i].text, &cfg, err, sizeof(err)) ==
		    NP_ERR_CONF, "accepted: %s", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL,
		    "'%s' -> '%s'", bad[i].text, err);
		np_config_free(&cfg);
	}
}
END_TEST

START_TEST(load_files)
{
	struct np_config cfg;
	char path[128], err[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing", home);
	ck_assert_int_eq(np_config_load(&cfg, path, 0, err, sizeof(err)),
	    NP_OK);
	ck_assert_ptr_nonnull(cfg.identity_file);
	np_config_free(&cfg);
	ck_assert_int_ne(np_config_load(&cfg, path, 1, err, sizeof(err)),
	    NP_OK);
	ck_assert_ptr_nonnull(strstr(err, path));
	np_config_free(&cfg);

	snprintf(path, sizeof(path), "%s/config", home);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "Identity @bob\nBogus 1\n");
	fclose(f);
	ck_assert_int_eq(np_config_load(&cfg, path, 0, err, sizeof(err)),
	    NP_ERR_CONF);
	ck_assert_ptr_nonnull(strstr(err, ":2: "));
	ck_assert_ptr_nonnull(strstr(err, "Bogus"));
	np_config_free(&cfg);
	ck_assert_int_eq(np_config_load(&cfg, home, 0, err, sizeof(err)),
	    NP_ERR_CONF); /* a directory */
	np_config_free(&cfg);
}
END_TEST

START_TEST(write_new)
{
	struct np_config cfg;
	struct stat st;
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/.config/noports/config", home);
	ck_assert_int_eq(np_config_write_new(path, "@alice", "::1", "6464",
	    FP), NP_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/.config/noports", home);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/.config/noports/config", home);
	ck_assert_int_eq(np_config_load(&cfg, path, 1, err, sizeof(err)),
	    NP_OK);
	ck_assert_str_eq(cfg.identity, "@alice");
	ck_assert_str_eq(cfg.server.host, "::1");
	ck_assert_str_eq(cfg.server.port, "6464");
	ck_assert_str_eq(cfg.server_fingerprint, FP);
	np_config_free(&cfg);
	/* Never overwrites. */
	ck_assert_int_eq(np_config_write_new(path, "@bob", "h", "1", FP),
	    NP_ERR_EXISTS);
}
END_TEST

START_TEST(fp_valid)
{
	ck_assert(np_config_fp_valid(FP));
	ck_assert(!np_config_fp_valid(NULL));
	ck_assert(!np_config_fp_valid(""));
	ck_assert(!np_config_fp_valid("SHA256:"));
	ck_assert(!np_config_fp_valid("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5"
	    "NMpJWZG3hSuFU"));
	ck_assert(!np_config_fp_valid(FP "A"));
}
END_TEST

START_TEST(sanitize)
{
	char *s;

	s = cli_sanitize("plain text, ünïcode");
	ck_assert_str_eq(s, "plain text, ünïcode");
	free(s);
	s = cli_sanitize("a\x1b[31mb\nc\x7f" "d\t");
	ck_assert_str_eq(s, "a?[31mb?c?d?");
	free(s);
	s = cli_sanitize("x\xc2\x9b" "2Jy\xc2\xa0z"); /* C1 CSI, then NBSP */
	ck_assert_str_eq(s, "x?2Jy\xc2\xa0z");
	free(s);
	s = cli_sanitize("");
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(parse_long)
{
	long v = -1;

	ck_assert_int_eq(cli_parse_long("10", 1, 100, &v), 0);
	ck_assert_int_eq(v, 10);
	ck_assert_int_ne(cli_parse_long("0", 1, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long("101", 1, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long("-5", -10, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long("5x", 1, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long("", 1, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long(" 5", 1, 100, &v), 0);
	ck_assert_int_ne(cli_parse_long("99999999999999999999", 1, 100, &v),
	    0);
	ck_assert_int_ne(cli_parse_long(NULL, 1, 100, &v), 0);
	ck_assert_int_eq(v, 10);
}
END_TEST

START_TEST(mkdir_p)
{
	char p[128];
	struct stat st;

	snprintf(p, sizeof(p), "%s/a/b/c", home);
	ck_assert_int_eq(np_mkdir_p(p), NP_OK);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(np_mkdir_p(p), NP_OK);
	snprintf(p, sizeof(p), "%s/x/y/file", home);
	ck_assert_int_eq(np_mkdir_parent(p), NP_OK);
	snprintf(p, sizeof(p), "%s/x/y", home);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(np_mkdir_parent("file"), NP_OK);
	ck_assert_int_ne(np_mkdir_p(""), NP_OK);
}
END_TEST


START_TEST(session_keywords)
{
	struct np_config cfg;
	char err[256], want[160];

	ck_assert_int_eq(np_config_defaults(&cfg), NP_OK);
	ck_assert_ptr_null(cfg.rendezvous);
	ck_assert_uint_eq(cfg.rendezvous_list.n, 0);
	ck_assert_int_eq(cfg.rendezvous_cache, 300);
	ck_assert_int_eq(cfg.rendezvous_timeout, 3);
	ck_assert_int_eq(cfg.session_timeout, 15);
	ck_assert_int_eq(cfg.keepalive, 30);
	snprintf(want, sizeof(want), "%s/.cache/noports/keys", home);
	ck_assert_str_eq(cfg.key_dir, want);
	snprintf(want, sizeof(want), "%s/.cache/noports/known_hosts", home);
	ck_assert_str_eq(cfg.known_hosts, want);
	ck_assert_uint_eq(cfg.naliases, 0);
	np_config_free(&cfg);

	ck_assert_int_eq(parse("Rendezvous @sr\n"
	    "KeyDir ~/k\n"
	    "KnownHosts /tmp/kh\n"
	    "SessionTimeout 1m\n"
	    "KeepAlive 0\n"
	    "DeviceAlias prod @acme web\n"
	    "DeviceAlias home @me\n"
	    "deviceAlias x.y_z-1 @a.b\n", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(cfg.rendezvous, "@sr");
	ck_assert_uint_eq(cfg.rendezvous_list.n, 1);
	ck_assert_str_eq(cfg.rendezvous_list.v[0], "@sr");
	snprintf(want, sizeof(want), "%s/k", home);
	ck_assert_str_eq(cfg.key_dir, want);
	ck_assert_str_eq(cfg.known_hosts, "/tmp/kh");
	ck_assert_int_eq(cfg.session_timeout, 60);
	ck_assert_int_eq(cfg.keepalive, 0);
	ck_assert_uint_eq(cfg.naliases, 3);
	ck_assert_str_eq(cfg.aliases[0].name, "prod");
	ck_assert_str_eq(cfg.aliases[0].ident, "@acme");
	ck_assert_str_eq(cfg.aliases[0].device, "web");
	ck_assert_str_eq(cfg.aliases[1].name, "home");
	ck_assert_str_eq(cfg.aliases[1].ident, "@me");
	ck_assert_str_eq(cfg.aliases[1].device, "default");
	ck_assert_str_eq(cfg.aliases[2].name, "x.y_z-1");
	ck_assert_str_eq(cfg.aliases[2].ident, "@a.b");
	np_config_free(&cfg);
	ck_assert_ptr_null(cfg.aliases);
	ck_assert_uint_eq(cfg.naliases, 0);
}
END_TEST

START_TEST(rendezvous_list)
{
	struct np_config cfg;
	char err[256];

	ck_assert_int_eq(parse("Rendezvous @sr_eu @sr_us\t@sr_ap\n"
	    "RendezvousCache 10m\n"
	    "RendezvousTimeout 5\n", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_uint_eq(cfg.rendezvous_list.n, 3);
	ck_assert_str_eq(cfg.rendezvous_list.v[0], "@sr_eu");
	ck_assert_str_eq(cfg.rendezvous_list.v[1], "@sr_us");
	ck_assert_str_eq(cfg.rendezvous_list.v[2], "@sr_ap");
	ck_assert_str_eq(cfg.rendezvous, "@sr_eu");
	ck_assert_int_eq(cfg.rendezvous_cache, 600);
	ck_assert_int_eq(cfg.rendezvous_timeout, 5);
	np_config_free(&cfg);
	ck_assert_ptr_null(cfg.rendezvous);
	ck_assert_uint_eq(cfg.rendezvous_list.n, 0);

	/* 16 is the cap; 0 turns the cache off. */
	ck_assert_int_eq(parse("Rendezvous @a1 @a2 @a3 @a4 @a5 @a6 @a7 @a8 "
	    "@a9 @b1 @b2 @b3 @b4 @b5 @b6 @b7\nRendezvousCache 0\n", &cfg,
	    err, sizeof(err)), NP_OK);
	ck_assert_uint_eq(cfg.rendezvous_list.n, 16);
	ck_assert_str_eq(cfg.rendezvous_list.v[15], "@b7");
	ck_assert_int_eq(cfg.rendezvous_cache, 0);
	np_config_free(&cfg);
}
END_TEST

START_TEST(session_bad_keywords)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{ "Rendezvous sr\n", "cfg:1:" },
		{ "Rendezvous @sr @x y\n", "bad identity 'y' for 'Rendezvous'" },
		{ "Rendezvous @sr @Sr2\n", "bad identity '@Sr2'" },
		{ "Rendezvous @sr @b @sr\n", "'@sr' given twice for "
		    "'Rendezvous'" },
		{ "Rendezvous @a\nRendezvous @b\n", "given twice" },
		{ "Rendezvous @a1 @a2 @a3 @a4 @a5 @a6 @a7 @a8 @a9 @b1 @b2 @b3 "
		    "@b4 @b5 @b6 @b7 @b8\n", "at most 16 values for "
		    "'Rendezvous'" },
		{ "RendezvousCache -1\n", "cfg:1:" },
		{ "RendezvousCache 2d\n", "cfg:1:" },
		{ "RendezvousTimeout 0\n", "cfg:1:" },
		{ "RendezvousTimeout 2h\n", "cfg:1:" },
		{ "SessionTimeout 0\n", "cfg:1:" },
		{ "SessionTimeout 2h\n", "cfg:1:" },
		{ "SessionTimeout -1\n", "cfg:1:" },
		{ "KeepAlive 2h\n", "cfg:1:" },
		{ "KeepAlive -1\n", "cfg:1:" },
		{ "KeyDir\n", "cfg:1:" },
		{ "DeviceAlias prod\n", "want ALIAS @ident" },
		{ "DeviceAlias prod @a web extra\n", "want ALIAS @ident" },
		{ "DeviceAlias prod acme\n", "bad identity" },
		{ "DeviceAlias prod @Acme\n", "bad identity" },
		{ "DeviceAlias Prod @acme\n", "bad alias" },
		{ "DeviceAlias @prod @acme\n", "bad alias" },
		{ "DeviceAlias prod.noports @acme\n", "bad alias" },
		{ "DeviceAlias -p @acme\n", "bad alias" },
		{ "DeviceAlias p;id @acme\n", "bad alias" },
		{ "DeviceAlias prod @acme we.b\n", "bad device name" },
		{ "DeviceAlias prod @acme "
		    "abcdefghijabcdefghijabcdefghijabc\n", "bad device name" },
		{ "DeviceAlias prod @a\nDeviceAlias prod @b\n", "given twice" },
	};
	struct np_config cfg;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse(bad[i].text, &cfg, err, sizeof(err)) ==
		    NP_ERR_CONF, "accepted: %s", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL,
		    "'%s': got '%s'", bad[i].text, err);
		ck_assert_msg(strncmp(err, "cfg", 3) == 0, "'%s'", err);
		np_config_free(&cfg);
	}
}
END_TEST

START_TEST(relay_keywords)
{
	static const char *const ciphers[] = {
		"auto", "aes-256-gcm", "chacha20-poly1305",
	};
	struct np_config cfg;
	char err[256], text[64];
	size_t i;

	/* On by default, the cipher left to the machine. */
	ck_assert_int_eq(np_config_defaults(&cfg), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 1);
	ck_assert_ptr_null(cfg.relay_cipher);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 1);
	ck_assert_ptr_null(cfg.relay_cipher);
	np_config_free(&cfg);

	ck_assert_int_eq(parse("RelayEncryption no\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 0);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("relayencryption No\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 0);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("RelayEncryption yes\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 1);
	ck_assert_int_eq(cfg.relay_handoff, 0);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("RelayEncryption Full\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 1);
	ck_assert_int_eq(cfg.relay_handoff, 0);
	np_config_free(&cfg);
	/* The default: records over ssh's handshake, then ssh's own. */
	ck_assert_int_eq(parse("RelayEncryption handshake\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 1);
	ck_assert_int_eq(cfg.relay_handoff, 1);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("", &cfg, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_handoff, 1);
	np_config_free(&cfg);
	ck_assert_int_eq(parse("RelayEncryption no\n", &cfg, err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(cfg.relay_handoff, 0);
	np_config_free(&cfg);

	for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
		snprintf(text, sizeof(text), "RelayCipher %s\n", ciphers[i]);
		ck_assert_msg(parse(text, &cfg, err, sizeof(err)) == NP_OK,
		    "%s: %s", text, err);
		ck_assert_str_eq(cfg.relay_cipher, ciphers[i]);
		np_config_free(&cfg);
		ck_assert_ptr_null(cfg.relay_cipher);
	}
	ck_assert_int_eq(parse("RelayEncryption no\n"
	    "RelayCipher chacha20-poly1305\n", &cfg, err, sizeof(err)),
	    NP_OK);
	ck_assert_int_eq(cfg.relay_encryption, 0);
	ck_assert_str_eq(cfg.relay_cipher, "chacha20-poly1305");
	np_config_free(&cfg);
}
END_TEST

START_TEST(relay_bad_keywords)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{ "RelayCipher rc4\n", "RelayCipher" },
		{ "RelayCipher none\n", "RelayCipher" },
		{ "RelayCipher aes-128-gcm\n", "RelayCipher" },
		{ "RelayCipher chacha20\n", "RelayCipher" },
		{ "RelayCipher \"\"\n", "RelayCipher" },
		{ "RelayCipher aes-256-gcm chacha20-poly1305\n", "cfg:1:" },
		{ "RelayCipher\n", "cfg:1:" },
		{ "RelayCipher auto\nRelayCipher auto\n", "cfg:2:" },
		{ "RelayEncryption maybe\n", "RelayEncryption" },
		{ "RelayEncryption handshake full\n", "cfg:1:" },
		{ "RelayEncryption 1\n", "RelayEncryption" },
		{ "RelayEncryption\n", "cfg:1:" },
		{ "RelayEncryption yes no\n", "cfg:1:" },
		{ "RelayEncryption no\nRelayEncryption yes\n", "cfg:2:" },
	};
	struct np_config cfg;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse(bad[i].text, &cfg, err, sizeof(err)) ==
		    NP_ERR_CONF, "accepted: %s", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL,
		    "'%s': got '%s'", bad[i].text, err);
		ck_assert_msg(strncmp(err, "cfg", 3) == 0, "'%s'", err);
		np_config_free(&cfg);
	}
	/* The message names the values it takes. */
	ck_assert_int_eq(parse("RelayCipher rc4\n", &cfg, err, sizeof(err)),
	    NP_ERR_CONF);
	ck_assert_str_eq(err, "cfg: RelayCipher must be auto, aes-256-gcm or "
	    "chacha20-poly1305");
	np_config_free(&cfg);
}
END_TEST

START_TEST(alias_names)
{
	char n63[80];

	ck_assert(np_alias_name_valid("a"));
	ck_assert(np_alias_name_valid("web-1.prod_x"));
	ck_assert(np_alias_name_valid("noports"));
	ck_assert(!np_alias_name_valid(""));
	ck_assert(!np_alias_name_valid(NULL));
	ck_assert(!np_alias_name_valid(".a"));
	ck_assert(!np_alias_name_valid("a.noports"));
	ck_assert(!np_alias_name_valid("a b"));
	memset(n63, 'a', 63);
	n63[63] = '\0';
	ck_assert(np_alias_name_valid(n63));
	n63[63] = 'a';
	n63[64] = '\0';
	ck_assert(!np_alias_name_valid(n63));
	ck_assert(np_devname_valid("default"));
	ck_assert(np_devname_valid("_x-1"));
	ck_assert(!np_devname_valid("a.b"));
	ck_assert(!np_devname_valid("-a"));
	ck_assert(!np_devname_valid("A"));
	ck_assert(!np_devname_valid(""));
}
END_TEST

static Suite *
npconfig_suite(void)
{
	Suite *s = suite_create("npconfig");
	TCase *tc = tcase_create("config");
	TCase *cli = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, good_file);
	tcase_add_test(tc, bad_files);
	tcase_add_test(tc, load_files);
	tcase_add_test(tc, write_new);
	tcase_add_test(tc, fp_valid);
	tcase_add_test(tc, session_keywords);
	tcase_add_test(tc, session_bad_keywords);
	tcase_add_test(tc, rendezvous_list);
	tcase_add_test(tc, relay_keywords);
	tcase_add_test(tc, relay_bad_keywords);
	tcase_add_test(tc, alias_names);
	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_add_test(cli, sanitize);
	tcase_add_test(cli, parse_long);
	tcase_add_test(cli, mkdir_p);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, cli);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(npconfig_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
