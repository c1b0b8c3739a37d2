/*
 * np lookup @name: the identity's key from the directory, checked
 * against (and recorded in) known_identities.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cpc.h"
#include "err.h"
#include "key.h"

#define LOOKUP_USAGE "np lookup @name"

static int
lookup_report(const char *id, enum cli_pin_result pr,
    const struct np_cpc_lookup_res *res, const uint8_t pinned[NP_PK_LEN])
{
	char was[NP_FP_MAX], now[NP_FP_MAX];

	switch (pr) {
	case CLI_PIN_MATCH:
		printf("pin: matches\n");
		break;
	case CLI_PIN_NEW:
		printf("pin: new, pinned\n");
		break;
	case CLI_PIN_ROTATED:
		printf("pin: followed rotation, re-pinned\n");
		break;
	case CLI_PIN_CHANGED:
		if (np_fingerprint(pinned, NP_PK_LEN, was, sizeof(was)) !=
		    NP_OK || np_fingerprint(res->pk, NP_PK_LEN, now,
		    sizeof(now)) != NP_OK) {
			return NP_EXIT_FAIL;
		}
		printf("pin: KEY CHANGED: pinned %s, server has %s\n", was,
		    now);
		fflush(stdout);
		cli_err("the key of %s changed without a rotation signed by "
		    "the pinned key; if this is expected, run 'np pin "
		    "--forget %s'", id, id);
		return NP_EXIT_FAIL;
	}
	return fflush(stdout) == 0 ? NP_EXIT_OK : NP_EXIT_FAIL;
}

int
cmd_lookup(struct np_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char id[NP_IDENT_MAX + 1];
	uint8_t pinned[NP_PK_LEN];
	struct np_cpc_lookup_res res;
	enum cli_pin_result pr = CLI_PIN_MATCH;
	struct np_key *k = NULL;
	struct np_cpc *c = NULL;
	int ch, r, rc = NP_EXIT_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: %s\n", LOOKUP_USAGE);
			return NP_EXIT_OK;
		}
		return cli_usage(LOOKUP_USAGE);
	}
	if (optind + 1 != argc) {
		return cli_usage(LOOKUP_USAGE);
	}
	if (cli_ident_arg(argv[optind], id) != NP_OK) {
		return NP_EXIT_USAGE;
	}
	if (cli_load_key(cli, &k) != NP_OK ||
	    cli_connect(cli, k, NULL, NULL, NULL, NULL, &c) != NP_OK) {
		goto out;
	}
	r = cli_lookup_pinned(cli, c, id, &res, &pr, pinned);
	if (r != NP_OK && r != NP_ERR_KEY_CHANGED) {
		goto out;
	}
	if (cli_print_key(id, res.pk, 1) != NP_OK) {
		cli_err("cannot write to stdout");
		goto out;
	}
	rc = lookup_report(id, pr, &res, pinned);
 out:
	if (c != NULL) {
		np_cpc_stop(c);
	}
	np_cpc_free(c);
	np_key_free(k);
	return rc;
}
