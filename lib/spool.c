#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "log.h"
#include "spool.h"
#include "sshkey.h"

#define SPOOL_MAGIC "noports-spool-v1\n"
#define SPOOL_SUFFIX ".key"
#define SPOOL_TMP_INFIX ".key.tmp."
#define SPOOL_TMP_AGE 300 /* a crash's leftover temp file, in seconds */
#define EXPIRY_LEN 15	  /* YYYYMMDDHHMMSSZ */
#define AK_PFX "expiry-time=\""
#define AK_MID "\",from=\"" NP_AUTHKEY_FROM "\" " NP_SSHKEY_ED25519 " "
#define AK_SFX " " NP_AUTHKEY_COMMENT_PFX
#define AK_LINE_LEN                                                            \
	(sizeof(AK_PFX) - 1 + EXPIRY_LEN + sizeof(AK_MID) - 1 +                \
	 NP_SSHKEY_B64_LEN + sizeof(AK_SFX) - 1 + NP_SID_HEX_LEN)
#define AK_LINE_MAX 256

static int
errno_np(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return NP_ERR_NOT_FOUND;
	case ELOOP:
	case EACCES:
	case EPERM:
		return NP_ERR_PERM;
	case EEXIST:
		return NP_ERR_EXISTS;
	default:
		return NP_ERR_SYSTEM;
	}
}

/* --- names --- */

int
np_user_valid(const char *s)
{
	size_t n, i;

	if (s == NULL) {
		return 0;
	}
	n = strnlen(s, NP_USER_MAX + 1);
	if (n == 0 || n > NP_USER_MAX) {
		return 0;
	}
	if (s[n - 1] == '$') {
		n--;
	}
	if (n == 0 || n > NP_USER_MAX - 1) {
		return 0;
	}
	if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '.' || s[i] == '-')) {
			return 0;
		}
	}
	return 1;
}

static int
hexlower_n(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

int
np_sid_valid(const char *s)
{
	return s != NULL && strnlen(s, NP_SID_HEX_LEN + 1) == NP_SID_HEX_LEN &&
	       hexlower_n(s, NP_SID_HEX_LEN);
}

static int
entry_valid(const struct np_spool_entry *e, int need_user)
{
	if (need_user && !np_user_valid(e->user)) {
		return 0;
	}
	return np_sid_valid(e->sid) && e->expires >= 0 &&
	       e->expires <= NP_SPOOL_TIME_MAX;
}

/* --- spool file text --- */

/* The line "KEY VALUE\n" at *pos: printable ASCII value, *pos moves on. */
static int
get_field(const uint8_t *d, size_t len, size_t *pos, const char *key,
	  const uint8_t **val, size_t *vlen)
{
	size_t klen = strlen(key), i = *pos, s;

	if (len - i < klen + 1 || memcmp(d + i, key, klen) != 0 ||
	    d[i + klen] != ' ') {
		return NP_ERR_INVALID;
	}
	s = i + klen + 1;
	for (i = s; i < len && d[i] != '\n'; i++) {
		if (d[i] < 0x20 || d[i] > 0x7e) {
			return NP_ERR_INVALID;
		}
	}
	if (i == len || i == s) {
		return NP_ERR_INVALID;
	}
	*val = d + s;
	*vlen = i - s;
	*pos = i + 1;
	return NP_OK;
}

/* Decimal, no sign, no leading zero, at most NP_SPOOL_TIME_MAX. */
static int
parse_time(const uint8_t *p, size_t n, int64_t *t)
{
	int64_t v = 0;
	size_t i;

	if (n == 0 || n > 12 || (p[0] == '0' && n > 1)) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			return NP_ERR_INVALID;
		}
		v = v * 10 + (p[i] - '0');
	}
	if (v > NP_SPOOL_TIME_MAX) {
		return NP_ERR_INVALID;
	}
	*t = v;
	return NP_OK;
}

static int
copy_text(char *dst, size_t dstlen, const uint8_t *p, size_t n)
{
	if (n >= dstlen) {
		return NP_ERR_INVALID;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	return NP_OK;
}

static int
parse_key_value(const uint8_t *p, size_t n, uint8_t pk[NP_SSHKEY_PK_LEN])
{
	const size_t tl = sizeof(NP_SSHKEY_ED25519 " ") - 1;

	if (n != tl + NP_SSHKEY_B64_LEN ||
	    memcmp(p, NP_SSHKEY_ED25519 " ", tl) != 0) {
		return NP_ERR_INVALID;
	}
	return np_sshkey_ed25519_from_b64((const char *)p + tl,
					  NP_SSHKEY_B64_LEN, pk);
}

int
np_spool_parse(const uint8_t *data, size_t len, struct np_spool_entry *e)
{
	struct np_spool_entry t;
	const size_t ml = sizeof(SPOOL_MAGIC) - 1;
	const uint8_t *v;
	size_t pos = ml, n;
	int r;

	memset(e, 0, sizeof(*e));
	memset(&t, 0, sizeof(t));
	if (len > NP_SPOOL_FILE_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (len < ml || memcmp(data, SPOOL_MAGIC, ml) != 0) {
		return NP_ERR_INVALID;
	}
	if ((r = get_field(data, len, &pos, "user", &v, &n)) != NP_OK ||
	    (r = copy_text(t.user, sizeof(t.user), v, n)) != NP_OK ||
	    (r = get_field(data, len, &pos, "expires", &v, &n)) != NP_OK ||
	    (r = parse_time(v, n, &t.expires)) != NP_OK ||
	    (r = get_field(data, len, &pos, "session", &v, &n)) != NP_OK ||
	    (r = copy_text(t.sid, sizeof(t.sid), v, n)) != NP_OK ||
	    (r = get_field(data, len, &pos, "key", &v, &n)) != NP_OK ||
	    (r = parse_key_value(v, n, t.pk)) != NP_OK) {
		return r;
	}
	if (pos != len || !entry_valid(&t, 1)) {
		return NP_ERR_INVALID;
	}
	*e = t;
	return NP_OK;
}

int
np_spool_format(const struct np_spool_entry *e, struct np_buf *b)
{
	char b64[NP_SSHKEY_B64_LEN + 1];
	int r;

	if (!entry_valid(e, 1)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_sshkey_ed25519_b64(e->pk, b64, sizeof(b64))) != NP_OK) {
		return r;
	}
	return np_buf_putf(b,
			   "%suser %s\nexpires %lld\nsession %s\n"
			   "key %s %s\n",
			   SPOOL_MAGIC, e->user, (long long)e->expires, e->sid,
			   NP_SSHKEY_ED25519, b64);
}

/* --- authorized_keys lines --- */

int
np_expiry_format(int64_t t, char *out, size_t outlen)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t < 0 || t > NP_SPOOL_TIME_MAX || outlen < EXPIRY_LEN + 1 ||
	    gmtime_r(&tt, &tm) == NULL) {
		return NP_ERR_INVALID;
	}
	snprintf(out, outlen, "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return NP_OK;
}

/* Reverse of np_expiry_format, exact (a round trip must give p back). */
static int
expiry_parse(const uint8_t *p, int64_t *t)
{
	char again[EXPIRY_LEN + 1];
	struct tm tm;
	int v[6], w[6] = {4, 2, 2, 2, 2, 2}, i, j, k = 0;
	time_t tt;

	if (p[EXPIRY_LEN - 1] != 'Z') {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < 6; i++) {
		for (v[i] = 0, j = 0; j < w[i]; j++, k++) {
			if (p[k] < '0' || p[k] > '9') {
				return NP_ERR_INVALID;
			}
			v[i] = v[i] * 10 + (p[k] - '0');
		}
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	if ((tt = timegm(&tm)) == (time_t)-1 ||
	    np_expiry_format((int64_t)tt, again, sizeof(again)) != NP_OK ||
	    memcmp(again, p, EXPIRY_LEN) != 0) {
		return NP_ERR_INVALID;
	}
	*t = (int64_t)tt;
	return NP_OK;
}

int
np_authkey_format(const struct np_spool_entry *e, struct np_buf *b)
{
	char b64[NP_SSHKEY_B64_LEN + 1], exp[EXPIRY_LEN + 1];
	int r;

	if (!entry_valid(e, 0)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_sshkey_ed25519_b64(e->pk, b64, sizeof(b64))) != NP_OK ||
	    (r = np_expiry_format(e->expires, exp, sizeof(exp))) != NP_OK) {
		return r;
	}
	return np_buf_putf(b, "%s%s%s%s%s%s", AK_PFX, exp, AK_MID, b64, AK_SFX,
			   e->sid);
}

int
np_authkey_parse(const uint8_t *line, size_t len, struct np_spool_entry *e)
{
	struct np_spool_entry t;
	size_t pos = 0;
	int r;

	memset(e, 0, sizeof(*e));
	memset(&t, 0, sizeof(t));
	if (len != AK_LINE_LEN ||
	    memcmp(line, AK_PFX, sizeof(AK_PFX) - 1) != 0) {
		return NP_ERR_INVALID;
	}
	pos = sizeof(AK_PFX) - 1;
	if ((r = expiry_parse(line + pos, &t.expires)) != NP_OK) {
		return r;
	}
	pos += EXPIRY_LEN;
	if (memcmp(line + pos, AK_MID, sizeof(AK_MID) - 1) != 0) {
		return NP_ERR_INVALID;
	}
	pos += sizeof(AK_MID) - 1;
	if ((r = np_sshkey_ed25519_from_b64(
		 (const char *)line + pos, NP_SSHKEY_B64_LEN, t.pk)) != NP_OK) {
		return r;
	}
	pos += NP_SSHKEY_B64_LEN;
	if (memcmp(line + pos, AK_SFX, sizeof(AK_SFX) - 1) != 0) {
		return NP_ERR_INVALID;
	}
	pos += sizeof(AK_SFX) - 1;
	memcpy(t.sid, line + pos, NP_SID_HEX_LEN);
	if (!np_sid_valid(t.sid)) {
		return NP_ERR_INVALID;
	}
	*e = t;
	return NP_OK;
}

/* --- authorized_keys content --- */

enum ak_sid_mode {
	AK_SID_EXISTS = 0, /* a marked line of session sid: NP_ERR_EXISTS */
	AK_SID_DROP = 1,   /* leave marked lines of session sid out */
};

/*
 * Copy d to out line by line, leaving out marked lines that expired and,
 * with AK_SID_DROP, those of session sid (sid may be NULL: none).
 */
static int
authkeys_filter(const uint8_t *d, size_t len, int64_t now, const char *sid,
		enum ak_sid_mode mode, struct np_buf *out, unsigned *removed)
{
	struct np_spool_entry e;
	const uint8_t *nl;
	size_t i = 0, end, clen;
	int r;

	while (i < len) {
		nl = memchr(d + i, '\n', len - i);
		end = nl != NULL ? (size_t)(nl - d) + 1 : len;
		clen = (nl != NULL ? (size_t)(nl - d) : len) - i;
		if (clen > 0 && d[i + clen - 1] == '\r') {
			clen--;
		}
		if (np_authkey_parse(d + i, clen, &e) == NP_OK) {
			if (sid != NULL && strcmp(e.sid, sid) == 0 &&
			    mode == AK_SID_EXISTS) {
				return NP_ERR_EXISTS;
			}
			if (e.expires <= now ||
			    (sid != NULL && strcmp(e.sid, sid) == 0)) {
				(*removed)++;
				i = end;
				continue;
			}
		}
		if ((r = np_buf_put(out, d + i, end - i)) != NP_OK) {
			return r;
		}
		i = end;
	}
	return NP_OK;
}

int
np_authkeys_sweep_buf(const uint8_t *d, size_t len, int64_t now,
		      struct np_buf *out, unsigned *removed)
{
	unsigned n = 0;
	int r;

	if (len > NP_AUTHKEYS_MAX) {
		return NP_ERR_TOO_BIG;
	}
	r = authkeys_filter(d, len, now, NULL, AK_SID_DROP, out, &n);
	if (removed != NULL) {
		*removed = n;
	}
	return r;
}

int
np_authkeys_remove_buf(const uint8_t *d, size_t len, const char *sid,
		       int64_t now, struct np_buf *out, unsigned *removed)
{
	unsigned n = 0;
	int r;

	if (len > NP_AUTHKEYS_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (!np_sid_valid(sid)) {
		return NP_ERR_INVALID;
	}
	r = authkeys_filter(d, len, now, sid, AK_SID_DROP, out, &n);
	if (removed != NULL) {
		*removed = n;
	}
	return r;
}

int
np_authkeys_install_buf(const uint8_t *d, size_t len,
			const struct np_spool_entry *e, int64_t now,
			struct np_buf *out)
{
	unsigned n = 0;
	int r;

	if (len > NP_AUTHKEYS_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (!entry_valid(e, 0)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_authkey_format(e, out)) != NP_OK ||
	    (r = np_buf_put_u8(out, '\n')) != NP_OK) {
		return r;
	}
	return authkeys_filter(d, len, now, e->sid, AK_SID_EXISTS, out, &n);
}

/* --- files --- */

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return NP_ERR_SYSTEM;
		}
		p += w;
		len -= (size_t)w;
	}
	return NP_OK;
}

/* Read fd to EOF into a new buffer; NP_ERR_TOO_BIG over max. */
static int
read_fd(int fd, size_t max, struct np_buf **out)
{
	struct np_buf *b;
	uint8_t *dst;
	size_t want;
	ssize_t n;
	int r;

	*out = NULL;
	if ((b = np_buf_new(max + 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (;;) {
		if ((want = np_buf_avail(b)) == 0) {
			r = NP_ERR_TOO_BIG;
			goto out;
		}
		want = want > 65536 ? 65536 : want;
		if ((r = np_buf_reserve(b, want, &dst)) != NP_OK) {
			goto out;
		}
		n = read(fd, dst, want);
		np_buf_unreserve(b, n < 0 ? want : want - (size_t)n);
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
	if (np_buf_len(b) > max) {
		r = NP_ERR_TOO_BIG;
		goto out;
	}
	*out = b;
	b = NULL;
	r = NP_OK;
out:
	np_buf_free(b);
	return r;
}

static int
owner_ok(uid_t owner, uid_t want)
{
	return owner == want || owner == 0;
}

/* A directory fd we trust: no symlink, owner want or root, not g/o-w. */
static int
open_trusted_dir(const char *dir, uid_t want, int *dirfd)
{
	struct stat st;
	int fd;

	*dirfd = -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		/* A symlink or another non-directory in its place. */
		return errno == ENOTDIR || errno == ELOOP ? NP_ERR_PERM
							  : errno_np(errno);
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NP_ERR_SYSTEM;
	}
	if (!S_ISDIR(st.st_mode) || !owner_ok(st.st_uid, want) ||
	    (st.st_mode & 022) != 0) {
		close(fd);
		return NP_ERR_PERM;
	}
	*dirfd = fd;
	return NP_OK;
}

int
np_spool_open_dir(const char *dir, int *dirfd)
{
	int r;

	if ((r = open_trusted_dir(dir, geteuid(), dirfd)) != NP_OK) {
		np_warn_r(r, "spool directory %s refused", dir);
	}
	return r;
}

static int
spool_path(const char *dir, const char *sid, char *path, size_t len)
{
	if (!np_sid_valid(sid)) {
		return NP_ERR_INVALID;
	}
	if ((size_t)snprintf(path, len, "%s/%s%s", dir, sid, SPOOL_SUFFIX) >=
	    len) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

int
np_spool_write(const char *dir, const struct np_spool_entry *e)
{
	char path[PATH_MAX];
	struct np_buf *b;
	int r, dfd;

	if ((r = spool_path(dir, e->sid, path, sizeof(path))) != NP_OK) {
		return r;
	}
	if ((r = np_spool_open_dir(dir, &dfd)) != NP_OK) {
		return r;
	}
	close(dfd);
	if ((b = np_buf_new(NP_SPOOL_FILE_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_spool_format(e, b)) == NP_OK) {
		r = np_file_write_atomic(path, np_buf_ptr(b), np_buf_len(b), 0);
	}
	np_buf_free(b);
	return r;
}

int
np_spool_remove(const char *dir, const char *sid)
{
	char path[PATH_MAX];
	int r;

	if ((r = spool_path(dir, sid, path, sizeof(path))) != NP_OK) {
		return r;
	}
	return unlink(path) == 0 ? NP_OK : errno_np(errno);
}

/* "SID.key" -> 1 and sid filled in. */
static int
entry_name(const char *name, char sid[NP_SID_HEX_LEN + 1])
{
	if (strlen(name) != NP_SID_HEX_LEN + sizeof(SPOOL_SUFFIX) - 1 ||
	    strcmp(name + NP_SID_HEX_LEN, SPOOL_SUFFIX) != 0 ||
	    !hexlower_n(name, NP_SID_HEX_LEN)) {
		return 0;
	}
	memcpy(sid, name, NP_SID_HEX_LEN);
	sid[NP_SID_HEX_LEN] = '\0';
	return 1;
}

/* Open, check and parse one spool file. */
static int
read_entry(int dfd, const char *name, struct np_spool_entry *e)
{
	char sid[NP_SID_HEX_LEN + 1];
	struct np_buf *b = NULL;
	struct stat st;
	int fd, r;

	if (!entry_name(name, sid)) {
		return NP_ERR_INVALID;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		return errno_np(errno);
	}
	if (fstat(fd, &st) != 0) {
		r = NP_ERR_SYSTEM;
	} else if (!S_ISREG(st.st_mode) || !owner_ok(st.st_uid, geteuid()) ||
		   (st.st_mode & 022) != 0) {
		r = NP_ERR_PERM;
	} else if (st.st_size > NP_SPOOL_FILE_MAX) {
		r = NP_ERR_TOO_BIG;
	} else if ((r = read_fd(fd, NP_SPOOL_FILE_MAX, &b)) == NP_OK &&
		   (r = np_spool_parse(np_buf_ptr(b), np_buf_len(b), e)) ==
		       NP_OK &&
		   strcmp(e->sid, sid) != 0) {
		r = NP_ERR_INVALID;
	}
	np_buf_free(b);
	close(fd);
	return r;
}

/* Call fn for every name in dir but "." and "..". */
static int
spool_walk(const char *dir, int (*fn)(int, const char *, void *), void *arg)
{
	struct dirent *de;
	DIR *d;
	int dfd, fd2, r;

	if ((r = np_spool_open_dir(dir, &dfd)) != NP_OK) {
		return r;
	}
	if ((fd2 = dup(dfd)) < 0 || (d = fdopendir(fd2)) == NULL) {
		if (fd2 >= 0) {
			close(fd2);
		}
		close(dfd);
		return NP_ERR_SYSTEM;
	}
	r = NP_OK;
	while (r == NP_OK && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			r = fn(dfd, de->d_name, arg);
		}
	}
	closedir(d);
	close(dfd);
	return r;
}

struct list_ctx {
	const char *user;
	int64_t now;
	np_spool_cb cb;
	void *arg;
};

static int
list_one(int dfd, const char *name, void *arg)
{
	struct list_ctx *c = arg;
	struct np_spool_entry e;
	int r;

	if (strstr(name, SPOOL_TMP_INFIX) != NULL) {
		return NP_OK; /* a write in progress */
	}
	if ((r = read_entry(dfd, name, &e)) != NP_OK) {
		np_warn_r(r, "spool: skipping %.80s", name);
		return NP_OK;
	}
	if (strcmp(e.user, c->user) != 0) {
		return NP_OK;
	}
	if (e.expires <= c->now) {
		np_debug("spool: %s expired", e.sid);
		return NP_OK;
	}
	return c->cb(&e, c->arg);
}

int
np_spool_list(const char *dir, const char *user, int64_t now, np_spool_cb cb,
	      void *arg)
{
	struct list_ctx c = {user, now, cb, arg};

	if (!np_user_valid(user)) {
		return NP_ERR_INVALID;
	}
	return spool_walk(dir, list_one, &c);
}

struct sweep_ctx {
	int64_t now;
	unsigned removed;
};

/* A leftover temp file of np_file_write_atomic, old enough to go. */
static int
stale_temp(int dfd, const char *name, int64_t now)
{
	struct stat st;

	if (strlen(name) <= NP_SID_HEX_LEN + sizeof(SPOOL_TMP_INFIX) - 1 ||
	    !hexlower_n(name, NP_SID_HEX_LEN) ||
	    strncmp(name + NP_SID_HEX_LEN, SPOOL_TMP_INFIX,
		    sizeof(SPOOL_TMP_INFIX) - 1) != 0) {
		return 0;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		return 0;
	}
	return S_ISREG(st.st_mode) && st.st_mtime + SPOOL_TMP_AGE < now;
}

static int
sweep_one(int dfd, const char *name, void *arg)
{
	struct sweep_ctx *c = arg;
	struct np_spool_entry e;
	int r;

	if (stale_temp(dfd, name, c->now)) {
		e.expires = 0;
	} else if (strstr(name, SPOOL_TMP_INFIX) != NULL) {
		return NP_OK;
	} else if ((r = read_entry(dfd, name, &e)) != NP_OK) {
		np_warn_r(r, "spool: leaving %.80s alone", name);
		return NP_OK;
	}
	if (e.expires > c->now) {
		return NP_OK;
	}
	if (unlinkat(dfd, name, 0) != 0) {
		np_warn("spool: cannot remove %.80s: %s", name,
			strerror(errno));
		return NP_OK;
	}
	c->removed++;
	return NP_OK;
}

int
np_spool_sweep(const char *dir, int64_t now, unsigned *removed)
{
	struct sweep_ctx c = {now, 0};
	int r;

	r = spool_walk(dir, sweep_one, &c);
	if (removed != NULL) {
		*removed = c.removed;
	}
	return r;
}

/* --- authorized_keys files --- */

struct ak_file {
	char dir[PATH_MAX];
	const char *base;
	int dfd;
	struct stat st; /* of the file, or the wanted owner/mode if new */
	struct np_buf *in;
};

static int
ak_split(const char *path, struct ak_file *f)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		strcpy(f->dir, ".");
		f->base = path;
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(f->dir)) {
			return NP_ERR_TOO_BIG;
		}
		memcpy(f->dir, path, n);
		f->dir[n] = '\0';
		f->base = slash + 1;
	}
	if (*f->base == '\0' || strcmp(f->base, ".") == 0 ||
	    strcmp(f->base, "..") == 0 || strlen(f->base) > 200) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* Create a missing directory 0700 owned by uid:gid. */
static int
ak_mkdir(const char *dir, uid_t uid, gid_t gid)
{
	int fd, r = NP_OK;

	if (mkdir(dir, 0700) != 0) {
		return errno == EEXIST ? NP_OK : errno_np(errno);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return errno_np(errno);
	}
	if (geteuid() == 0 && fchown(fd, uid, gid) != 0) {
		r = NP_ERR_SYSTEM;
	}
	close(fd);
	return r;
}

/* Read the current file (absent: empty, owner uid:gid, mode 0600). */
static int
ak_read(struct ak_file *f, uid_t uid, gid_t gid)
{
	int fd, r;

	fd = openat(f->dfd, f->base,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		memset(&f->st, 0, sizeof(f->st));
		f->st.st_uid = uid;
		f->st.st_gid = gid;
		f->st.st_mode = S_IFREG | 0600;
		f->in = np_buf_new(1);
		return f->in == NULL ? NP_ERR_ALLOC : NP_OK;
	}
	if (fd < 0) {
		return errno_np(errno);
	}
	if (fstat(fd, &f->st) != 0) {
		r = NP_ERR_SYSTEM;
	} else if (!S_ISREG(f->st.st_mode) || f->st.st_nlink != 1 ||
		   !owner_ok(f->st.st_uid, uid)) {
		r = NP_ERR_PERM;
	} else if (f->st.st_size > NP_AUTHKEYS_MAX) {
		r = NP_ERR_TOO_BIG;
	} else {
		r = read_fd(fd, NP_AUTHKEYS_MAX, &f->in);
	}
	close(fd);
	return r;
}

/* Temp file next to the original with its owner and mode, then rename. */
static int
ak_replace(struct ak_file *f, const struct np_buf *b)
{
	char tmp[NAME_MAX + 1], rnd[17];
	uint8_t rb[8];
	struct stat st;
	int fd, r;

	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(rnd, sizeof(rnd), rb, sizeof(rb));
	snprintf(tmp, sizeof(tmp), ".%s.np-tmp.%s", f->base, rnd);
	fd = openat(f->dfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		return errno_np(errno);
	}
	if ((r = write_all(fd, np_buf_ptr(b), np_buf_len(b))) != NP_OK ||
	    fstat(fd, &st) != 0) {
		r = NP_ERR_SYSTEM;
	} else if ((st.st_uid != f->st.st_uid || st.st_gid != f->st.st_gid) &&
		   fchown(fd, f->st.st_uid, f->st.st_gid) != 0) {
		r = NP_ERR_PERM;
	} else if (fchmod(fd, f->st.st_mode & 0777) != 0 || fsync(fd) != 0) {
		r = NP_ERR_SYSTEM;
	}
	if (close(fd) != 0 && r == NP_OK) {
		r = NP_ERR_SYSTEM;
	}
	if (r == NP_OK && renameat(f->dfd, tmp, f->dfd, f->base) != 0) {
		r = errno_np(errno);
	}
	if (r != NP_OK) {
		unlinkat(f->dfd, tmp, 0);
		return r;
	}
	return fsync(f->dfd) == 0 || errno == EINVAL ? NP_OK : NP_ERR_SYSTEM;
}

/* Open and lock the directory, read the file. */
static int
ak_open(const char *path, uid_t uid, gid_t gid, int mkdir, struct ak_file *f)
{
	int r;

	memset(f, 0, sizeof(*f));
	f->dfd = -1;
	if ((r = np_crypto_init()) != NP_OK ||
	    (r = ak_split(path, f)) != NP_OK) {
		return r;
	}
	if (mkdir && (r = ak_mkdir(f->dir, uid, gid)) != NP_OK) {
		return r;
	}
	if ((r = open_trusted_dir(f->dir, uid, &f->dfd)) != NP_OK) {
		return r;
	}
	while (flock(f->dfd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			return NP_ERR_SYSTEM;
		}
	}
	return ak_read(f, uid, gid);
}

static void
ak_close(struct ak_file *f)
{
	if (f->dfd >= 0) {
		close(f->dfd); /* drops the lock */
	}
	np_buf_free(f->in);
	f->in = NULL;
	f->dfd = -1;
}

int
np_authkeys_install(const char *path, uid_t uid, gid_t gid, int mkdir,
		    const struct np_spool_entry *e, int64_t now)
{
	struct ak_file f;
	struct np_buf *out = NULL;
	int r;

	if ((r = ak_open(path, uid, gid, mkdir, &f)) != NP_OK) {
		goto out;
	}
	if ((out = np_buf_new(NP_AUTHKEYS_MAX + AK_LINE_MAX)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_authkeys_install_buf(np_buf_ptr(f.in), np_buf_len(f.in), e,
					 now, out)) != NP_OK) {
		goto out;
	}
	r = ak_replace(&f, out);
out:
	ak_close(&f);
	np_buf_free(out);
	return r;
}

/* Sweep (sid NULL) or remove session sid and sweep, in the file. */
static int
ak_drop(const char *path, uid_t uid, const char *sid, int64_t now,
	unsigned *removed)
{
	struct ak_file f;
	struct np_buf *out = NULL;
	unsigned n = 0;
	int r;

	if ((r = ak_open(path, uid, 0, 0, &f)) != NP_OK) {
		goto out;
	}
	if ((out = np_buf_new(NP_AUTHKEYS_MAX + 1)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	r = sid == NULL ? np_authkeys_sweep_buf(np_buf_ptr(f.in),
						np_buf_len(f.in), now, out, &n)
			: np_authkeys_remove_buf(np_buf_ptr(f.in),
						 np_buf_len(f.in), sid, now,
						 out, &n);
	if (r != NP_OK) {
		goto out;
	}
	if (n > 0) {
		r = ak_replace(&f, out);
	}
out:
	if (removed != NULL) {
		*removed = r == NP_OK ? n : 0;
	}
	ak_close(&f);
	np_buf_free(out);
	return r;
}

int
np_authkeys_sweep(const char *path, uid_t uid, int64_t now, unsigned *removed)
{
	return ak_drop(path, uid, NULL, now, removed);
}

int
np_authkeys_remove(const char *path, uid_t uid, const char *sid, int64_t now,
		   unsigned *removed)
{
	if (!np_sid_valid(sid)) {
		return NP_ERR_INVALID;
	}
	return ak_drop(path, uid, sid, now, removed);
}
