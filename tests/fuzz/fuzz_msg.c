/*
 * Fuzz the message validator: parse the input as one JSON object, validate
 * it in both directions, and read every member through the accessors.
 */
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
read_members(struct json_object *obj)
{
	static uint8_t out[49152];
	const char *s;
	int64_t v;
	size_t n;

	json_object_object_foreach(obj, key, val)
	{
		(void)val;
		s = np_msg_str(obj, key);
		(void)s;
		(void)np_msg_int(obj, key, &v);
		(void)np_msg_b64(obj, key, out, sizeof(out), &n);
		(void)np_msg_b64(obj, key, out, 32, &n);
	}
	(void)np_msg_str(obj, "absent");
	(void)np_msg_int(obj, "absent", &v);
	(void)np_msg_b64(obj, "absent", out, sizeof(out), &n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *obj = NULL;
	const char *type;

	if (np_json_parse(data, size, &obj) != NP_OK)
		return 0;
	(void)np_msg_validate(obj, NP_MSG_TO_SERVER, &type);
	(void)np_msg_validate(obj, NP_MSG_TO_CLIENT, &type);
	read_members(obj);
	json_object_put(obj);
	return 0;
}
