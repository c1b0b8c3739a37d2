/*
 * np-server fingerprint -d DIR
 */
#include <getopt.h>
#include <stdio.h>

#include "srv_cli.h"
#include "err.h"
#include "key.h"
#include "tls.h"

static const char fingerprint_usage[] =
    "usage: np-server fingerprint -d DIR\n"
    "  Print the SHA-256 fingerprint of the server's TLS certificate.\n";

int
srv_cmd_fingerprint(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char crt[4096], fp[NP_FP_MAX];
	const char *dir = NULL;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(fingerprint_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(fingerprint_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc) {
		fputs(fingerprint_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (srv_path(crt, sizeof(crt), dir, SRV_CERT_FILE) != NP_OK) {
		srv_err("%s: path too long", dir);
		return CLI_EXIT_FAIL;
	}
	if ((r = np_tls_cert_fingerprint(crt, fp, sizeof(fp))) != NP_OK) {
		srv_err("cannot read %s: %s", crt, np_strerror(r));
		return CLI_EXIT_FAIL;
	}
	printf("%s\n", fp);
	return CLI_EXIT_OK;
}
