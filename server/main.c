/*
 * np-server: the NoPorts control plane.  Subcommands are dispatched from
 * one table; each lives in its own cmd_*.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "srv_cli.h"
#include "log.h"

static const struct srv_cmd srv_cmds[] = {
    {"init", srv_cmd_init, "create a server directory, print its fingerprint"},
    {"fingerprint", srv_cmd_fingerprint,
     "print the TLS certificate fingerprint"},
    {"token", srv_cmd_token, "issue a one-time enrollment token for @name"},
    {"revoke", srv_cmd_revoke, "revoke @name"},
    {"list", srv_cmd_list, "list identities"},
    {"run", srv_cmd_run, "serve in the foreground"},
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: np-server [--help | --version] COMMAND [ARGS]\n"
		   "commands:\n");
	for (i = 0; i < sizeof(srv_cmds) / sizeof(srv_cmds[0]); i++) {
		fprintf(f, "  %-12s %s\n", srv_cmds[i].name, srv_cmds[i].help);
	}
	fprintf(f, "Run 'np-server COMMAND --help' for a command's options.\n");
}

int
main(int argc, char **argv)
{
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	np_log_init("np-server", 0, NP_LOG_INFO);
	if (sodium_init() < 0) {
		srv_err("cannot initialise libsodium");
		return CLI_EXIT_FAIL;
	}
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("np-server %s\n", NP_SERVER_VERSION);
		return CLI_EXIT_OK;
	}
	for (i = 0; i < sizeof(srv_cmds) / sizeof(srv_cmds[0]); i++) {
		if (strcmp(argv[1], srv_cmds[i].name) == 0) {
			return srv_cmds[i].fn(argc - 1, argv + 1);
		}
	}
	srv_err("unknown command '%.64s'", argv[1]);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
