/*
 * `np-server run`: the control plane's event loop.
 */
#ifndef NP_SRV_H
#define NP_SRV_H

#include "srv_cli.h"

struct srv_opts {
	const char *dir;	     /* holds np.db, tls.key, tls.crt */
	const struct srv_conf *conf; /* Listen already overridden by -l */
	const char *port_file;	     /* may be NULL */
};

/* Serve until SIGTERM/SIGINT; NP_OK on a clean stop. */
int srv_run(const struct srv_opts *o);

#endif
