/*
 * The client side of a session: names, the files ssh reads, and the
 * set-up over the control plane and the rendezvous (see session.h).
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "cpc.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "pin.h"
#include "session.h"
#include "spool.h"
#include "srpick.h"
#include "srproto.h"
#include "sshkey.h"

/* ---------------- names ---------------- */

static int
ends_with(const char *s, const char *sfx)
{
	size_t n = strlen(s), k = strlen(sfx);

	return n >= k && strcmp(s + n - k, sfx) == 0;
}

static int
why_set(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0) {
		snprintf(why, whylen, "%s", msg);
	}
	return NP_ERR_INVALID;
}

static const struct np_alias *
alias_find(const char *h, const struct np_alias *a, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		k = strlen(a[i].name);
		if (strcmp(h, a[i].name) == 0 ||
		    (strncmp(h, a[i].name, k) == 0 &&
		    strcmp(h + k, NP_NOPORTS_SUFFIX) == 0)) {
			return &a[i];
		}
	}
	return NULL;
}

/* "DEVICE.NAME" or "NAME" (the suffix already removed) into t. */
static int
split_name(char *s, struct np_target *t, char *why, size_t whylen)
{
	char *dot = strchr(s, '.'), *name = s;

	snprintf(t->device, sizeof(t->device), "default");
	if (dot != NULL) {
		*dot = '\0';
		if (!np_devname_valid(s)) {
			return why_set(why, whylen, "bad device name (want "
			    "[a-z0-9_][a-z0-9_-]{0,31})");
		}
		memcpy(t->device, s, strlen(s) + 1); /* valid: fits */
		name = dot + 1;
	}
	if (np_ident_norm(name, t->ident, sizeof(t->ident)) != NP_OK ||
	    name[0] == '@') {
		return why_set(why, whylen, "bad identity name (want "
		    "[a-z0-9_][a-z0-9_.-]{0,54})");
	}
	return NP_OK;
}

int
np_target_resolve(const char *host, const struct np_alias *aliases,
    size_t naliases, struct np_target *t, char *why, size_t whylen)
{
	const struct np_alias *a;
	char s[NP_HOSTNAME_MAX + 1];
	size_t i, n;

	memset(t, 0, sizeof(*t));
	if (host == NULL || (n = strlen(host)) == 0 || n > NP_HOSTNAME_MAX) {
		return why_set(why, whylen, "empty or too long host name");
	}
	for (i = 0; i <= n; i++) {
		char ch = host[i];

		if (ch >= 'A' && ch <= 'Z') {
			ch = (char)(ch - 'A' + 'a');
		} else if (ch != '\0' && !((ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		    ch == '.')) {
			return why_set(why, whylen, "host name has characters "
			    "other than a-z, 0-9, '_', '-' and '.'");
		}
		s[i] = ch;
	}
	snprintf(t->host, sizeof(t->host), "%s", s);
	if ((a = alias_find(s, aliases, naliases)) != NULL) {
		snprintf(t->ident, sizeof(t->ident), "%s", a->ident);
		snprintf(t->device, sizeof(t->device), "%s", a->device);
		return NP_OK;
	}
	if (!ends_with(s, NP_NOPORTS_SUFFIX) ||
	    n == sizeof(NP_NOPORTS_SUFFIX) - 1) {
		return why_set(why, whylen, "not a NAME.noports or "
		    "DEVICE.NAME.noports name, nor a DeviceAlias");
	}
	s[n - (sizeof(NP_NOPORTS_SUFFIX) - 1)] = '\0';
	return split_name(s, t, why, whylen);
}

int
np_port_parse(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (s == NULL || s[0] < '1' || s[0] > '9') {
		return -1;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= 5 || s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535) {
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* ---------------- known_hosts ---------------- */

int
np_kh_name(const char *host, uint16_t port, char *out, size_t outlen)
{
	int n;

	if (port == 22) {
		n = snprintf(out, outlen, "%s", host);
	} else {
		n = snprintf(out, outlen, "[%s]:%u", host, (unsigned)port);
	}
	return n < 0 || (size_t)n >= outlen ? NP_ERR_TOO_BIG : NP_OK;
}

/* 1 if the line (without its newline) names exactly `name`. */
static int
kh_line_is(const uint8_t *p, size_t len, const char *name)
{
	size_t i = 0, k = strlen(name);

	while (i < len && (p[i] == ' ' || p[i] == '\t')) {
		i++;
	}
	if (i == len || p[i] == '#' || p[i] == '@') {
		return 0;
	}
	if (len - i < k || memcmp(p + i, name, k) != 0) {
		return 0;
	}
	i += k;
	return i < len && (p[i] == ' ' || p[i] == '\t');
}

int
np_kh_rewrite(const uint8_t *old, size_t len, const char *name,
    char *const *keys, size_t nkeys, struct np_buf *out)
{
	size_t off = 0, end, i;
	int r;

	while (off < len) {
		const uint8_t *nl = memchr(old + off, '\n', len - off);

		end = nl != NULL ? (size_t)(nl - old) : len;
		if (!kh_line_is(old + off, end - off, name)) {
			if ((r = np_buf_put(out, old + off, end - off)) !=
			    NP_OK || (r = np_buf_put_u8(out, '\n')) != NP_OK) {
				return r;
			}
		}
		off = nl != NULL ? end + 1 : len;
	}
	for (i = 0; i < nkeys; i++) {
		if (strchr(keys[i], '\n') != NULL ||
		    strchr(keys[i], '\r') != NULL) {
			return NP_ERR_INVALID;
		}
		if ((r = np_buf_putf(out, "%s %s\n", name, keys[i])) !=
		    NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

/* Open and flock(LOCK_EX) path + ".lock"; the fd, or -1. */
static int
lock_file(const char *path, int nonblock)
{
	char lp[PATH_MAX];
	int fd, n;

	n = snprintf(lp, sizeof(lp), "%s.lock", path);
	if (n < 0 || (size_t)n >= sizeof(lp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		return -1;
	}
	while (flock(fd, LOCK_EX | (nonblock ? LOCK_NB : 0)) != 0) {
		if (errno != EINTR) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
	}
	return fd;
}

int
np_kh_update(const char *path, const char *name, char *const *keys,
    size_t nkeys)
{
	struct np_buf *old = NULL, *out = NULL;
	int fd = -1, r;

	if ((r = np_mkdir_parent(path)) != NP_OK) {
		return r;
	}
	if ((fd = lock_file(path, 0)) < 0) {
		return NP_ERR_SYSTEM;
	}
	r = np_file_read_checked(path, NP_KNOWN_HOSTS_MAX, 022, 0, &old);
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		goto out;
	}
	if ((out = np_buf_new(NP_KNOWN_HOSTS_MAX + 64 * 1024)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_kh_rewrite(old != NULL ? np_buf_ptr(old) : NULL,
	    old != NULL ? np_buf_len(old) : 0, name, keys, nkeys, out)) !=
	    NP_OK) {
		goto out;
	}
	/* The same keys as last time: no rewrite, no fsync on the way to
	 * every session. */
	if (old != NULL && np_buf_len(old) == np_buf_len(out) &&
	    memcmp(np_buf_ptr(old), np_buf_ptr(out), np_buf_len(out)) == 0) {
		r = NP_OK;
		goto out;
	}
	r = np_file_write_atomic(path, np_buf_ptr(out), np_buf_len(out), 1);
 out:
	if (fd >= 0) {
		close(fd); /* releases the lock */
	}
	np_buf_free(old);
	np_buf_free(out);
	return r;
}

/* ---------------- the session key file ---------------- */

/* mkdir -p dir (0700); an existing dir of ours is made 0700. */
static int
private_dir(const char *dir)
{
	struct stat st;
	int r;

	if ((r = np_mkdir_p(dir)) != NP_OK) {
		return r;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return NP_ERR_PERM;
	}
	if (st.st_uid != geteuid()) {
		return NP_ERR_PERM;
	}
	if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
		return NP_ERR_SYSTEM;
	}
	return NP_OK;
}

/* dir/USER@HOST into path, the names checked. */
static int
keyfile_path(const char *dir, const char *user, const char *host,
    char *path, size_t pathlen)
{
	int n;

	if (dir == NULL || dir[0] == '\0' || user == NULL ||
	    !np_user_valid(user) || host == NULL || host[0] == '\0' ||
	    host[0] == '.' || strchr(host, '/') != NULL) {
		return NP_ERR_INVALID;
	}
	n = snprintf(path, pathlen, "%s/%s@%s", dir, user, host);
	if (n < 0 || (size_t)n >= pathlen) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

/*
 * Read and parse an existing key file: NP_ERR_NOT_FOUND when there is
 * none, NP_ERR_PERM when it is unsafe, NP_ERR_INVALID when it is not an
 * unencrypted OpenSSH Ed25519 private key.
 */
static int
keyfile_read(const char *path, struct np_sshkey **out)
{
	struct np_buf *b = NULL;
	struct stat st;
	uint8_t *dst;
	size_t want;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		return errno == ENOENT ? NP_ERR_NOT_FOUND : errno == ELOOP ||
		    errno == EACCES || errno == EPERM ? NP_ERR_PERM :
		    NP_ERR_SYSTEM;
	}
	if (fstat(fd, &st) != 0) {
		r = NP_ERR_SYSTEM;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		r = NP_ERR_PERM;
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > NP_SSHKEY_PRIV_MAX) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((b = np_buf_new_secure(NP_SSHKEY_PRIV_MAX + 1)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	for (;;) {
		if ((want = np_buf_avail(b)) == 0) {
			r = NP_ERR_INVALID; /* grew past the cap */
			goto out;
		}
		if ((r = np_buf_reserve(b, want, &dst)) != NP_OK) {
			goto out;
		}
		n = read(fd, dst, want);
		(void)np_buf_unreserve(b, n > 0 ? want - (size_t)n : want);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			r = NP_ERR_SYSTEM;
			goto out;
		}
		if (n == 0) {
			break;
		}
	}
	r = np_sshkey_parse_private(np_buf_ptr(b), np_buf_len(b), out) ==
	    NP_OK ? NP_OK : NP_ERR_INVALID;
 out:
	np_buf_free(b); /* wipes */
	close(fd);
	return r;
}

/* Make a key and link it into place: NP_ERR_EXISTS when another was
 * there first (then nothing is changed). */
static int
keyfile_create(const char *path, const char *user, const char *host,
    struct np_sshkey **out)
{
	struct np_sshkey *k = NULL;
	struct np_buf *pem = NULL;
	char comment[NP_SSHKEY_COMMENT_MAX + 1];
	int n, r;

	n = snprintf(comment, sizeof(comment), "noports %s@%s", user, host);
	if (n < 0 || (size_t)n >= sizeof(comment)) {
		snprintf(comment, sizeof(comment), "noports");
	}
	if ((r = np_sshkey_generate(&k)) != NP_OK) {
		return r;
	}
	if ((pem = np_buf_new_secure(NP_SSHKEY_PRIV_MAX)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_sshkey_private_pem(k, comment, pem)) != NP_OK ||
	    (r = np_file_write_atomic(path, np_buf_ptr(pem), np_buf_len(pem),
	    0)) != NP_OK) {
		goto out;
	}
	*out = k;
	k = NULL;
 out:
	np_buf_free(pem); /* wipes */
	np_sshkey_free(k);
	return r;
}

#define KEYFILE_TRIES 4 /* made and removed by someone else meanwhile */

int
np_keyfile_get(const char *dir, const char *user, const char *host,
    char *path, size_t pathlen, struct np_sshkey **out, int *created)
{
	int r, i;

	*out = NULL;
	if (created != NULL) {
		*created = 0;
	}
	if ((r = np_crypto_init()) != NP_OK ||
	    (r = keyfile_path(dir, user, host, path, pathlen)) != NP_OK ||
	    (r = private_dir(dir)) != NP_OK) {
		return r;
	}
	for (i = 0; i < KEYFILE_TRIES; i++) {
		if ((r = keyfile_read(path, out)) != NP_ERR_NOT_FOUND) {
			return r;
		}
		r = keyfile_create(path, user, host, out);
		if (r != NP_ERR_EXISTS) {
			if (r == NP_OK && created != NULL) {
				*created = 1;
			}
			return r;
		}
		/* another process won the race: take its key */
	}
	return r;
}

int
np_keyfile_publine(const char *dir, const char *user, const char *host,
    char *path, size_t pathlen, char *pub, size_t publen, int *created)
{
	struct np_sshkey *k = NULL;
	struct np_buf *b = NULL;
	int r;

	if ((r = np_keyfile_get(dir, user, host, path, pathlen, &k,
	    created)) != NP_OK) {
		return r;
	}
	if ((b = np_buf_new(NP_SSHPUB_LINE_MAX)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_sshkey_public_line(k, NULL, b)) != NP_OK) {
		goto out;
	}
	if (np_buf_len(b) >= publen) {
		r = NP_ERR_TOO_BIG;
		goto out;
	}
	memcpy(pub, np_buf_ptr(b), np_buf_len(b));
	pub[np_buf_len(b)] = '\0';
 out:
	np_sshkey_free(k); /* wipes the secret half */
	np_buf_free(b);
	return r;
}

/* ---------------- np.session.ok ---------------- */

static int
ok_hostkeys(struct json_object *a, struct np_session_ok *ok)
{
	struct np_sshpub *pub = NULL;
	struct np_buf *b = NULL;
	struct json_object *e;
	const char *s;
	size_t i, n;
	int r = NP_OK;

	if (!json_object_is_type(a, json_type_array) ||
	    (n = json_object_array_length(a)) == 0 || n > NP_HOSTKEYS_MAX) {
		return NP_ERR_PROTO;
	}
	for (i = 0; i < n && r == NP_OK; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string) ||
		    (s = json_object_get_string(e)) == NULL ||
		    (size_t)json_object_get_string_len(e) >
		    NP_SSHPUB_LINE_MAX) {
			return NP_ERR_PROTO;
		}
		if ((r = np_sshpub_parse((const uint8_t *)s,
		    (size_t)json_object_get_string_len(e), &pub)) != NP_OK) {
			return NP_ERR_PROTO;
		}
		if ((b = np_buf_new(NP_SSHPUB_LINE_MAX + 1)) == NULL ||
		    (r = np_sshpub_format(pub, b)) != NP_OK ||
		    (r = np_buf_put_u8(b, 0)) != NP_OK ||
		    (ok->hostkeys[ok->nhostkeys] =
		    strdup((const char *)np_buf_ptr(b))) == NULL) {
			r = r != NP_OK ? r : NP_ERR_ALLOC;
		} else {
			ok->nhostkeys++;
		}
		np_buf_free(b);
		b = NULL;
		np_sshpub_free(pub);
		pub = NULL;
	}
	return r;
}

static int ok_parse(struct json_object *, const char *, int,
    struct np_session_ok *);

int
np_session_ok_parse(struct json_object *body, const char *sid,
    struct np_session_ok *ok)
{
	return ok_parse(body, sid, 0, ok);
}

int
np_session_ok_parse_tunnel(struct json_object *body, const char *sid,
    struct np_session_ok *ok)
{
	return ok_parse(body, sid, 1, ok);
}

/* "enc": absent (no encryption) or the name of a cipher we know. */
static int
ok_cipher(struct json_object *body, int *cipher)
{
	struct json_object *v;

	*cipher = NP_SREC_NONE;
	if (!json_object_object_get_ex(body, "enc", &v)) {
		return json_object_object_get_ex(body, "enc_handoff", NULL) ?
		    NP_ERR_PROTO : NP_OK;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v) ||
	    (*cipher = np_srec_cipher_parse(json_object_get_string(v))) ==
	    NP_SREC_NONE) {
		return NP_ERR_PROTO;
	}
	return NP_OK;
}

/* "enc_handoff": absent, or an integer within NP_SREC_HANDOFF_MIN..MAX. */
static int
ok_handoff(struct json_object *body, uint32_t *handoff)
{
	struct json_object *v;
	int64_t h;

	*handoff = 0;
	if (!json_object_object_get_ex(body, "enc_handoff", &v)) {
		return NP_OK;
	}
	if (!json_object_is_type(v, json_type_int) ||
	    (h = json_object_get_int64(v)) < NP_SREC_HANDOFF_MIN ||
	    h > NP_SREC_HANDOFF_MAX) {
		return NP_ERR_PROTO;
	}
	*handoff = (uint32_t)h;
	return NP_OK;
}

static int
ok_parse(struct json_object *body, const char *sid, int tunnel,
    struct np_session_ok *ok)
{
	struct json_object *v;
	const char *s;
	int r = NP_ERR_PROTO;

	memset(ok, 0, sizeof(*ok));
	if (body == NULL || !json_object_is_type(body, json_type_object)) {
		return NP_ERR_PROTO;
	}
	if (!json_object_object_get_ex(body, "sid", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    (s = json_object_get_string(v)) == NULL || strcmp(s, sid) != 0) {
		return NP_ERR_PROTO;
	}
	if (!json_object_object_get_ex(body, "expires", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		goto out;
	}
	ok->expires = json_object_get_int64(v);
	if (!json_object_object_get_ex(body, "kx", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    np_b64_decode_exact(json_object_get_string(v), ok->kx,
	    sizeof(ok->kx)) != NP_OK) {
		goto out;
	}
	if (ok_cipher(body, &ok->cipher) != NP_OK ||
	    ok_handoff(body, &ok->handoff) != NP_OK) {
		goto out;
	}
	if (tunnel && (!json_object_object_get_ex(body, "hostkeys", &v) ||
	    (json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) == 0))) {
		r = NP_OK; /* a tunnel needs no host keys */
		goto out;
	}
	if (!json_object_object_get_ex(body, "hostkeys", &v) ||
	    (r = ok_hostkeys(v, ok)) != NP_OK) {
		r = r == NP_ERR_ALLOC ? r : NP_ERR_PROTO;
		goto out;
	}
	r = NP_OK;
 out:
	if (r != NP_OK) {
		np_session_ok_clear(ok);
	}
	return r;
}

void
np_session_ok_clear(struct np_session_ok *ok)
{
	size_t i;

	if (ok == NULL) {
		return;
	}
	for (i = 0; i < ok->nhostkeys; i++) {
		free(ok->hostkeys[i]);
	}
	sodium_memzero(ok, sizeof(*ok));
}

int
np_session_err_parse(struct json_object *body, const char *sid, char *why,
    size_t whylen)
{
	struct json_object *v;
	const char *reason = "(no reason given)";
	size_t i;

	if (body == NULL || !json_object_is_type(body, json_type_object)) {
		return NP_ERR_PROTO;
	}
	if (!json_object_object_get_ex(body, "sid", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), sid) != 0) {
		return NP_ERR_AGAIN; /* another session's answer */
	}
	if (json_object_object_get_ex(body, "reason", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) > 0) {
		reason = json_object_get_string(v);
	}
	if (whylen == 0) {
		return NP_OK;
	}
	for (i = 0; reason[i] != '\0' && i + 1 < whylen; i++) {
		why[i] = reason[i] >= 0x20 && reason[i] < 0x7f ? reason[i] :
		    '?';
	}
	why[i] = '\0';
	return NP_OK;
}

/* ---------------- the control-plane context ---------------- */

static void
sctx_push(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct np_sctx *x = arg;
	struct np_push *p;

	if (m->tag == NULL || strcmp(m->tag, x->tag) != 0) {
		return; /* not for us (the server routes by tag): left alone */
	}
	if (m->box_len > NP_BOX_MAX || strlen(m->from) > NP_IDENT_MAX ||
	    strlen(m->mid) > NP_MID_LEN ||
	    x->qbytes + m->box_len > NP_PUSH_BYTES_MAX) {
		return; /* not acked: the server keeps it */
	}
	if ((p = calloc(1, sizeof(*p) + m->box_len)) == NULL) {
		return;
	}
	p->seq = m->seq;
	snprintf(p->from, sizeof(p->from), "%s", m->from);
	snprintf(p->mid, sizeof(p->mid), "%s", m->mid);
	p->len = m->box_len;
	memcpy(p->box, m->box, m->box_len);
	*x->tail = p;
	x->tail = &p->next;
	x->qbytes += m->box_len;
}

static struct np_push *
sctx_pop(struct np_sctx *x)
{
	struct np_push *p = x->head;

	if (p != NULL) {
		x->head = p->next;
		if (x->head == NULL) {
			x->tail = &x->head;
		}
		x->qbytes -= p->len;
	}
	return p;
}

int
np_sctx_left_ms(const struct np_sctx *x)
{
	uint64_t now = np_now_mono_ms();

	if (now >= x->deadline) {
		return 0;
	}
	return x->deadline - now > 0x7fffffff ? 0x7fffffff :
	    (int)(x->deadline - now);
}

int
np_sctx_open(struct np_cli *cli, uint64_t deadline, long timeout_s,
    struct np_sctx **out)
{
	struct np_sctx *x;
	uint64_t now = np_now_mono_ms();
	int r;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		cli_err("out of memory");
		return NP_ERR_ALLOC;
	}
	x->cli = cli;
	x->tail = &x->head;
	x->deadline = deadline;
	x->timeout_s = timeout_s;
	if ((x->rc = np_replay_new(4096)) == NULL) {
		cli_err("out of memory");
		r = NP_ERR_ALLOC;
		goto fail;
	}
	if ((r = cli_load_key(cli, &x->key)) != NP_OK) {
		goto fail;
	}
	np_tag_new(x->tag);
	cli->timeout_override_ms = now < deadline ? (int)(deadline - now) : 1;
	r = cli_connect_tag(cli, x->key, x->tag, &x->c);
	if (r != NP_OK) {
		goto fail;
	}
	np_cpc_set_msg_cb(x->c, sctx_push, x);
	*out = x;
	return NP_OK;
 fail:
	np_sctx_free(x);
	return r;
}

void
np_sctx_free(struct np_sctx *x)
{
	struct np_push *p;

	if (x == NULL) {
		return;
	}
	if (x->c != NULL) {
		np_cpc_set_msg_cb(x->c, NULL, NULL);
		np_cpc_stop(x->c); /* flushes the acks */
		np_cpc_free(x->c);
	}
	while ((p = sctx_pop(x)) != NULL) {
		free(p);
	}
	np_cpc_waiter_clear(&x->monw);
	np_replay_free(x->rc);
	np_key_free(x->key);
	free(x);
}

/* Check (and pin) every key, under a lock on the pins file. */
static int
pin_all(struct np_sctx *x, const char *const *ids, size_t n,
    const struct np_cpc_lookup_res *res)
{
	const char *path = x->cli->cfg.known_identities;
	struct np_pins *pins = NULL;
	int fd = -1, r = NP_OK, changed, any = 0;
	size_t i;

	if (path == NULL) {
		cli_err("no KnownIdentities file (HOME is not set)");
		return NP_ERR_CONF;
	}
	if ((r = np_mkdir_parent(path)) != NP_OK || (fd = lock_file(path, 0))
	    < 0 || (r = np_pins_load(path, &pins)) != NP_OK) {
		cli_err("%s: cannot load pins: %s", path,
		    np_strerror(r != NP_OK ? r : NP_ERR_SYSTEM));
		r = r != NP_OK ? r : NP_ERR_SYSTEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		changed = 0;
		r = np_pins_check(pins, ids[i], res[i].pk, res[i].rot,
		    res[i].nrot, 1, &changed);
		if (r == NP_ERR_KEY_CHANGED) {
			cli_err("%s: KEY CHANGED: the server's key for %s is "
			    "not the pinned one (if it was re-enrolled on "
			    "purpose: np pin --forget %s)", ids[i], ids[i],
			    ids[i]);
			goto out;
		}
		if (r != NP_OK) {
			cli_err("%s: pin check failed: %s", ids[i],
			    np_strerror(r));
			goto out;
		}
		any |= changed;
	}
	if (any && (r = np_pins_save(pins, path)) != NP_OK) {
		cli_err("%s: cannot save pins: %s", path, np_strerror(r));
	}
 out:
	if (fd >= 0) {
		close(fd);
	}
	np_pins_free(pins);
	return r;
}

#define LOOKUP_MAX (1 + NP_CONF_MULTI_MAX)

int
np_sctx_lookup(struct np_sctx *x, const char *const *ids, size_t n,
    uint8_t (*pks)[NP_PK_LEN])
{
	struct np_cpc_waiter w[LOOKUP_MAX];
	struct np_cpc_lookup_res res[LOOKUP_MAX];
	uint32_t rid[LOOKUP_MAX];
	size_t i;
	int r;

	if (n > LOOKUP_MAX) {
		return NP_ERR_INVALID;
	}
	memset(w, 0, sizeof(w));
	memset(rid, 0, sizeof(rid));
	/* The monitor answer cannot be cancelled: its waiter lives in x. */
	np_cpc_waiter_clear(&x->monw);
	if ((r = np_cpc_monitor(x->c, np_cpc_waiter_cb, &x->monw)) != NP_OK) {
		cli_req_err(x->c, r, "monitor");
		return r;
	}
	for (i = 0; i < n; i++) {
		if ((r = np_cpc_lookup(x->c, ids[i], np_cpc_waiter_cb, &w[i],
		    &rid[i])) != NP_OK) {
			cli_req_err(x->c, r, ids[i]);
			goto out;
		}
	}
	for (i = 0; i <= n; i++) {
		struct np_cpc_waiter *wi = i < n ? &w[i] : &x->monw;

		r = np_cpc_wait(x->c, wi, i < n ? rid[i] : 0,
		    np_sctx_left_ms(x));
		if (r == NP_OK && i < n) {
			r = np_cpc_parse_lookup(w[i].obj, &res[i]);
			if (r == NP_OK && strcmp(res[i].id, ids[i]) != 0) {
				r = NP_ERR_PROTO;
			}
		}
		if (r != NP_OK) {
			if (wi->detail[0] != '\0') {
				cli_err("%s: %s (%s)", i < n ? ids[i] :
				    "monitor", np_strerror(r), wi->detail);
			} else {
				cli_req_err(x->c, r, i < n ? ids[i] :
				    "monitor");
			}
			goto out;
		}
	}
	if ((r = pin_all(x, ids, n, res)) != NP_OK) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		memcpy(pks[i], res[i].pk, NP_PK_LEN);
	}
 out:
	for (i = 0; i < n; i++) {
		if (!w[i].done && rid[i] != 0) {
			np_cpc_cancel(x->c, rid[i]);
		}
		np_cpc_waiter_clear(&w[i]);
	}
	return r;
}

int
np_sctx_send(struct np_sctx *x, const char *to,
    const uint8_t to_pk[NP_PK_LEN], const char *type, const char *session,
    struct json_object *body, struct np_cpc_waiter *w, uint32_t *rid)
{
	struct np_buf *box = NULL;
	char mid[NP_MID_LEN + 1];
	int r;

	if ((box = np_buf_new(NP_BOX_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_box_seal(x->key, to_pk, to, type, session, body,
	    NP_SESSION_BOX_TTL, np_now_real_ms(), NULL, box, mid)) == NP_OK) {
		r = np_cpc_send(x->c, to, mid, NP_SESSION_BOX_TTL,
		    np_buf_ptr(box), np_buf_len(box), np_cpc_waiter_cb, w,
		    rid);
	}
	np_buf_free(box);
	return r;
}

/*
 * A box from the peer that np_box_open() found outside the time window.
 * When it is authentic and answers what we wait for (x->want_session,
 * fresh for this run, so no old box of the peer's can pass for it), the
 * peer's clock is off: end the wait (NP_ERR_STALE) with the offset and,
 * for a refusal, its reason, to tell the user.  Nothing else in it is
 * used.  Any other box: NP_ERR_AGAIN (dropped, as before).
 */
static int
sctx_stale(struct np_sctx *x, const struct np_push *p,
    const uint8_t from_pk[NP_PK_LEN])
{
	struct np_box_msg *m = NULL;
	struct json_object *v;
	int64_t now = np_now_real_ms();

	if (x->want_session == NULL ||
	    np_box_open_stale(x->key, from_pk, p->from, p->mid, p->box,
	    p->len, now, &m) != NP_OK) {
		return NP_ERR_AGAIN;
	}
	if (strcmp(m->session, x->want_session) != 0) {
		np_box_msg_free(m);
		return NP_ERR_AGAIN;
	}
	x->stale = 1;
	x->stale_off_ms = np_box_clock_off_ms(m, now);
	snprintf(x->stale_type, sizeof(x->stale_type), "%s", m->type);
	x->stale_why[0] = '\0';
	if (json_object_object_get_ex(m->body, "reason", &v) &&
	    json_object_is_type(v, json_type_string)) {
		snprintf(x->stale_why, sizeof(x->stale_why), "%s",
		    json_object_get_string(v));
	}
	np_box_msg_free(m);
	return NP_ERR_STALE;
}

void
np_sctx_stale_msg(const struct np_sctx *x, const char *peer, char *buf,
    size_t len)
{
	char off[48], said[320] = "";

	np_box_off_text(x->stale_off_ms, off, sizeof(off));
	if (x->stale_why[0] != '\0') {
		snprintf(said, sizeof(said), " (%s said: %s)", peer,
		    x->stale_why);
	}
	snprintf(buf, len, "%s's clock is %s ours: its %s is outside the "
	    "window for message timestamps (%d s) and was not used; check NTP "
	    "on both%s", peer, off, x->stale_type, NP_BOX_SKEW_MS / 1000,
	    said);
}

/*
 * One queued box: NP_ERR_AGAIN to keep waiting, else match's verdict.
 * It came on our tag, so it is for this process or for nobody: acked in
 * every case (a box that fails to open, or answers something else, is
 * dropped).
 */
static int
sctx_offer(struct np_sctx *x, const struct np_push *p, const char *from,
    const uint8_t from_pk[NP_PK_LEN], np_sctx_match_fn *match, void *arg)
{
	struct np_box_msg *m = NULL;
	int r;

	if (strcmp(p->from, from) != 0) {
		np_debug("dropped box %s from %s (waiting for %s)", p->mid,
		    p->from, from);
		r = NP_ERR_AGAIN;
	} else if ((r = np_box_open(x->key, from_pk, p->from, p->mid,
	    p->box, p->len, np_now_real_ms(), x->rc, &m)) != NP_OK) {
		np_debug_r(r, "dropped box %s from %s", p->mid, p->from);
		r = r == NP_ERR_STALE ? sctx_stale(x, p, from_pk) :
		    NP_ERR_AGAIN;
	} else {
		r = match(x, p, m, arg);
	}
	(void)np_cpc_ack(x->c, p->seq);
	np_box_msg_free(m);
	return r;
}

int
np_sctx_wait(struct np_sctx *x, const char *from,
    const uint8_t from_pk[NP_PK_LEN], np_sctx_match_fn *match, void *arg,
    struct np_cpc_waiter *sendw, int *send_failed)
{
	struct np_push *p;
	int r, ms;

	*send_failed = 0;
	for (;;) {
		while ((p = sctx_pop(x)) != NULL) {
			r = sctx_offer(x, p, from, from_pk, match, arg);
			free(p);
			if (r != NP_ERR_AGAIN) {
				return r;
			}
		}
		if (sendw != NULL && sendw->done && sendw->r != NP_OK) {
			*send_failed = 1;
			return sendw->r;
		}
		if (!np_cpc_is_up(x->c)) {
			return NP_ERR_CLOSED;
		}
		if ((ms = np_sctx_left_ms(x)) == 0) {
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(x->cli->ev, ms > 250 ? 250 : ms)) !=
		    NP_OK) {
			return r;
		}
	}
}

int
np_sctx_wait_multi(struct np_sctx *x, const char *const *from,
    const uint8_t (*pks)[NP_PK_LEN], size_t n, np_sctx_match_fn *match,
    void *arg)
{
	struct np_push *p;
	size_t i;
	int r, ms;

	for (;;) {
		while ((p = sctx_pop(x)) != NULL) {
			for (i = 0; i < n && strcmp(p->from, from[i]) != 0;
			    i++) {
				continue;
			}
			r = i < n ? sctx_offer(x, p, from[i], pks[i], match,
			    arg) : sctx_offer(x, p, "", NULL, match, arg);
			free(p);
			if (r != NP_ERR_AGAIN) {
				return r;
			}
		}
		if (!np_cpc_is_up(x->c)) {
			return NP_ERR_CLOSED;
		}
		if ((ms = np_sctx_left_ms(x)) == 0) {
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(x->cli->ev, ms > 250 ? 250 : ms)) !=
		    NP_OK) {
			return r;
		}
	}
}

/* ---------------- after the set-up: a late refusal ---------------- */

/* Only an np.session.err of the device for this session's sid. */
static int
watch_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	if (strcmp(m->type, "np.session.err") != 0 ||
	    strcmp(m->session, x->w_sid) != 0 ||
	    np_session_err_parse(m->body, x->w_sid, x->dev_why,
	    sizeof(x->dev_why)) != NP_OK) {
		return NP_ERR_AGAIN;
	}
	return NP_ERR_AUTH;
}

/* Offer every queued box to watch_match; the first refusal ends it. */
static void
watch_drain(struct np_sctx *x)
{
	struct np_push *p;
	int r;

	while (x->watching && !x->dev_failed && (p = sctx_pop(x)) != NULL) {
		r = sctx_offer(x, p, x->w_from, x->w_pk, watch_match, NULL);
		free(p);
		if (r == NP_ERR_AUTH) {
			x->dev_failed = 1;
			if (x->w_cb != NULL) {
				x->w_cb(x->w_arg);
			}
		}
	}
}

static void
watch_push(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	sctx_push(c, m, arg);
	watch_drain(arg);
}

/* From now on a box on our tag is looked at as it comes. */
static void
watch_start(struct np_sctx *x, const char *from,
    const uint8_t pk[NP_PK_LEN], const char *sid)
{
	snprintf(x->w_from, sizeof(x->w_from), "%s", from);
	memcpy(x->w_pk, pk, NP_PK_LEN);
	snprintf(x->w_sid, sizeof(x->w_sid), "%s", sid);
	x->watching = 1;
	np_cpc_set_msg_cb(x->c, watch_push, x);
	watch_drain(x);
}

const char *
np_session_failed(const struct np_session *s)
{
	return s->watch != NULL && s->watch->dev_failed ? s->watch->dev_why :
	    NULL;
}

void
np_session_on_fail(struct np_session *s, void (*cb)(void *), void *arg)
{
	if (s->watch != NULL) {
		s->watch->w_cb = cb;
		s->watch->w_arg = arg;
	}
}

void
np_session_fail_msg(const struct np_session *s, const char *host)
{
	const char *why = np_session_failed(s);

	cli_err("%s: the device could not complete the session: %s", host,
	    why != NULL ? why : "(no reason given)");
}

void
np_session_unwatch(struct np_session *s)
{
	if (s->watch != NULL) {
		np_ev_timer_del(s->watch->cli->ev, s->watch_timer);
		s->watch_timer = 0;
		np_sctx_free(s->watch);
		s->watch = NULL;
	}
}

void
np_session_close(struct np_session *s)
{
	np_srec_free(s->seal);
	np_srec_free(s->open);
	s->seal = s->open = NULL;
	np_session_unwatch(s);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
}

static void watch_arm(struct np_session *s);

/*
 * Let go once the device has sent a byte (sshd's banner: it reached its
 * sshd), at watch_end, or when the connection dropped; a refusal that
 * came is kept for the caller.
 */
static void
watch_tick(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_session *s = arg;

	s->watch_timer = 0;
	if (s->watch == NULL || s->watch->dev_failed) {
		return;
	}
	if ((s->relay != NULL && np_relay_stats(s->relay)->b_to_a > 0) ||
	    np_now_mono_ms() >= s->watch_end || !np_cpc_is_up(s->watch->c)) {
		cli_step(s->watch->cli, "control plane closed (%s)",
		    s->relay != NULL && np_relay_stats(s->relay)->b_to_a > 0 ?
		    "the device's side answered" : "watch over");
		np_session_unwatch(s);
		return;
	}
	watch_arm(s);
}

/* While relaying: look every NP_SESSION_WATCH_POLL_MS; else at the end. */
static void
watch_arm(struct np_session *s)
{
	uint64_t now = np_now_mono_ms(), ms;

	ms = s->watch_end > now ? s->watch_end - now : 0;
	if (s->relay != NULL && ms > NP_SESSION_WATCH_POLL_MS) {
		ms = NP_SESSION_WATCH_POLL_MS;
	}
	np_ev_timer_del(s->watch->cli->ev, s->watch_timer);
	s->watch_timer = np_ev_timer_add(s->watch->cli->ev, ms, watch_tick, s);
}

void
np_session_watch_relay(struct np_session *s, struct np_relay *relay)
{
	s->relay = relay;
	if (s->watch != NULL && !s->watch->dev_failed) {
		watch_arm(s);
	}
}

/* ---------------- the rendezvous ---------------- */

struct srd_wait {
	struct np_sr_session *s;
	char why[256];
	int refused;
};

static int
srd_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	struct srd_wait *sw = arg;
	struct json_object *v;

	if (strcmp(m->type, "srd.error") == 0) {
		snprintf(sw->why, sizeof(sw->why), "%s",
		    json_object_object_get_ex(m->body, "reason", &v) &&
		    json_object_is_type(v, json_type_string) ?
		    json_object_get_string(v) : "(no reason given)");
		sw->refused = 1;
		return NP_ERR_AUTH;
	}
	if (strcmp(m->type, "srd.session") != 0) {
		return NP_ERR_AGAIN;
	}
	if (np_sr_session_from_json(m->body, sw->s) != NP_OK ||
	    strcmp(m->session, sw->s->sid) != 0) {
		snprintf(sw->why, sizeof(sw->why), "malformed srd.session");
		return NP_ERR_PROTO;
	}
	if (sw->s->deadline_ms <= np_now_real_ms() + 1000) {
		sodium_memzero(sw->s, sizeof(*sw->s));
		return NP_ERR_AGAIN; /* too late to use: wait for another */
	}
	return NP_OK;
}

static void
srd_fail(struct np_sctx *x, const struct np_target *t, const char *sr,
    int r, int send_failed, const struct srd_wait *sw,
    const struct np_cpc_waiter *w)
{
	if (send_failed) {
		cli_err("%s: cannot send to rendezvous %s: %s%s%s%s", t->host,
		    sr, np_strerror(r), w->detail[0] != '\0' ? " (" : "",
		    w->detail, w->detail[0] != '\0' ? ")" : "");
	} else if (r == NP_ERR_AUTH && sw->refused) {
		cli_err("rendezvous %s refused: %.200s", sr, sw->why);
	} else if (r == NP_ERR_TIMEOUT) {
		cli_err("%s: no answer from rendezvous %s within %ld s (is "
		    "np-srd running, and does its Allow line name %s?)",
		    t->host, sr, x->timeout_s, np_key_name(x->key));
	} else if (r == NP_ERR_CLOSED) {
		cli_err("%s: control-plane connection lost while waiting "
		    "for rendezvous %s", t->host, sr);
	} else {
		cli_err("%s: rendezvous %s: %s%s%s", t->host, sr,
		    np_strerror(r), sw->why[0] != '\0' ? ": " : "", sw->why);
	}
}

struct json_object *
np_sctx_rt_body(const char *tag)
{
	struct json_object *o = json_object_new_object(), *v;

	if (o == NULL || (v = json_object_new_string(tag)) == NULL) {
		json_object_put(o);
		return NULL;
	}
	if (json_object_object_add(o, "rt", v) != 0) {
		json_object_put(v);
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
srd_open(struct np_sctx *x, const struct np_target *t, const char *sr,
    const uint8_t sr_pk[NP_PK_LEN], struct np_sr_session *s, int quiet)
{
	struct json_object *body;
	struct np_cpc_waiter w;
	struct srd_wait sw;
	uint32_t rid = 0;
	int r, send_failed = 0;

	memset(&w, 0, sizeof(w));
	memset(&sw, 0, sizeof(sw));
	sw.s = s;
	if ((body = np_sctx_rt_body(x->tag)) == NULL) {
		cli_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_sctx_send(x, sr, sr_pk, "srd.open", NULL, body, &w,
	    &rid)) != NP_OK) {
		send_failed = 1;
	} else {
		r = np_sctx_wait(x, sr, sr_pk, srd_match, &sw, &w,
		    &send_failed);
	}
	if (r != NP_OK && !quiet) {
		srd_fail(x, t, sr, r, send_failed, &sw, &w);
	}
	if (!w.done && rid != 0) {
		np_cpc_cancel(x->c, rid);
	}
	np_cpc_waiter_clear(&w);
	json_object_put(body);
	return r;
}

int
np_session_srd_open(struct np_sctx *x, const struct np_target *t,
    const char *sr, const uint8_t sr_pk[NP_PK_LEN], struct np_sr_session *s)
{
	return srd_open(x, t, sr, sr_pk, s, 0);
}

/* ---------------- the device ---------------- */

struct dev_wait {
	const char *sid;
	int tunnel;
	struct np_session_ok *ok;
	char why[256];
	int refused;
};

static int
dev_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	struct dev_wait *dw = arg;
	struct json_object *v;
	int ok = strcmp(m->type, "np.session.ok") == 0;

	if (!ok && strcmp(m->type, "np.session.err") != 0) {
		return NP_ERR_AGAIN;
	}
	if (!ok) {
		if (np_session_err_parse(m->body, dw->sid, dw->why,
		    sizeof(dw->why)) != NP_OK) {
			return NP_ERR_AGAIN; /* another session's answer */
		}
		dw->refused = 1;
		return NP_ERR_AUTH;
	}
	if (!json_object_object_get_ex(m->body, "sid", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), dw->sid) != 0) {
		return NP_ERR_AGAIN; /* another session's answer */
	}
	if ((dw->tunnel ? np_session_ok_parse_tunnel(m->body, dw->sid,
	    dw->ok) : np_session_ok_parse(m->body, dw->sid, dw->ok)) !=
	    NP_OK) {
		snprintf(dw->why, sizeof(dw->why), "malformed np.session.ok");
		return NP_ERR_PROTO;
	}
	return NP_OK;
}

static int
json_put(struct json_object *o, const char *k, struct json_object *v)
{
	if (v == NULL || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

/* The ciphers we offer, preferred first: RelayCipher, or both. */
static size_t
cipher_offer(const struct np_cli *cli, int out[2])
{
	const char *rc = cli->cfg.relay_cipher;
	int c = rc != NULL ? np_srec_cipher_parse(rc) : NP_SREC_NONE;

	if (c != NP_SREC_NONE) {
		out[0] = c;
		return 1;
	}
	out[0] = np_srec_cipher_pref();
	out[1] = out[0] == NP_SREC_AES256GCM ? NP_SREC_CHACHA20POLY1305 :
	    NP_SREC_AES256GCM;
	return 2;
}

static int
req_enc(const struct np_cli *cli, struct json_object *o)
{
	struct json_object *a;
	int c[2];
	size_t i, n = cipher_offer(cli, c);

	if ((a = json_object_new_array()) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < n; i++) {
		if (json_object_array_add(a,
		    json_object_new_string(np_srec_cipher_name(c[i]))) != 0) {
			json_object_put(a);
			return NP_ERR_ALLOC;
		}
	}
	return json_put(o, "enc", a);
}

/* The members that differ: ssh (user, port, pubkey) or a tunnel. */
static int
req_what(const struct np_cli *cli, const struct np_want *w,
    const char *pubkey, struct json_object *o)
{
	if (w->enc && req_enc(cli, o) != NP_OK) {
		return NP_ERR_ALLOC;
	}
	if (w->enc && !w->tunnel && w->handoff != 0 && json_put(o,
	    "enc_handoff", json_object_new_int64(w->handoff)) != NP_OK) {
		return NP_ERR_ALLOC;
	}
	if (w->tunnel) {
		if (json_put(o, "mode", json_object_new_string("tunnel")) !=
		    NP_OK ||
		    json_put(o, "host", json_object_new_string(w->host)) !=
		    NP_OK ||
		    json_put(o, "port", json_object_new_int(w->port)) !=
		    NP_OK) {
			return NP_ERR_ALLOC;
		}
		return NP_OK;
	}
	if (json_put(o, "user", json_object_new_string(w->user)) != NP_OK ||
	    json_put(o, "port", json_object_new_int(w->port)) != NP_OK ||
	    json_put(o, "pubkey", json_object_new_string(pubkey)) != NP_OK) {
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

/* The np.session.req body; holds the device token (wiped on free). */
static int
req_body(const struct np_cli *cli, const struct np_target *t,
    const struct np_want *w, const struct np_sr_session *s,
    const char *pubkey, const char *tag, const uint8_t kx[32],
    struct json_object **out)
{
	struct json_object *o = NULL, *all = NULL, *dev = NULL;
	char b64[NP_PK_B64_MAX];
	int r = NP_ERR_ALLOC;

	*out = NULL;
	if ((r = np_sr_session_to_json(s, &all)) != NP_OK) {
		return r;
	}
	np_json_wipe_on_free(all);
	if (!json_object_object_get_ex(all, "device", &dev) ||
	    (r = np_b64_encode(kx, 32, b64, sizeof(b64))) != NP_OK) {
		r = r != NP_OK ? r : NP_ERR_INTERNAL;
		goto out;
	}
	r = NP_ERR_ALLOC;
	if ((o = json_object_new_object()) == NULL ||
	    json_put(o, "sid", json_object_new_string(s->sid)) != NP_OK ||
	    json_put(o, "device", json_object_new_string(t->device)) !=
	    NP_OK ||
	    req_what(cli, w, pubkey, o) != NP_OK ||
	    json_put(o, "sr", json_object_get(dev)) != NP_OK ||
	    json_put(o, "kx", json_object_new_string(b64)) != NP_OK ||
	    json_put(o, "rt", json_object_new_string(tag)) != NP_OK) {
		goto out;
	}
	*out = o;
	o = NULL;
	r = NP_OK;
 out:
	json_object_put(o);
	json_object_put(all);
	return r;
}

/*
 * The device's choice of cipher must be one we offered (or none when we
 * asked for none); then the two direction keys from the kx exchange.
 */
static int
relay_keys(struct np_sctx *x, const struct np_target *t,
    const struct np_want *w, const struct np_session_ok *ok,
    const uint8_t *kx_pk, const uint8_t *kx_sk, struct np_session *out)
{
	int c[2], r;
	size_t n = cipher_offer(x->cli, c);
	uint8_t *keys;

	if (!w->enc) {
		if (ok->cipher != NP_SREC_NONE) {
			cli_err("%s: the device encrypts the relay although "
			    "we did not ask it to", t->host);
			return NP_ERR_PROTO;
		}
		return NP_OK;
	}
	if (ok->cipher == NP_SREC_NONE) {
		cli_err("%s: the device does not encrypt the relay (an "
		    "np-deviced without relay encryption?)%s", t->host,
		    w->tunnel ? "" : "; 'RelayEncryption no' lets ssh go "
		    "without it");
		return NP_ERR_PROTO;
	}
	if (ok->cipher != c[0] && (n < 2 || ok->cipher != c[1])) {
		cli_err("%s: the device chose a relay cipher we did not "
		    "offer", t->host);
		return NP_ERR_PROTO;
	}
	/* A handoff only where we asked for it, at our point; a device
	 * that answers none keeps the records all the way. */
	if (ok->handoff != 0 && (w->tunnel || ok->handoff != w->handoff)) {
		cli_err("%s: the device answered a relay handoff we did not "
		    "ask for", t->host);
		return NP_ERR_PROTO;
	}
	if ((keys = sodium_malloc(2 * NP_SREC_KEY_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	/* keys: rx (device -> us), then tx (us -> device). */
	if ((r = np_srec_keys_client(keys, keys + NP_SREC_KEY_LEN, kx_pk,
	    kx_sk, ok->kx)) != NP_OK) {
		cli_err("%s: the device's key exchange value is unusable",
		    t->host);
	} else if ((r = np_srec_new(ok->cipher, keys + NP_SREC_KEY_LEN, 1,
	    &out->seal)) != NP_OK ||
	    (r = np_srec_new(ok->cipher, keys, 0, &out->open)) != NP_OK) {
		cli_err("%s: cannot set up %s: %s", t->host,
		    np_srec_cipher_name(ok->cipher), np_strerror(r));
	} else {
		out->cipher = ok->cipher;
		out->handoff = ok->handoff;
	}
	sodium_free(keys); /* wipes */
	return r;
}

static void
dev_fail(struct np_sctx *x, const struct np_target *t, int r,
    int send_failed, const struct dev_wait *dw,
    const struct np_cpc_waiter *w)
{
	char msg[512];

	if (send_failed) {
		cli_err("%s: cannot send to %s: %s%s%s%s", t->host, t->ident,
		    np_strerror(r), w->detail[0] != '\0' ? " (" : "",
		    w->detail, w->detail[0] != '\0' ? ")" : "");
	} else if (r == NP_ERR_AUTH && dw->refused) {
		cli_err("%s: device refused: %.200s", t->host, dw->why);
	} else if (r == NP_ERR_STALE && x->stale) {
		np_sctx_stale_msg(x, t->ident, msg, sizeof(msg));
		cli_err("%s: %s", t->host, msg);
	} else if (r == NP_ERR_TIMEOUT) {
		cli_err("%s: no answer from %s within %ld s (is np-deviced "
		    "running?)", t->host, t->ident, x->timeout_s);
	} else if (r == NP_ERR_CLOSED) {
		cli_err("%s: control-plane connection lost while waiting "
		    "for %s", t->host, t->ident);
	} else {
		cli_err("%s: %s: %s%s%s", t->host, t->ident, np_strerror(r),
		    dw->why[0] != '\0' ? ": " : "", dw->why);
	}
}

static int
dev_request(struct np_sctx *x, const struct np_target *t,
    const struct np_want *w, const struct np_sr_session *s,
    const char *pubkey, const uint8_t dev_pk[NP_PK_LEN],
    struct np_session_ok *ok, struct np_session *out)
{
	struct json_object *body = NULL;
	struct np_cpc_waiter cw;
	struct dev_wait dw;
	uint8_t kx_pk[crypto_kx_PUBLICKEYBYTES], *kx_sk;
	uint32_t rid = 0;
	int r, send_failed = 0;

	memset(&cw, 0, sizeof(cw));
	memset(&dw, 0, sizeof(dw));
	dw.sid = s->sid;
	dw.tunnel = w->tunnel;
	dw.ok = ok;
	if ((kx_sk = sodium_malloc(crypto_kx_SECRETKEYBYTES)) == NULL) {
		cli_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if (crypto_kx_keypair(kx_pk, kx_sk) != 0 ||
	    (r = req_body(x->cli, t, w, s, pubkey, x->tag, kx_pk,
	    &body)) != NP_OK) {
		cli_err("%s: cannot build the session request", t->host);
		r = NP_ERR_INTERNAL;
		goto out;
	}
	if ((r = np_sctx_send(x, t->ident, dev_pk, "np.session.req", s->sid,
	    body, &cw, &rid)) != NP_OK) {
		send_failed = 1;
	} else {
		x->want_session = s->sid;
		r = np_sctx_wait(x, t->ident, dev_pk, dev_match, &dw, &cw,
		    &send_failed);
		x->want_session = NULL;
	}
	if (r != NP_OK) {
		dev_fail(x, t, r, send_failed, &dw, &cw);
	} else {
		r = relay_keys(x, t, w, ok, kx_pk, kx_sk, out);
	}
 out:
	if (!cw.done && rid != 0) {
		np_cpc_cancel(x->c, rid);
	}
	np_cpc_waiter_clear(&cw);
	json_object_put(body);
	sodium_free(kx_sk);
	return r;
}

/* ---------------- the whole set-up ---------------- */

static int
write_known_hosts(struct np_sctx *x, const struct np_target *t,
    uint16_t kh_port, const struct np_session_ok *ok,
    struct np_session *out)
{
	struct np_cli *cli = x->cli;
	int r;

	if ((r = np_kh_name(t->host, kh_port, out->kh_name,
	    sizeof(out->kh_name))) != NP_OK ||
	    (r = np_kh_update(cli->cfg.known_hosts, out->kh_name,
	    ok->hostkeys, ok->nhostkeys)) != NP_OK) {
		cli_err("%s: cannot update: %s", cli->cfg.known_hosts,
		    np_strerror(r));
		return r;
	}
	out->expires = ok->expires;
	return NP_OK;
}

/*
 * Join the session at the rendezvous.  bound_ms > 0: another rendezvous
 * could be asked, so the join gets at most bound_ms, and a failure other
 * than a refusal is only described in msg (the caller says it).
 */
static int
sr_join(struct np_sctx *x, const struct np_target *t,
    const struct np_sr_session *s, int *fd, int bound_ms, char *msg,
    size_t msglen)
{
	char why[256];
	int r, ms = np_sctx_left_ms(x);

	msg[0] = '\0';
	if (ms == 0) {
		cli_err("%s: session set-up took longer than %ld s", t->host,
		    x->timeout_s);
		return NP_ERR_TIMEOUT;
	}
	if (bound_ms > 0 && bound_ms < ms) {
		ms = bound_ms;
	}
	r = np_sr_connect(&s->side[NP_SR_CLIENT], s->sid, NP_SR_CLIENT, ms,
	    fd, why, sizeof(why));
	if (r == NP_ERR_AUTH) {
		cli_err("%s: rendezvous refused the connection: %s", t->host,
		    why);
	} else if (r != NP_OK) {
		snprintf(msg, msglen, "cannot join the rendezvous at %s port "
		    "%u: %s%s%s", s->side[NP_SR_CLIENT].host,
		    (unsigned)s->side[NP_SR_CLIENT].port, np_strerror(r),
		    why[0] != '\0' ? ": " : "", why);
		if (bound_ms <= 0) {
			cli_err("%s: %s", t->host, msg);
		}
	}
	return r;
}

/* Say why the key file cannot be used. */
static void
keyfile_err(const struct np_cli *cli, const char *user,
    const struct np_target *t, const char *path, int r)
{
	const char *dir = cli->cfg.key_dir;
	struct stat st;

	if (r == NP_ERR_PERM && (lstat(dir, &st) != 0 ||
	    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())) {
		cli_err("%s: KeyDir %s is not a directory of yours", t->host,
		    dir);
	} else if (r == NP_ERR_PERM) {
		cli_err("%s: refusing the session key file %s: not a regular "
		    "file of yours with mode 0600 (remove it and np makes a "
		    "new one)", t->host, path);
	} else if (r == NP_ERR_INVALID && path[0] != '\0') {
		cli_err("%s: %s is not an unencrypted OpenSSH Ed25519 private "
		    "key (remove it and np makes a new one)", t->host, path);
	} else {
		cli_err("%s: session key %s/%s@%s: %s", t->host, dir, user,
		    t->host, np_strerror(r));
	}
}

/* The key for USER@HOST (made when missing): its public line in pub. */
static int
session_key(struct np_cli *cli, const struct np_target *t,
    const char *user, struct np_session *out, char *pub, size_t publen)
{
	int r, created = 0;

	if (cli->cfg.key_dir == NULL || cli->cfg.known_hosts == NULL) {
		cli_err("no KeyDir / KnownHosts (HOME is not set)");
		return NP_ERR_CONF;
	}
	out->keyfile[0] = '\0';
	if ((r = np_keyfile_publine(cli->cfg.key_dir, user, t->host,
	    out->keyfile, sizeof(out->keyfile), pub, publen, &created)) !=
	    NP_OK) {
		keyfile_err(cli, user, t, out->keyfile, r);
		return r;
	}
	cli_step(cli, "%s session key %s", created ? "made" : "using",
	    out->keyfile);
	return NP_OK;
}

int
np_session_setup(struct np_cli *cli, const struct np_target *t,
    const char *user, uint16_t port, uint16_t kh_port,
    struct np_session *out)
{
	struct np_want w;

	memset(&w, 0, sizeof(w));
	w.user = user;
	w.port = port;
	w.kh_port = kh_port;
	w.enc = cli->cfg.relay_encryption;
	w.handoff = cli->cfg.relay_encryption && cli->cfg.relay_handoff ?
	    NP_SREC_HANDOFF_BYTES : 0;
	return np_session_open(cli, t, &w, out);
}

static void
answered_step(struct np_cli *cli, const struct np_want *w,
    const struct np_session_ok *ok)
{
	const char *enc = np_srec_cipher_name(ok->cipher);

	if (w->tunnel) {
		cli_step(cli, "device answered: it connects to %s port %u, "
		    "relay encryption %s", w->host, (unsigned)w->port, enc);
	} else {
		cli_step(cli, "device answered: key authorized for %s until "
		    "%lld, %zu host key(s), relay encryption %s%s", w->user,
		    (long long)ok->expires, ok->nhostkeys, enc,
		    ok->handoff != 0 ? " over ssh's handshake" : "");
	}
}

/* ---------------- several rendezvous ---------------- */

/*
 * The ranking to use: the cache's for this device when it is fresh (the
 * device and the first choice looked up), else measured now (the device
 * and every rendezvous looked up at once; the device asked for its own
 * round trips) and cached.  known[i]: pks[i] holds the key of
 * p->e[i].id.  cpath (PATH_MAX) gets the cache's path ("": none).
 */
static int
sr_ranking_do(struct np_sctx *x, const struct np_target *t,
    uint8_t dev_pk[NP_PK_LEN], struct np_srpick *p,
    uint8_t (*pks)[NP_PK_LEN], int *known, char *cpath)
{
	struct np_cli *cli = x->cli;
	const struct np_strlist *l = &cli->cfg.rendezvous_list;
	const char *ids[1 + NP_SRPICK_MAX];
	uint8_t got[1 + NP_SRPICK_MAX][NP_PK_LEN];
	int cached = 0, r, in[NP_SRPICK_MAX];
	struct np_srpick_dev dev;
	int64_t now = np_now_real_ms();
	uint64_t t0;
	char sum[512];
	size_t i, j;

	if (cli->cfg.rendezvous_cache > 0 && np_srcache_path(&cli->cfg,
	    t->ident, cpath, PATH_MAX) == NP_OK &&
	    np_srcache_load(cpath, l, now, cli->cfg.rendezvous_cache, p) ==
	    NP_OK) {
		cached = 1;
	}
	ids[0] = t->ident;
	if (cached) {
		ids[1] = p->e[0].id;
		if (np_sctx_lookup(x, ids, 2, got) != NP_OK) {
			/* the device alone; the loop tries the first again */
			if ((r = np_sctx_lookup(x, ids, 1, got)) != NP_OK) {
				return r;
			}
			memcpy(dev_pk, got[0], NP_PK_LEN);
			return NP_OK;
		}
		memcpy(dev_pk, got[0], NP_PK_LEN);
		memcpy(pks[0], got[1], NP_PK_LEN);
		known[0] = 1;
		cli_step(cli, "looked up %s and %s; rendezvous %s, the cached "
		    "choice (measured %lld s ago: %s)", ids[0], ids[1],
		    ids[1], (long long)((now > p->when_ms ? now - p->when_ms :
		    0) / 1000), (np_srpick_summary(p, sum, sizeof(sum)), sum));
		return NP_OK;
	}
	for (i = 0; i < l->n; i++) {
		ids[1 + i] = l->v[i];
		in[i] = 1;
	}
	if (np_sctx_lookup(x, ids, 1 + l->n, got) != NP_OK) {
		/* Each on its own: one that cannot be looked up (its error
		 * printed) is not measured and comes last. */
		if ((r = np_sctx_lookup(x, ids, 1, got)) != NP_OK) {
			return r;
		}
		for (i = 0; i < l->n; i++) {
			in[i] = np_sctx_lookup(x, &ids[1 + i], 1,
			    &got[1 + i]) == NP_OK;
		}
	}
	memcpy(dev_pk, got[0], NP_PK_LEN);
	cli_step(cli, "looked up %s and %zu rendezvous", ids[0], l->n);
	t0 = np_now_mono_ms();
	memset(&dev, 0, sizeof(dev));
	dev.t = t;
	dev.pk = got[0];
	dev.wait_ms = (uint64_t)cli->cfg.rendezvous_timeout * 1000;
	if ((r = np_srpick_measure(x, l, (const uint8_t (*)[NP_PK_LEN])(got +
	    1), in, &dev, p)) != NP_OK) {
		cli_err("%s: control-plane connection lost while probing the "
		    "rendezvous", t->host);
		return r;
	}
	np_srpick_summary(p, sum, sizeof(sum));
	cli_step(cli, "probed %zu rendezvous in %llu ms: %s; chose %s%s", l->n,
	    (unsigned long long)(np_now_mono_ms() - t0), sum, p->e[0].id,
	    dev.r == NP_OK ? "" : " (the device did not report its own)");
	for (i = 0; i < p->n; i++) {
		j = p->e[i].order;
		memcpy(pks[i], got[1 + j], NP_PK_LEN);
		known[i] = in[j];
		if (p->e[i].rtt_ms < 0) {
			cli_step(cli, "rendezvous %s: %s", p->e[i].id,
			    p->e[i].why);
		}
	}
	if (cli->cfg.rendezvous_cache > 0 && cpath[0] != '\0' &&
	    (r = np_srcache_save(cpath, p)) != NP_OK) {
		cli_step(cli, "cannot write %s: %s", cpath, np_strerror(r));
	}
	return NP_OK;
}

/*
 * The device's cache is missing or old: only one np measures at a time
 * (np tunnel's children, parallel ssh to one device).  The others wait
 * on cache.lock, for at most about one measurement, then use what it
 * wrote; the fd of the lock, to hold until the cache is written, or -1
 * (none to be had: we measure anyway).
 */
static int
sr_cache_lock(struct np_sctx *x, const struct np_target *t,
    const char *cpath)
{
	struct np_cli *cli = x->cli;
	uint64_t end = np_now_mono_ms() +
	    (2 * (uint64_t)cli->cfg.rendezvous_timeout + 2) * 1000;
	int fd, waited = 0;

	(void)np_mkdir_parent(cpath); /* the first time: as the save would */
	for (;;) {
		if ((fd = lock_file(cpath, 1)) >= 0 ||
		    (errno != EWOULDBLOCK && errno != EAGAIN)) {
			break;
		}
		if (!waited) {
			cli_step(cli, "another np is measuring the rendezvous "
			    "for %s; waiting for its result", t->ident);
			waited = 1;
		}
		if (np_now_mono_ms() >= end || np_sctx_left_ms(x) == 0) {
			cli_step(cli, "still measuring; measuring ourselves");
			break;
		}
		if (np_ev_run_once(cli->ev, 50) != NP_OK) {
			break;
		}
	}
	return fd;
}

/* sr_ranking_do, with one measurement at a time per device. */
static int
sr_ranking(struct np_sctx *x, const struct np_target *t,
    uint8_t dev_pk[NP_PK_LEN], struct np_srpick *p,
    uint8_t (*pks)[NP_PK_LEN], int *known, char *cpath)
{
	const struct np_config *cfg = &x->cli->cfg;
	int fd = -1, r;

	if (cfg->rendezvous_cache > 0 && np_srcache_path(cfg, t->ident,
	    cpath, PATH_MAX) == NP_OK && np_srcache_load(cpath,
	    &cfg->rendezvous_list, np_now_real_ms(), cfg->rendezvous_cache,
	    p) != NP_OK) {
		fd = sr_cache_lock(x, t, cpath);
	}
	r = sr_ranking_do(x, t, dev_pk, p, pks, known, cpath);
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

/*
 * Several Rendezvous: what one set-up knows across its tries.  The
 * ranking is made once (cache or measurement); next is where the
 * following try starts, used the one that granted the session, and
 * failed the ones that did not answer or could not be joined, in that
 * order, which go to the end of the cached ranking.
 */
struct sr_pick {
	struct np_srpick p;
	uint8_t pks[NP_SRPICK_MAX][NP_PK_LEN];
	int known[NP_SRPICK_MAX];
	char cpath[PATH_MAX];
	size_t next, used, nfailed;
	char failed[NP_SRPICK_MAX][NP_IDENT_MAX + 1];
};

/* Note id as failed and write the cache with the failed ones last. */
static void
sr_pick_failed(struct np_sctx *x, struct sr_pick *st, const char *id)
{
	struct np_srpick c;
	size_t i;

	if (st->nfailed < NP_SRPICK_MAX) {
		snprintf(st->failed[st->nfailed], sizeof(st->failed[0]), "%s",
		    id);
		st->nfailed++;
	}
	if (x->cli->cfg.rendezvous_cache <= 0 || st->cpath[0] == '\0') {
		return;
	}
	c = st->p;
	for (i = 0; i < st->nfailed; i++) {
		np_srpick_demote(&c, st->failed[i]);
	}
	(void)np_srcache_save(st->cpath, &c);
}

/*
 * The best of the ranking from st->next on that grants a session within
 * RendezvousTimeout, else the next (the last gets what is left of the
 * set-up's time).
 */
static int
sr_pick_open(struct np_sctx *x, const struct np_target *t,
    uint8_t dev_pk[NP_PK_LEN], struct sr_pick *st, struct np_sr_session *s)
{
	struct np_cli *cli = x->cli;
	struct np_srpick *p = &st->p;
	int r;
	const char *ids[1];
	char id[NP_IDENT_MAX + 1];
	long to = cli->cfg.rendezvous_timeout;
	uint64_t keep = x->deadline, end;
	size_t i, n;

	if (st->next == 0 && (r = sr_ranking(x, t, dev_pk, p, st->pks,
	    st->known, st->cpath)) != NP_OK) {
		return r;
	}
	n = p->n;
	for (i = st->next, r = NP_ERR_INTERNAL; i < n; i++) {
		snprintf(id, sizeof(id), "%s", p->e[i].id);
		ids[0] = id;
		if (!st->known[i] && (r = np_sctx_lookup(x, ids, 1,
		    &st->pks[i])) != NP_OK) {
			/* its error printed */
		} else {
			st->known[i] = 1;
			end = np_now_mono_ms() + (uint64_t)to * 1000;
			x->deadline = i + 1 < n && end < keep ? end : keep;
			r = srd_open(x, t, id, st->pks[i], s, i + 1 < n);
			x->deadline = keep;
		}
		if (r == NP_OK || r == NP_ERR_CLOSED || i + 1 == n) {
			break;
		}
		cli_step(cli, "rendezvous %s: %s; trying %s", id,
		    r == NP_ERR_TIMEOUT ? "no answer in time" : np_strerror(r),
		    p->e[i + 1].id);
		sr_pick_failed(x, st, id);
	}
	st->next = i + 1;
	if (r == NP_OK) {
		st->used = i;
		cli_step(cli, "rendezvous %s granted the session", id);
	}
	return r;
}

int
np_session_open(struct np_cli *cli, const struct np_target *t,
    const struct np_want *w, struct np_session *out)
{
	struct np_sctx *x = NULL;
	struct np_sr_session s;
	struct np_session_ok ok;
	const char *ids[2];
	uint8_t pks[2][NP_PK_LEN];
	char pub[NP_SSHKEY_B64_LEN + sizeof(NP_SSHKEY_ED25519) + 1];
	long to = cli->cfg.session_timeout > 0 ? cli->cfg.session_timeout :
	    NP_CONFIG_DEFAULT_SESSION_TIMEOUT;
	int multi = cli->cfg.rendezvous_list.n > 1, more, r;
	struct sr_pick *st = NULL;
	char msg[1024];

	memset(out, 0, sizeof(*out));
	memset(&ok, 0, sizeof(ok));
	memset(&s, 0, sizeof(s));
	out->fd = -1;
	pub[0] = '\0';
	if (cli->cfg.rendezvous == NULL) {
		cli_err("no Rendezvous configured (set 'Rendezvous @sr' in "
		    "%s)", cli->config_path != NULL ? cli->config_path :
		    "the config");
		return NP_ERR_CONF;
	}
	if (!w->tunnel && (r = session_key(cli, t, w->user, out, pub,
	    sizeof(pub))) != NP_OK) {
		return r;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		cli_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_sctx_open(cli, np_now_mono_ms() + (uint64_t)to * 1000,
	    to, &x)) != NP_OK) {
		free(st);
		return r;
	}
 again:
	if (multi) {
		r = sr_pick_open(x, t, pks[0], st, &s);
	} else {
		ids[0] = t->ident;
		ids[1] = cli->cfg.rendezvous;
		if ((r = np_sctx_lookup(x, ids, 2, pks)) == NP_OK) {
			cli_step(cli, "looked up %s and %s", ids[0], ids[1]);
			r = srd_open(x, t, ids[1], pks[1], &s, 0);
		}
	}
	if (r != NP_OK) {
		goto out;
	}
	cli_step(cli, "relay granted: session %s", s.sid);
	if ((r = dev_request(x, t, w, &s, pub, pks[0], &ok, out)) != NP_OK) {
		goto out;
	}
	answered_step(cli, w, &ok);
	if (!w->tunnel && (r = write_known_hosts(x, t, w->kh_port, &ok,
	    out)) != NP_OK) {
		goto out;
	}
	out->expires = ok.expires;
	out->tunnel = w->tunnel;
	/*
	 * A rendezvous that granted the session but cannot be joined (its
	 * data port down or unreachable from here): with another one left,
	 * the whole exchange again through the next, within the set-up's
	 * time.  The device gives up its side of the first by itself.
	 */
	more = multi && st->next < st->p.n;
	if ((r = sr_join(x, t, &s, &out->fd, more ?
	    (int)(cli->cfg.rendezvous_timeout * 1000) : 0, msg,
	    sizeof(msg))) != NP_OK) {
		if (more && r != NP_ERR_AUTH && np_sctx_left_ms(x) > 0) {
			cli_step(cli, "rendezvous %s: %s; trying %s",
			    st->p.e[st->used].id, msg,
			    st->p.e[st->next].id);
			sr_pick_failed(x, st, st->p.e[st->used].id);
			np_srec_free(out->seal);
			np_srec_free(out->open);
			out->seal = out->open = NULL;
			np_session_ok_clear(&ok);
			memset(&ok, 0, sizeof(ok));
			sodium_memzero(&s, sizeof(s));
			goto again;
		}
		if (more && msg[0] != '\0') {
			cli_err("%s: %s", t->host, msg);
		}
		goto out;
	}
	/* It may still fail to reach its sshd: a refusal queued meanwhile
	 * is looked at now. */
	watch_start(x, t->ident, pks[0], s.sid);
	/*
	 * A rendezvous (or a network between) that vanishes without FIN
	 * must end the relay, not leave ssh waiting for ever: keepalive
	 * probes when idle, TCP_USER_TIMEOUT when data goes unacked.
	 */
	if (cli->cfg.keepalive > 0) {
		(void)np_sock_keepalive(out->fd, (int)cli->cfg.keepalive,
		    (int)(cli->cfg.keepalive * 3 * 1000));
	}
	cli_step(cli, "relay joined");
	out->watch = x;
	x = NULL;
	out->watch_end = np_now_mono_ms() + (uint64_t)to * 1000;
	if (np_session_failed(out) != NULL) {
		np_session_fail_msg(out, t->host);
		np_session_close(out);
		r = NP_ERR_AUTH;
		goto out;
	}
	watch_arm(out);
 out:
	if (r != NP_OK) {
		np_srec_free(out->seal);
		np_srec_free(out->open);
		out->seal = out->open = NULL;
	}
	np_session_ok_clear(&ok);
	sodium_memzero(&s, sizeof(s));
	np_sctx_free(x);
	free(st);
	return r;
}
