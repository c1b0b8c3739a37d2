/*
 * np pin --forget @name: drop a pinned identity key, so that a
 * re-enrolled identity can be pinned again on the next lookup.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "pin.h"

#define PIN_USAGE "np pin --forget @name"

int
cmd_pin(struct np_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "forget", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char id[NP_IDENT_MAX + 1];
	const char *path = cli->cfg.known_identities;
	struct np_pins *pins = NULL;
	int ch, forget = 0, r, rc = NP_EXIT_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			forget = 1;
			break;
		case 'h':
			printf("usage: %s\n", PIN_USAGE);
			return NP_EXIT_OK;
		default:
			return cli_usage(PIN_USAGE);
		}
	}
	if (!forget || optind + 1 != argc) {
		return cli_usage(PIN_USAGE);
	}
	if (cli_ident_arg(argv[optind], id) != NP_OK) {
		return NP_EXIT_USAGE;
	}
	if (path == NULL) {
		cli_err("no KnownIdentities file (HOME is not set)");
		return NP_EXIT_FAIL;
	}
	if ((r = np_pins_load(path, &pins)) != NP_OK) {
		cli_err("%s: cannot load pins: %s", path, np_strerror(r));
		goto out;
	}
	if ((r = np_pins_forget(pins, id)) != NP_OK) {
		cli_err("%s is not pinned in %s", id, path);
		goto out;
	}
	if ((r = np_pins_save(pins, path)) != NP_OK) {
		cli_err("%s: cannot save pins: %s", path, np_strerror(r));
		goto out;
	}
	printf("forgot %s\n", id);
	rc = fflush(stdout) == 0 ? NP_EXIT_OK : NP_EXIT_FAIL;
 out:
	np_pins_free(pins);
	return rc;
}
