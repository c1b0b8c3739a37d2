/*
 * np-server token -d DIR [--ttl SECONDS] @name [@name...]
 *
 * The token is 32 random bytes, printed as unpadded base64url; the
 * database keeps only its SHA-256.  With several names (a fleet of
 * devices) every token is stored in one transaction and each is printed
 * as "@name TOKEN" on a line of its own, in the order given; nothing is
 * printed unless all were stored.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "srv_cli.h"
#include "err.h"
#include "ev.h"
#include "key.h"

#define TOKEN_BYTES 32
#define TOKEN_TTL_DEFAULT 86400
#define TOKEN_TTL_MAX (366L * 86400)

static const char token_usage[] =
    "usage: np-server token -d DIR [--ttl SECONDS] @name [@name...]\n"
    "  Issue a one-time enrollment token for @name (valid 24 h unless\n"
    "  --ttl says otherwise) and print it.  With several names, print\n"
    "  \"@name TOKEN\" for each, one a line.\n";

#define TOKEN_NAMES_MAX 100000

struct token_secret {
	uint8_t raw[TOKEN_BYTES];
	char text[sodium_base64_ENCODED_LEN(
	    TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	uint8_t hash[crypto_hash_sha256_BYTES];
};

/* Mint and store one token for name; t->text holds it afterwards. */
static int
token_one(struct np_store *s, const char *name, long ttl,
    struct token_secret *t, int64_t now)
{
	int state, r;

	if (np_store_identity_get(s, name, NULL, &state) == NP_OK &&
	    state == NP_STORE_ACTIVE) {
		fprintf(stderr,
			"np-server: note: %s is enrolled; the token "
			"works only after it is revoked\n",
			name);
	}
	randombytes_buf(t->raw, sizeof(t->raw));
	sodium_bin2base64(t->text, sizeof(t->text), t->raw, sizeof(t->raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_hash_sha256(t->hash, (const uint8_t *)t->text, strlen(t->text));
	if ((r = np_store_token_add(s, name, t->hash, now + ttl * 1000, now)) !=
	    NP_OK) {
		srv_err("cannot store the token for %s: %s", name,
			np_strerror(r));
	}
	return r;
}

static int
token_issue(const char *dir, char **names, size_t n, long ttl)
{
	struct np_store *s = NULL;
	struct token_secret *t;
	int64_t now = np_now_real_ms();
	size_t i;
	int r;

	if ((t = sodium_malloc(n * sizeof(*t))) == NULL) {
		srv_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = srv_open_store(dir, &s)) != NP_OK) {
		goto out;
	}
	if (n == 1) {
		if ((r = token_one(s, names[0], ttl, &t[0], now)) == NP_OK) {
			printf("%s\n", t[0].text);
		}
		goto out;
	}
	/* One transaction for all: one commit instead of one per name. */
	if ((r = np_store_batch_begin(s)) != NP_OK) {
		srv_err("cannot start a transaction: %s", np_strerror(r));
		goto out;
	}
	for (i = 0; i < n && r == NP_OK; i++) {
		r = token_one(s, names[i], ttl, &t[i], now);
	}
	if (r != NP_OK) { /* a name failed: store none */
		(void)np_store_batch_end(s, 0);
		goto out;
	}
	if ((r = np_store_batch_end(s, 1)) != NP_OK) {
		srv_err("cannot store the tokens: %s", np_strerror(r));
		goto out;
	}
	for (i = 0; i < n; i++) {
		printf("%s %s\n", names[i], t[i].text);
	}
out:
	fflush(stdout);
	np_store_close(s);
	sodium_free(t); /* wipes */
	return r;
}

static int
parse_ttl(const char *s, long *ttl)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 ||
	    v > TOKEN_TTL_MAX) {
		return NP_ERR_INVALID;
	}
	*ttl = v;
	return NP_OK;
}

int
srv_cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"ttl", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	long ttl = TOKEN_TTL_DEFAULT;
	char **names = NULL;
	size_t n, i;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 't':
			if (parse_ttl(optarg, &ttl) != NP_OK) {
				srv_err("--ttl: seconds from 1 to %ld",
					TOKEN_TTL_MAX);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(token_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(token_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || optind >= argc ||
	    (n = (size_t)(argc - optind)) > TOKEN_NAMES_MAX) {
		fputs(token_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if ((names = calloc(n, sizeof(*names))) == NULL) {
		srv_err("out of memory");
		return CLI_EXIT_FAIL;
	}
	rc = CLI_EXIT_OK;
	for (i = 0; i < n && rc == CLI_EXIT_OK; i++) {
		if ((names[i] = malloc(NP_IDENT_MAX + 1)) == NULL) {
			srv_err("out of memory");
			rc = CLI_EXIT_FAIL;
		} else if (srv_ident(argv[optind + (int)i], names[i]) !=
			   NP_OK) {
			srv_err("bad identity '%.64s'", argv[optind + (int)i]);
			rc = CLI_EXIT_USAGE;
		}
	}
	if (rc == CLI_EXIT_OK && token_issue(dir, names, n, ttl) != NP_OK) {
		rc = CLI_EXIT_FAIL;
	}
	for (i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
	return rc;
}
