/*
 * Between store.c (the public functions, argument checks, dispatch) and
 * the backends (store_sqlite.c, store_pg.c).  Every backend handle
 * starts with a struct np_store whose ops point at the backend's table;
 * the public functions check their arguments and call through it, so a
 * backend sees only valid names, boxes and tags.
 */
#ifndef NP_STORE_INT_H
#define NP_STORE_INT_H

#include "store.h"

struct np_store_ops {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(struct np_store *s);
	int (*batch_begin)(struct np_store *s);
	int (*batch_end)(struct np_store *s, int commit);
	int (*in_batch)(const struct np_store *s);
	int (*identity_get)(struct np_store *s, const char *name, uint8_t *pk,
			    int *state);
	int (*token_add)(struct np_store *s, const char *name,
			 const uint8_t hash[NP_STORE_HASH_LEN],
			 int64_t expires_ms, int64_t now_ms);
	int (*enroll)(struct np_store *s, const char *name,
		      const uint8_t hash[NP_STORE_HASH_LEN],
		      const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms);
	int (*revoke)(struct np_store *s, const char *name, int64_t now_ms);
	int (*rotate)(struct np_store *s, const char *name,
		      const struct np_store_rot *rot, int64_t now_ms);
	int (*rot_get)(struct np_store *s, const char *name,
		       struct np_store_rot *out, size_t max, size_t *n);
	/* b is checked; queue_max >= 1; *dup and *dropped start at 0. */
	int (*box_put)(struct np_store *s, struct np_store_box *b,
		       int64_t queue_max, int *dup, int64_t *dropped);
	/* tag is "" (untagged) or valid; 1 <= limit <= FETCH_MAX; v has
	 * room for limit boxes, *n counts the filled ones (also on error). */
	int (*box_fetch)(struct np_store *s, const char *recipient,
			 const char *tag, int64_t after, size_t limit,
			 int64_t now_ms, struct np_store_box *v, size_t *n);
	int (*box_ack)(struct np_store *s, const char *recipient, int64_t seq);
	int (*box_count)(struct np_store *s, const char *recipient, int64_t *n);
	int (*expire)(struct np_store *s, int64_t now_ms, int64_t *nboxes,
		      int64_t *ntokens);
	int (*list)(struct np_store *s, np_store_list_cb *cb, void *arg);
	int (*changed)(struct np_store *s, int *changed);
	int (*watch_fd)(struct np_store *s);
	int (*watch_read)(struct np_store *s, np_store_box_cb *cb, void *arg,
			  int *changed);
	int seq_ordered;
};

struct np_store {
	const struct np_store_ops *ops;
};

/* The bounds [*from, *to) of the password in a URI's user:password@;
 * 0 when there is none. */
int np_store_uri_password(const char *path, size_t *from, size_t *to);

/* The backends' open functions (flags as np_store_open). */
int np_store_sqlite_open(const char *path, int flags, struct np_store **out);
int np_store_pg_open(const char *uri, int flags, struct np_store **out);

#endif
