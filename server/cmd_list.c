/*
 * np-server list -d DIR
 */
#include <getopt.h>
#include <stdio.h>

#include "srv_cli.h"
#include "err.h"
#include "key.h"

static const char list_usage[] =
    "usage: np-server list -d DIR\n"
    "  One line per identity: @name active|revoked SHA256:... queued=N\n";

static int
list_one(const struct np_store_ident *id, void *arg)
{
	char fp[NP_FP_MAX];
	int r;

	if ((r = np_fingerprint(id->pk, NP_STORE_PK_LEN, fp, sizeof(fp))) !=
	    NP_OK) {
		return r;
	}
	printf("%s %s %s queued=%lld\n", id->name,
	       id->state == NP_STORE_ACTIVE ? "active" : "revoked", fp,
	       (long long)id->queued);
	return NP_OK;
}

int
srv_cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct np_store *s = NULL;
	const char *dir = NULL;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(list_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(list_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc) {
		fputs(list_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (srv_open_store(dir, &s) != NP_OK) {
		return CLI_EXIT_FAIL;
	}
	if ((r = np_store_list(s, list_one, NULL)) != NP_OK) {
		srv_err("cannot list identities: %s", np_strerror(r));
	}
	np_store_close(s);
	return r == NP_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
