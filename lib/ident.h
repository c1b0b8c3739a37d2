/*
 * Identity names: "@name", name = [a-z0-9_][a-z0-9_.-]{0,54}.
 */
#ifndef NP_IDENT_H
#define NP_IDENT_H

#include <stddef.h>

#define NP_NAME_MAX 55		/* without the '@' */
#define NP_IDENT_MAX (NP_NAME_MAX + 1) /* with the '@', without NUL */

/* 1 if s is "@name" with a valid name, else 0. */
int np_ident_valid(const char *s);
/*
 * Normalise "name" or "@name" into "@name" in out (size >= NP_IDENT_MAX+1).
 * NP_OK or NP_ERR_INVALID.
 */
int np_ident_norm(const char *s, char *out, size_t outlen);

/*
 * A tunnel's target host as the client writes it and the device's
 * PermitOpen compares it: a name or an address literal (IPv6 without
 * brackets), [A-Za-z0-9._:-], 1..NP_TUNNEL_HOST_MAX bytes, not starting
 * with '-'.  Pure.
 */
#define NP_TUNNEL_HOST_MAX 253
int np_tunnel_host_valid(const char *h, size_t len);

#endif
