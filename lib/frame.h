/*
 * Control-plane framing: a 4-byte big-endian length, then exactly one
 * JSON object of that many bytes.  Hard caps: NP_FRAME_MAX bytes of
 * payload and NP_JSON_DEPTH levels of nesting.  Decoding is pure: no I/O,
 * no globals, never exits.
 */
#ifndef NP_FRAME_H
#define NP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"

#define NP_FRAME_MAX (64 * 1024)
#define NP_JSON_DEPTH 8

/* Append the frame for obj (a JSON object) to out.  NP_ERR_TOO_BIG. */
int np_frame_encode(struct json_object *obj, struct np_buf *out);
/*
 * Take one whole frame from the front of in.  NP_ERR_AGAIN when in holds
 * only part of one (nothing consumed), NP_ERR_TOO_BIG when the announced
 * length is over the cap, NP_ERR_INVALID / NP_ERR_DEPTH for bad JSON, a
 * JSON value that is not an object, or trailing bytes.  On success *out
 * owns a reference.
 */
int np_frame_decode(struct np_buf *in, struct json_object **out);
/* The JSON part alone: p[0..len) must be one JSON object. */
int np_json_parse(const uint8_t *p, size_t len, struct json_object **out);

#endif
