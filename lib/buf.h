/*
 * Bounds-checked byte buffer: the one type through which every byte that
 * crosses a wire or a file is read and written.  Data is appended at the
 * end and consumed from the front.  Every buffer has a hard size cap;
 * every get checks the remaining length first.  Integers are big-endian.
 */
#ifndef NP_BUF_H
#define NP_BUF_H

#include <stddef.h>
#include <stdint.h>

#define NP_BUF_MAX_CAP (64 * 1024 * 1024)

struct np_buf;

/* A growable buffer that may hold at most max bytes. */
struct np_buf *np_buf_new(size_t max);
/* Same, in sodium_malloc memory, wiped on reset and free (secrets). */
struct np_buf *np_buf_new_secure(size_t max);
/* A read-only buffer over a copy of p[0..len). */
struct np_buf *np_buf_from(const void *p, size_t len);
void np_buf_free(struct np_buf *b); /* NULL is fine */
void np_buf_reset(struct np_buf *b);

size_t np_buf_len(const struct np_buf *b);
size_t np_buf_avail(const struct np_buf *b); /* max - len */
const uint8_t *np_buf_ptr(const struct np_buf *b);

/* Reserve n bytes at the end; *dst points at them.  NP_ERR_TOO_BIG. */
int np_buf_reserve(struct np_buf *b, size_t n, uint8_t **dst);
/* Give back the last n reserved/appended bytes (after a short read). */
int np_buf_unreserve(struct np_buf *b, size_t n);
int np_buf_consume(struct np_buf *b, size_t n);	     /* drop from front */
int np_buf_consume_end(struct np_buf *b, size_t n); /* drop from end */

int np_buf_put(struct np_buf *b, const void *p, size_t n);
int np_buf_put_u8(struct np_buf *b, uint8_t v);
int np_buf_put_u16(struct np_buf *b, uint16_t v);
int np_buf_put_u32(struct np_buf *b, uint32_t v);
int np_buf_put_u64(struct np_buf *b, uint64_t v);
/* u32 length, then the bytes. */
int np_buf_put_string(struct np_buf *b, const void *p, size_t n);
int np_buf_put_cstring(struct np_buf *b, const char *s);
int np_buf_putf(struct np_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Gets consume; v may be NULL to skip.  NP_ERR_TRUNCATED when short. */
int np_buf_get(struct np_buf *b, void *p, size_t n);
int np_buf_get_u8(struct np_buf *b, uint8_t *v);
int np_buf_get_u16(struct np_buf *b, uint16_t *v);
int np_buf_get_u32(struct np_buf *b, uint32_t *v);
int np_buf_get_u64(struct np_buf *b, uint64_t *v);
/* Length-prefixed string; *p is malloc'ed and NUL-terminated. */
int np_buf_get_string(struct np_buf *b, uint8_t **p, size_t *n);
/* Length-prefixed string as a pointer into the buffer (valid until the
 * next change to b). */
int np_buf_get_string_direct(struct np_buf *b, const uint8_t **p, size_t *n);
/* A string that must be text: no NUL inside. *s is malloc'ed. */
int np_buf_get_cstring(struct np_buf *b, char **s, size_t *n);

/* Peeks do not consume; off is from the front. */
int np_buf_peek_u32(const struct np_buf *b, size_t off, uint32_t *v);
/* NP_OK when everything was consumed, NP_ERR_INVALID on trailing bytes. */
int np_buf_get_end(const struct np_buf *b);

#endif
