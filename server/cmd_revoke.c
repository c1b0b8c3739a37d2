/*
 * np-server revoke -d DIR @name
 */
#include <getopt.h>
#include <stdio.h>

#include "srv_cli.h"
#include "err.h"
#include "ev.h"

static const char revoke_usage[] =
    "usage: np-server revoke -d DIR @name\n"
    "  Revoke @name: its queued boxes and unused tokens are dropped and a\n"
    "  running server closes its connections within about a second.\n";

static int
revoke_run(const char *dir, const char *name)
{
	struct np_store *s = NULL;
	int r;

	if ((r = srv_open_store(dir, &s)) != NP_OK) {
		return r;
	}
	r = np_store_revoke(s, name, np_now_real_ms());
	if (r == NP_ERR_NOT_FOUND) {
		srv_err("no such identity %s", name);
	} else if (r != NP_OK) {
		srv_err("cannot revoke %s: %s", name, np_strerror(r));
	}
	np_store_close(s);
	return r;
}

int
srv_cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char name[NP_IDENT_MAX + 1];
	const char *dir = NULL;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(revoke_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(revoke_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc - 1) {
		fputs(revoke_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (srv_ident(argv[optind], name) != NP_OK) {
		srv_err("bad identity '%.64s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	return revoke_run(dir, name) == NP_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
