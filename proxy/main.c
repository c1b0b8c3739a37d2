/*
 * np: the NoPorts client.  Global options, then one subcommand from the
 * table below (one file each, cmd_*.c).
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "log.h"

static const struct np_cmd cmds[] = {
	{ "keygen", cmd_keygen, "create this client's identity key", 1 },
	{ "enroll", cmd_enroll, "bind the key to @name at the server", 1 },
	{ "lookup", cmd_lookup, "show (and pin) an identity's key", 0 },
	{ "pin", cmd_pin, "manage pinned identity keys (--forget)", 0 },
	{ "rotate", cmd_rotate, "replace the identity key, signed by the old",
	    0 },
	{ "send", cmd_send, "send an end-to-end encrypted note", 0 },
	{ "recv", cmd_recv, "receive notes", 0 },
	{ "proxy", cmd_proxy, "ssh ProxyCommand: np proxy %h %p %r", 0 },
	{ "ssh", cmd_ssh, "a local port to a device's sshd (--exec: run ssh)",
	    0 },
	{ "ping", cmd_ping, "ask a device's np-deviced how it is", 0 },
	{ "tunnel", cmd_tunnel, "local ports to TCP services on a device "
	    "(-L)", 0 },
	{ "doctor", cmd_doctor, "check the set-up, one line per check",
	    NP_CMD_CONFIG_OWN },
	{ NULL, NULL, NULL, 0 },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: np [-F CONFIG] [-v] SUBCOMMAND [ARGS...]\n"
	    "       np --help | --version\n\nsubcommands:\n");
	for (const struct np_cmd *c = cmds; c->name != NULL; c++) {
		fprintf(f, "  %-8s %s\n", c->name, c->help);
	}
	fprintf(f, "\n'np SUBCOMMAND --help' shows the options of one.\n");
}

static const struct np_cmd *
find_cmd(const char *name)
{
	for (const struct np_cmd *c = cmds; c->name != NULL; c++) {
		if (strcmp(c->name, name) == 0) {
			return c;
		}
	}
	return NULL;
}

/* Global options; returns the index of the subcommand, or -1 (exit). */
static int
global_opts(int argc, char **argv, const char **cfgpath, int *verbose,
    int *rc)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-F") == 0 && i + 1 < argc) {
			*cfgpath = argv[++i];
		} else if (strcmp(argv[i], "-v") == 0) {
			*verbose = 1;
		} else if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			*rc = NP_EXIT_OK;
			return -1;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("np %s\n", NP_VERSION);
			*rc = NP_EXIT_OK;
			return -1;
		} else {
			cli_err("unknown option '%.64s'", argv[i]);
			usage(stderr);
			*rc = NP_EXIT_USAGE;
			return -1;
		}
	}
	if (i >= argc) {
		usage(stderr);
		*rc = NP_EXIT_USAGE;
		return -1;
	}
	return i;
}

static int
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			return 1;
		}
	}
	return 0;
}

static int
load_config(struct np_cli *cli, const char *given, int optional,
    char *pathbuf, size_t pathlen)
{
	char err[1024];
	int r;

	if (given == NULL && (given = getenv("NP_CONFIG")) != NULL &&
	    *given == '\0') {
		given = NULL;
	}
	cli->config_given = given != NULL;
	if (given != NULL) {
		cli->config_path = given;
	} else if (np_config_path("config", pathbuf, pathlen) == NP_OK) {
		cli->config_path = pathbuf;
	}
	if (cli->config_path == NULL) {
		return np_config_defaults(&cli->cfg) == NP_OK ? NP_EXIT_OK :
		    NP_EXIT_FAIL;
	}
	r = np_config_load(&cli->cfg, cli->config_path,
	    cli->config_given && !optional, err, sizeof(err));
	if (r != NP_OK && optional == NP_CMD_CONFIG_OWN) {
		/* np doctor reports (and explains) it: the defaults here. */
		np_config_free(&cli->cfg);
		return np_config_defaults(&cli->cfg) == NP_OK ? NP_EXIT_OK :
		    NP_EXIT_FAIL;
	}
	if (r != NP_OK) {
		cli_err("%s", err[0] != '\0' ? err : np_strerror(r));
		return NP_EXIT_FAIL;
	}
	cli->config_exists = access(cli->config_path, F_OK) == 0;
	return NP_EXIT_OK;
}

int
main(int argc, char **argv)
{
	char pathbuf[PATH_MAX];
	const struct np_cmd *cmd;
	const char *cfgpath = NULL;
	struct np_cli cli;
	int i, rc = NP_EXIT_FAIL;

	memset(&cli, 0, sizeof(cli));
	cli.t0 = np_now_mono_ms();
	signal(SIGPIPE, SIG_IGN);
	if ((i = global_opts(argc, argv, &cfgpath, &cli.verbose, &rc)) < 0) {
		return rc;
	}
	np_log_init("np", 0, cli.verbose ? NP_LOG_DEBUG : NP_LOG_WARN);
	if ((cmd = find_cmd(argv[i])) == NULL) {
		cli_err("unknown subcommand '%.64s'", argv[i]);
		usage(stderr);
		return NP_EXIT_USAGE;
	}
	argc -= i;
	argv += i;
	if (!wants_help(argc, argv)) {
		if (np_crypto_init() != NP_OK) {
			cli_err("cannot initialise libsodium");
			return NP_EXIT_FAIL;
		}
		if ((rc = load_config(&cli, cfgpath, cmd->config_optional,
		    pathbuf, sizeof(pathbuf))) != NP_EXIT_OK) {
			np_config_free(&cli.cfg);
			return rc;
		}
		if ((cli.ev = np_ev_new()) == NULL) {
			cli_err("cannot create the event loop");
			np_config_free(&cli.cfg);
			return NP_EXIT_FAIL;
		}
	}
	rc = cmd->fn(&cli, argc, argv);
	np_ev_free(cli.ev);
	np_config_free(&cli.cfg);
	return rc;
}
