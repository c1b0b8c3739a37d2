/*
 * Control-plane messages: a strict validator driven by one table of
 * message types (see docs/PROTOCOL.md).  Every message is a JSON object
 * with a "t" member naming its type; each type lists its members with
 * their JSON type, whether required, and limits.  Unknown types, unknown
 * members, wrong types, out-of-range numbers, over-long strings and base64
 * of the wrong decoded length are all refused.
 */
#ifndef NP_MSG_H
#define NP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Who may send a message type. */
enum np_msg_dir {
	NP_MSG_TO_SERVER = 1,	/* client -> server */
	NP_MSG_TO_CLIENT = 2,	/* server -> client */
};

/* Validate obj as a message travelling in direction dir.  NP_OK or
 * NP_ERR_INVALID / NP_ERR_PROTO.  On success *type (if not NULL) points
 * at the static type name. */
int np_msg_validate(struct json_object *obj, enum np_msg_dir dir,
    const char **type);

/* Accessors for validated messages (NULL / -1 / error when absent). */
const char *np_msg_str(struct json_object *obj, const char *key);
int np_msg_int(struct json_object *obj, const char *key, int64_t *v);
/* Base64 member decoded into out (max bytes), *n its length. */
int np_msg_b64(struct json_object *obj, const char *key, uint8_t *out,
    size_t max, size_t *n);

/* Reply tags (docs/PROTOCOL.md, "tag" on send / monitor / msg). */
#define NP_TAG_MAX 32
/* 1 when s is a tag: 1..NP_TAG_MAX characters [a-z0-9]; 0 otherwise
 * (NULL included). */
int np_tag_valid(const char *s);
/* A fresh random tag: 16 random bytes as 32 lowercase hex digits. */
void np_tag_new(char out[NP_TAG_MAX + 1]);

#endif
