/*
 * np-server run -d DIR [-F CONFIG] [-l ADDR:PORT] [--port-file FILE] [-v]
 *     [--syslog]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv_cli.h"
#include "err.h"
#include "log.h"
#include "srv.h"

static const char run_usage[] =
    "usage: np-server run -d DIR [-F CONFIG] [-l ADDR:PORT] "
    "[--port-file FILE] [-v] [--syslog]\n"
    "  Serve in the foreground.  CONFIG defaults to DIR/server.conf when\n"
    "  it exists; -l overrides Listen (port 0: any free port, written to\n"
    "  FILE with --port-file).  Logs go to stderr, or syslog.\n";

struct run_args {
	const char *dir, *conf, *listen, *port_file;
	int verbose, syslog;
};

static int
run_parse(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'F'},
	    {"listen", required_argument, NULL, 'l'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"syslog", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(a, 0, sizeof(*a));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:F:l:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			a->dir = optarg;
			break;
		case 'F':
			a->conf = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case 'p':
			a->port_file = optarg;
			break;
		case 'v':
			a->verbose = 1;
			break;
		case 's':
			a->syslog = 1;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(run_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (a->dir == NULL || optind != argc) {
		fputs(run_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	return -1; /* go on */
}

static int
run_conf(const struct run_args *a, struct srv_conf *cf)
{
	char path[4096], err[600];
	const char *p = a->conf;
	struct np_hostport hp;

	if (p == NULL &&
	    srv_path(path, sizeof(path), a->dir, SRV_CONF_FILE) == NP_OK &&
	    access(path, F_OK) == 0) {
		p = path;
	}
	if (a->listen != NULL) {
		if (srv_listen_parse(a->listen, &hp) != NP_OK) {
			srv_err("-l: bad address '%.64s' (want ADDR:PORT)",
				a->listen);
			return CLI_EXIT_USAGE;
		}
		np_hostport_free(&hp);
	}
	if (srv_conf_load(cf, p, err, sizeof(err)) != NP_OK) {
		srv_err("%s", err);
		return CLI_EXIT_FAIL;
	}
	if (a->listen != NULL) {
		free(cf->listen);
		if ((cf->listen = strdup(a->listen)) == NULL) {
			srv_err("out of memory");
			return CLI_EXIT_FAIL;
		}
	}
	return -1;
}

int
srv_cmd_run(int argc, char **argv)
{
	struct run_args a;
	struct srv_conf cf;
	struct srv_opts o;
	int level = NP_LOG_INFO, rc;

	if ((rc = run_parse(argc, argv, &a)) >= 0) {
		return rc;
	}
	srv_conf_init(&cf);
	if ((rc = run_conf(&a, &cf)) >= 0) {
		srv_conf_free(&cf);
		return rc;
	}
	(void)srv_log_level_parse(cf.log_level, &level);
	if (a.verbose) {
		level = NP_LOG_DEBUG;
	}
	np_log_init("np-server", a.syslog, level);
	memset(&o, 0, sizeof(o));
	o.dir = a.dir;
	o.conf = &cf;
	o.port_file = a.port_file;
	rc = srv_run(&o) == NP_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	srv_conf_free(&cf);
	return rc;
}
