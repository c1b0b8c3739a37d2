/*
 * np-deviced -F deviced.conf [-D] [-v]: the device daemon
 * (docs/np-deviced.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dev.h"

static const char usage_text[] =
    "usage: np-deviced [-F deviced.conf] [-D] [-v] | --help | --version\n"
    "  -F FILE   configuration (default " DEV_DEFAULT_CONF ")\n"
    "  -D        log to stderr instead of syslog\n"
    "  -v        log debug messages\n"
    "np-deviced stays in the foreground (systemd Type=exec) and opens no\n"
    "listening socket: it dials out to its control-plane server.\n";

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct dev_opts o;
	int ch;

	memset(&o, 0, sizeof(o));
	o.conf_path = DEV_DEFAULT_CONF;
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
			printf("np-deviced %s\n", DEV_VERSION);
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
	return dev_main(&o);
}
