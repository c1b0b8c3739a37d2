#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"

struct np_buf {
	uint8_t *d;
	size_t off;  /* start of unread data */
	size_t size; /* end of data */
	size_t alloc;
	size_t max;
	int secure;
	int readonly;
};

#define NP_BUF_MIN_ALLOC 256

static struct np_buf *
buf_new(size_t max, int secure)
{
	struct np_buf *b;

	if (max == 0 || max > NP_BUF_MAX_CAP)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->max = max;
	b->secure = secure;
	if (secure) {
		/* Secure buffers never move: allocate the cap at once. */
		if ((b->d = sodium_malloc(max)) == NULL) {
			free(b);
			return NULL;
		}
		b->alloc = max;
	}
	return b;
}

struct np_buf *
np_buf_new(size_t max)
{
	return buf_new(max, 0);
}

struct np_buf *
np_buf_new_secure(size_t max)
{
	return buf_new(max, 1);
}

struct np_buf *
np_buf_from(const void *p, size_t len)
{
	struct np_buf *b;

	if ((b = buf_new(len == 0 ? 1 : len, 0)) == NULL)
		return NULL;
	if (len > 0 && np_buf_put(b, p, len) != NP_OK) {
		np_buf_free(b);
		return NULL;
	}
	b->readonly = 1;
	return b;
}

void
np_buf_free(struct np_buf *b)
{
	if (b == NULL)
		return;
	if (b->secure)
		sodium_free(b->d);
	else
		free(b->d);
	free(b);
}

void
np_buf_reset(struct np_buf *b)
{
	if (b->secure && b->d != NULL)
		sodium_memzero(b->d, b->alloc);
	b->off = b->size = 0;
}

size_t
np_buf_len(const struct np_buf *b)
{
	return b->size - b->off;
}

size_t
np_buf_avail(const struct np_buf *b)
{
	return b->max - np_buf_len(b);
}

const uint8_t *
np_buf_ptr(const struct np_buf *b)
{
	static const uint8_t empty[1];

	return b->d == NULL ? empty : b->d + b->off;
}

/* Move unread data to the front when that makes room. */
static void
buf_pack(struct np_buf *b)
{
	if (b->off == 0)
		return;
	if (b->size > b->off)
		memmove(b->d, b->d + b->off, b->size - b->off);
	b->size -= b->off;
	if (b->secure)
		sodium_memzero(b->d + b->size, b->off);
	b->off = 0;
}

int
np_buf_reserve(struct np_buf *b, size_t n, uint8_t **dst)
{
	size_t need, nalloc;
	uint8_t *nd;

	if (dst != NULL)
		*dst = NULL;
	if (b->readonly)
		return NP_ERR_INTERNAL;
	if (n > b->max || np_buf_len(b) > b->max - n)
		return NP_ERR_TOO_BIG;
	if (b->alloc - b->size < n)
		buf_pack(b);
	need = b->size + n;
	if (need > b->alloc) {
		if (b->secure)
			return NP_ERR_INTERNAL; /* cannot happen: alloc == max */
		nalloc = b->alloc < NP_BUF_MIN_ALLOC ? NP_BUF_MIN_ALLOC
						     : b->alloc;
		while (nalloc < need)
			nalloc = nalloc > b->max / 2 ? b->max : nalloc * 2;
		if (nalloc > b->max)
			nalloc = b->max;
		if ((nd = realloc(b->d, nalloc)) == NULL)
			return NP_ERR_ALLOC;
		b->d = nd;
		b->alloc = nalloc;
	}
	/* b->d is still NULL after reserving 0 bytes in a new buffer. */
	if (dst != NULL)
		*dst = b->d == NULL ? NULL : b->d + b->size;
	b->size += n;
	return NP_OK;
}

int
np_buf_unreserve(struct np_buf *b, size_t n)
{
	return np_buf_consume_end(b, n);
}

int
np_buf_consume(struct np_buf *b, size_t n)
{
	if (n > np_buf_len(b))
		return NP_ERR_TRUNCATED;
	if (b->secure)
		sodium_memzero(b->d + b->off, n);
	b->off += n;
	if (b->off == b->size)
		b->off = b->size = 0;
	return NP_OK;
}

int
np_buf_consume_end(struct np_buf *b, size_t n)
{
	if (n > np_buf_len(b))
		return NP_ERR_TRUNCATED;
	b->size -= n;
	if (b->secure)
		sodium_memzero(b->d + b->size, n);
	return NP_OK;
}

int
np_buf_put(struct np_buf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if ((r = np_buf_reserve(b, n, &dst)) != NP_OK)
		return r;
	if (n > 0)
		memcpy(dst, p, n);
	return NP_OK;
}

int
np_buf_put_u8(struct np_buf *b, uint8_t v)
{
	return np_buf_put(b, &v, 1);
}

int
np_buf_put_u16(struct np_buf *b, uint16_t v)
{
	uint8_t d[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return np_buf_put(b, d, sizeof(d));
}

int
np_buf_put_u32(struct np_buf *b, uint32_t v)
{
	uint8_t d[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
		(uint8_t)(v >> 8), (uint8_t)v };

	return np_buf_put(b, d, sizeof(d));
}

int
np_buf_put_u64(struct np_buf *b, uint64_t v)
{
	int r;

	if ((r = np_buf_put_u32(b, (uint32_t)(v >> 32))) != NP_OK)
		return r;
	return np_buf_put_u32(b, (uint32_t)v);
}

int
np_buf_put_string(struct np_buf *b, const void *p, size_t n)
{
	int r;

	if (n > UINT32_MAX)
		return NP_ERR_TOO_BIG;
	if (n > np_buf_avail(b) || np_buf_avail(b) - n < 4)
		return NP_ERR_TOO_BIG;
	if ((r = np_buf_put_u32(b, (uint32_t)n)) != NP_OK)
		return r;
	return np_buf_put(b, p, n);
}

int
np_buf_put_cstring(struct np_buf *b, const char *s)
{
	return np_buf_put_string(b, s, s == NULL ? 0 : strlen(s));
}

/* putf when the text exactly fills the buffer: no room for the NUL. */
static int buf_putf_full(struct np_buf *, size_t, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static int
buf_putf_full(struct np_buf *b, size_t n, const char *fmt, va_list ap)
{
	char *tmp;
	int r;

	tmp = b->secure ? sodium_malloc(n + 1) : malloc(n + 1);
	if (tmp == NULL)
		return NP_ERR_ALLOC;
	vsnprintf(tmp, n + 1, fmt, ap);
	r = np_buf_put(b, tmp, n);
	sodium_memzero(tmp, n + 1);
	if (b->secure)
		sodium_free(tmp);
	else
		free(tmp);
	return r;
}

int
np_buf_putf(struct np_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;
	uint8_t *dst;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NP_ERR_INVALID;
	if ((size_t)n > np_buf_avail(b))
		return NP_ERR_TOO_BIG;
	if ((size_t)n == np_buf_avail(b)) {
		va_start(ap, fmt);
		r = buf_putf_full(b, (size_t)n, fmt, ap);
		va_end(ap);
		return r;
	}
	/* Reserve room for the NUL vsnprintf writes, then drop it. */
	if ((r = np_buf_reserve(b, (size_t)n + 1, &dst)) != NP_OK)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return np_buf_consume_end(b, 1);
}

int
np_buf_get(struct np_buf *b, void *p, size_t n)
{
	if (n > np_buf_len(b))
		return NP_ERR_TRUNCATED;
	if (p != NULL && n > 0)
		memcpy(p, np_buf_ptr(b), n);
	return np_buf_consume(b, n);
}

int
np_buf_get_u8(struct np_buf *b, uint8_t *v)
{
	return np_buf_get(b, v, 1);
}

int
np_buf_get_u16(struct np_buf *b, uint16_t *v)
{
	uint8_t d[2];
	int r;

	if ((r = np_buf_get(b, d, sizeof(d))) != NP_OK)
		return r;
	if (v != NULL)
		*v = (uint16_t)((d[0] << 8) | d[1]);
	return NP_OK;
}

int
np_buf_peek_u32(const struct np_buf *b, size_t off, uint32_t *v)
{
	const uint8_t *d;

	if (off > np_buf_len(b) || np_buf_len(b) - off < 4)
		return NP_ERR_TRUNCATED;
	d = np_buf_ptr(b) + off;
	if (v != NULL)
		*v = ((uint32_t)d[0] << 24) | ((uint32_t)d[1] << 16) |
		    ((uint32_t)d[2] << 8) | (uint32_t)d[3];
	return NP_OK;
}

int
np_buf_get_u32(struct np_buf *b, uint32_t *v)
{
	int r;

	if ((r = np_buf_peek_u32(b, 0, v)) != NP_OK)
		return r;
	return np_buf_consume(b, 4);
}

int
np_buf_get_u64(struct np_buf *b, uint64_t *v)
{
	uint32_t hi, lo;
	int r;

	if (np_buf_len(b) < 8)
		return NP_ERR_TRUNCATED;
	if ((r = np_buf_get_u32(b, &hi)) != NP_OK ||
	    (r = np_buf_get_u32(b, &lo)) != NP_OK)
		return r;
	if (v != NULL)
		*v = ((uint64_t)hi << 32) | lo;
	return NP_OK;
}

int
np_buf_get_string_direct(struct np_buf *b, const uint8_t **p, size_t *n)
{
	uint32_t len;
	int r;

	if (p != NULL)
		*p = NULL;
	if (n != NULL)
		*n = 0;
	if ((r = np_buf_peek_u32(b, 0, &len)) != NP_OK)
		return r;
	if (len > np_buf_len(b) - 4)
		return NP_ERR_TRUNCATED;
	if (p != NULL)
		*p = np_buf_ptr(b) + 4;
	if (n != NULL)
		*n = len;
	/* Consuming does not move data, so *p stays valid. */
	b->off += 4 + (size_t)len;
	if (b->off == b->size) {
		/* Keep the bytes in place for the caller; only mark empty
		 * positions lazily on the next reserve. */
	}
	return NP_OK;
}

int
np_buf_get_string(struct np_buf *b, uint8_t **p, size_t *n)
{
	const uint8_t *s;
	size_t len;
	uint8_t *cp;
	int r;

	if (p != NULL)
		*p = NULL;
	if (n != NULL)
		*n = 0;
	if ((r = np_buf_get_string_direct(b, &s, &len)) != NP_OK)
		return r;
	if (p != NULL) {
		if ((cp = malloc(len + 1)) == NULL)
			return NP_ERR_ALLOC;
		if (len > 0)
			memcpy(cp, s, len);
		cp[len] = '\0';
		*p = cp;
	}
	if (n != NULL)
		*n = len;
	return NP_OK;
}

int
np_buf_get_cstring(struct np_buf *b, char **s, size_t *n)
{
	const uint8_t *p;
	size_t len;
	uint32_t plen;
	char *cp;
	int r;

	if (s != NULL)
		*s = NULL;
	if ((r = np_buf_peek_u32(b, 0, &plen)) != NP_OK)
		return r;
	if (plen > np_buf_len(b) - 4)
		return NP_ERR_TRUNCATED;
	if (plen > 0 && memchr(np_buf_ptr(b) + 4, '\0', plen) != NULL)
		return NP_ERR_INVALID;
	if ((r = np_buf_get_string_direct(b, &p, &len)) != NP_OK)
		return r;
	if (s != NULL) {
		if ((cp = malloc(len + 1)) == NULL)
			return NP_ERR_ALLOC;
		if (len > 0)
			memcpy(cp, p, len);
		cp[len] = '\0';
		*s = cp;
	}
	if (n != NULL)
		*n = len;
	return NP_OK;
}

int
np_buf_get_end(const struct np_buf *b)
{
	return np_buf_len(b) == 0 ? NP_OK : NP_ERR_INVALID;
}
