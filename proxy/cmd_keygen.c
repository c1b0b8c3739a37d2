/*
 * np keygen @name [--force] [-f KEYFILE]
 */
#include <sys/stat.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "key.h"

#define KEYGEN_USAGE "np keygen @name [--force] [-f KEYFILE]"

static void
keygen_umask_check(void)
{
	mode_t um = umask(077);

	umask(um);
	if ((um & 044) != 044) {
		fprintf(stderr, "np: warning: umask %04o lets group/other "
		    "read new files (the key file is written 0600 anyway)\n",
		    (unsigned)um);
	}
}

int
cmd_keygen(struct np_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char id[NP_IDENT_MAX + 1];
	const char *path = NULL;
	struct np_key *k = NULL;
	int force = 0, ch, r, rc = NP_EXIT_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'F':
			force = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'h':
			printf("usage: %s\n", KEYGEN_USAGE);
			return NP_EXIT_OK;
		default:
			return cli_usage(KEYGEN_USAGE);
		}
	}
	if (optind + 1 != argc) {
		return cli_usage(KEYGEN_USAGE);
	}
	if (cli_ident_arg(argv[optind], id) != NP_OK) {
		return NP_EXIT_USAGE;
	}
	if (path == NULL && (path = cli->cfg.identity_file) == NULL) {
		cli_err("no IdentityFile (HOME is not set); use -f KEYFILE");
		return NP_EXIT_FAIL;
	}
	if ((r = np_mkdir_parent(path)) != NP_OK) {
		cli_err("%s: cannot create its directory: %s", path,
		    np_strerror(r));
		return NP_EXIT_FAIL;
	}
	if ((r = np_key_generate(id, &k)) != NP_OK) {
		cli_err("cannot generate a key: %s", np_strerror(r));
		goto out;
	}
	if ((r = np_key_save(k, path, force)) != NP_OK) {
		if (r == NP_ERR_EXISTS) {
			cli_err("%s already exists (use --force to replace "
			    "it)", path);
		} else {
			cli_err("%s: cannot write the key: %s", path,
			    np_strerror(r));
		}
		goto out;
	}
	cli_step(cli, "wrote %s", path);
	keygen_umask_check();
	if (cli_print_key(np_key_name(k), np_key_pk(k), 0) != NP_OK) {
		cli_err("cannot write to stdout");
		goto out;
	}
	rc = NP_EXIT_OK;
 out:
	np_key_free(k);
	return rc;
}
