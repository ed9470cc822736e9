/*
 * weir V8 heap notifications: what Chrome tells V8 when a tab goes idle or the system runs low
 * on memory, for a Node process, which has no JavaScript API for them.
 *
 *   memoryPressure(level: 0 | 1 | 2);  // none, moderate, critical
 *
 * Critical pressure runs a full collection that reduces memory at once (compacts the old
 * generation, shrinks the young generation, frees pooled pages) before the call returns: it is
 * called on the isolate's own thread (a JavaScript call). Moderate pressure only records the
 * level: V8 starts incremental marking with that goal when it next checks it.
 */
#include <node_api.h>
#include <v8.h>

static napi_value js_memory_pressure(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	int32_t level = 0;
	napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
	if (argc < 1 || napi_get_value_int32(env, argv[0], &level) != napi_ok || level < 0 || level > 2) {
		napi_throw_range_error(
			env, nullptr,
			"memoryPressure(level): level is 0 (none), 1 (moderate) or 2 (critical)");
		return nullptr;
	}
	v8::Isolate::GetCurrent()->MemoryPressureNotification(static_cast<v8::MemoryPressureLevel>(level));
	return nullptr;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_create_function(env, "memoryPressure", NAPI_AUTO_LENGTH, js_memory_pressure, nullptr, &fn);
	napi_set_named_property(env, exports, "memoryPressure", fn);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
