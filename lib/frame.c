/*
 * Control-plane framing: u32 big-endian length, then one JSON object.
 */
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "err.h"
#include "frame.h"

/*
 * json-c counts the top-level value as one level of its stack and refuses
 * to push when depth >= max_depth - 1, so NP_JSON_DEPTH nested objects
 * need a tokener depth of NP_JSON_DEPTH + 1.
 */
#define TOKENER_DEPTH (NP_JSON_DEPTH + 1)

/* Raw NUL bytes and the escaped form both refuse the frame. */
static int
has_nul(const uint8_t *p, size_t len)
{
	static const char esc[] = "\\u0000";

	if (memchr(p, '\0', len) != NULL)
		return 1;
	return memmem(p, len, esc, sizeof(esc) - 1) != NULL;
}

int
np_json_parse(const uint8_t *p, size_t len, struct json_object **out)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	int r = NP_ERR_INVALID;

	*out = NULL;
	if (len == 0)
		return NP_ERR_INVALID;
	if (len > NP_FRAME_MAX)
		return NP_ERR_TOO_BIG;
	if (has_nul(p, len))
		return NP_ERR_INVALID;
	if ((tok = json_tokener_new_ex(TOKENER_DEPTH)) == NULL)
		return NP_ERR_ALLOC;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, (const char *)p, (int)len);
	if (obj == NULL) {
		jerr = json_tokener_get_error(tok);
		r = jerr == json_tokener_error_depth ? NP_ERR_DEPTH
						     : NP_ERR_INVALID;
		goto out;
	}
	if (json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(obj, json_type_object)) {
		r = NP_ERR_INVALID;
		goto out;
	}
	*out = obj;
	obj = NULL;
	r = NP_OK;
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return r;
}

int
np_frame_decode(struct np_buf *in, struct json_object **out)
{
	uint32_t len;
	int r;

	*out = NULL;
	if (np_buf_peek_u32(in, 0, &len) != NP_OK)
		return NP_ERR_AGAIN;
	if (len == 0)
		return NP_ERR_INVALID;
	if (len > NP_FRAME_MAX)
		return NP_ERR_TOO_BIG;
	if (np_buf_len(in) - 4 < len)
		return NP_ERR_AGAIN;
	r = np_json_parse(np_buf_ptr(in) + 4, len, out);
	/* A whole frame is consumed, good or bad. */
	if (np_buf_consume(in, 4 + (size_t)len) != NP_OK && r == NP_OK) {
		json_object_put(*out);
		*out = NULL;
		return NP_ERR_INTERNAL;
	}
	return r;
}

int
np_frame_encode(struct json_object *obj, struct np_buf *out)
{
	const char *s;
	size_t len;
	int r;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NP_ERR_INVALID;
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN,
					      &len);
	if (s == NULL)
		return NP_ERR_ALLOC;
	if (len == 0 || len > NP_FRAME_MAX)
		return NP_ERR_TOO_BIG;
	if (np_buf_avail(out) < 4 + len)
		return NP_ERR_TOO_BIG;
	if ((r = np_buf_put_u32(out, (uint32_t)len)) != NP_OK)
		return r;
	if ((r = np_buf_put(out, s, len)) != NP_OK) {
		np_buf_consume_end(out, 4);
		return r;
	}
	return NP_OK;
}
