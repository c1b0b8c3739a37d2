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

#endif
