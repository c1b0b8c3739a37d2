/*
 * np-server token -d DIR [--ttl SECONDS] @name
 *
 * The token is 32 random bytes, printed as unpadded base64url; the
 * database keeps only its SHA-256.
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
    "usage: np-server token -d DIR [--ttl SECONDS] @name\n"
    "  Issue a one-time enrollment token for @name (valid 24 h unless\n"
    "  --ttl says otherwise) and print it.\n";

struct token_secret {
	uint8_t raw[TOKEN_BYTES];
	char text[sodium_base64_ENCODED_LEN(
	    TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	uint8_t hash[crypto_hash_sha256_BYTES];
};

static int
token_issue(const char *dir, const char *name, long ttl)
{
	struct np_store *s = NULL;
	struct token_secret *t;
	int64_t now = np_now_real_ms();
	int state, r;

	if ((t = sodium_malloc(sizeof(*t))) == NULL) {
		srv_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = srv_open_store(dir, &s)) != NP_OK) {
		goto out;
	}
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
		srv_err("cannot store the token: %s", np_strerror(r));
		goto out;
	}
	printf("%s\n", t->text);
	fflush(stdout);
out:
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
	char name[NP_IDENT_MAX + 1];
	const char *dir = NULL;
	long ttl = TOKEN_TTL_DEFAULT;
	int ch;

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
	if (dir == NULL || optind != argc - 1) {
		fputs(token_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (srv_ident(argv[optind], name) != NP_OK) {
		srv_err("bad identity '%.64s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	return token_issue(dir, name, ttl) == NP_OK ? CLI_EXIT_OK
						    : CLI_EXIT_FAIL;
}
