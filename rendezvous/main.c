/*
 * np-srd -F srd.conf [-D] [-v]: the socket rendezvous (docs/np-srd.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "srd.h"

static const char usage_text[] =
    "usage: np-srd [-F srd.conf] [-D] [-v] | --help | --version\n"
    "  -F FILE   configuration (default " SRD_DEFAULT_CONF ")\n"
    "  -D        log to stderr instead of syslog\n"
    "  -v        log debug messages\n"
    "np-srd stays in the foreground (systemd Type=exec).\n";

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct srd_opts o;
	int ch;

	memset(&o, 0, sizeof(o));
	o.conf_path = SRD_DEFAULT_CONF;
	while ((ch = getopt_long(argc, argv, "F:DvhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'F':
			o.conf_path = optarg;
			break;
		case 'D':
			o.foreground = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("np-srd %s\n", SRD_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	return srd_main(&o);
}
