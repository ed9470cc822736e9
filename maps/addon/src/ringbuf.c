/*
 * weir ring-buffer reader: watches a libbpf ring buffer's epoll fd with
 * uv_poll on the Node event loop and hands records to JavaScript in bounded
 * batches, so a flood of events never freezes the loop. A batch is one copy:
 * the records back to back in one Buffer, and their ends (little-endian
 * Uint32) in a second; maps/ringbuf.ts cuts the first into views. One Buffer
 * per record instead (malloc, an external buffer and its finalizer each) cost
 * the reader more than the decoding.
 *
 *   const r = open(mapFd, (data: Buffer, ends: Buffer, count: number) => {...}, maxBatch?, pollMs?);
 *   r.close();
 *
 * Producers may submit without a wakeup (batching); with pollMs > 0 a timer
 * also drains the ring every pollMs milliseconds.
 */
#include <node_api.h>
#include <uv.h>
#include <bpf/libbpf.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BATCH 4096
#define STOP_BATCH_FULL	  (-7777)

struct reader {
	napi_env env;
	napi_ref callback;
	napi_ref self;
	struct ring_buffer *rb;
	uv_poll_t poll;
	uv_timer_t timer;
	int timer_on;
	int pending_closes;
	int closed;
	size_t max_batch;
	size_t count;
	/* the batch: records back to back (grown as needed, reused), and where each ends */
	unsigned char *data;
	size_t used;
	size_t cap;
	uint32_t *ends;
};

static int on_sample(void *ctx, void *data, size_t len)
{
	struct reader *r = ctx;
	if (r->used + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		unsigned char *grown;
		while (cap < r->used + len)
			cap *= 2;
		grown = realloc(r->data, cap);
		if (!grown)
			return -ENOMEM;
		r->data = grown;
		r->cap = cap;
	}
	memcpy(r->data + r->used, data, len);
	r->used += len;
	r->ends[r->count++] = htole32((uint32_t)r->used);
	return r->count >= r->max_batch ? STOP_BATCH_FULL : 0;
}

static void deliver(struct reader *r)
{
	napi_env env = r->env;
	napi_handle_scope scope;
	napi_value cb, global, data, ends, count;

	napi_open_handle_scope(env, &scope);
	napi_create_buffer_copy(env, r->used, r->data, NULL, &data);
	napi_create_buffer_copy(env, r->count * sizeof(uint32_t), r->ends, NULL, &ends);
	napi_create_uint32(env, (uint32_t)r->count, &count);
	r->count = 0;
	r->used = 0;
	napi_get_reference_value(env, r->callback, &cb);
	napi_get_global(env, &global);
	napi_value argv[3] = {data, ends, count};
	if (napi_make_callback(env, NULL, global, cb, 3, argv, NULL) == napi_pending_exception) {
		napi_value exc;
		napi_get_and_clear_last_exception(env, &exc);
		napi_fatal_exception(env, exc);
	}
	napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct reader *r = h->data;
	(void)events;
	if (r->closed || status < 0)
		return;
	/* one bounded batch per loop turn; epoll stays readable while records remain */
	ring_buffer__consume(r->rb);
	if (r->count > 0)
		deliver(r);
}

static void on_timer(uv_timer_t *t)
{
	on_readable(&((struct reader *)t->data)->poll, 0, UV_READABLE);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct reader *r = h->data;
	if (--r->pending_closes > 0)
		return;
	ring_buffer__free(r->rb);
	free(r->data);
	free(r->ends);
	free(r);
}

static void do_close(struct reader *r)
{
	if (r->closed)
		return;
	r->closed = 1;
	uv_poll_stop(&r->poll);
	napi_delete_reference(r->env, r->callback);
	napi_delete_reference(r->env, r->self);
	r->pending_closes = r->timer_on ? 2 : 1;
	if (r->timer_on) {
		uv_timer_stop(&r->timer);
		uv_close((uv_handle_t *)&r->timer, on_poll_closed);
	}
	uv_close((uv_handle_t *)&r->poll, on_poll_closed);
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value thisv;
	struct reader *r;
	napi_get_cb_info(env, info, NULL, NULL, &thisv, NULL);
	if (napi_unwrap(env, thisv, (void **)&r) == napi_ok && r)
		do_close(r);
	return NULL;
}

static napi_value throw_err(napi_env env, const char *msg)
{
	napi_throw_error(env, NULL, msg);
	return NULL;
}

static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], obj, closefn;
	uint32_t poll_ms = 0;
	int32_t fd;
	uint32_t max_batch = DEFAULT_MAX_BATCH;
	napi_valuetype t;
	struct reader *r;
	uv_loop_t *loop;
	char msg[160];

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok)
		return throw_err(env, "open(mapFd, onRecords[, maxBatch]): mapFd must be a number");
	napi_typeof(env, argv[1], &t);
	if (t != napi_function)
		return throw_err(env, "open(mapFd, onRecords[, maxBatch]): onRecords must be a function");
	if (argc >= 3) {
		napi_typeof(env, argv[2], &t);
		if (t == napi_number)
			napi_get_value_uint32(env, argv[2], &max_batch);
	}
	if (max_batch == 0)
		max_batch = DEFAULT_MAX_BATCH;
	if (argc >= 4) {
		napi_typeof(env, argv[3], &t);
		if (t == napi_number)
			napi_get_value_uint32(env, argv[3], &poll_ms);
	}

	r = calloc(1, sizeof(*r));
	if (!r)
		return throw_err(env, "out of memory");
	r->env = env;
	r->max_batch = max_batch;
	r->ends = calloc(max_batch, sizeof(uint32_t));
	r->rb = ring_buffer__new(fd, on_sample, r, NULL);
	if (!r->rb || !r->ends) {
		snprintf(msg, sizeof(msg),
			 "ring_buffer__new(fd %d) failed: %s (is it a BPF_MAP_TYPE_RINGBUF fd?)", fd,
			 strerror(errno));
		if (r->rb)
			ring_buffer__free(r->rb);
		free(r->ends);
		free(r);
		return throw_err(env, msg);
	}
	napi_get_uv_event_loop(env, &loop);
	if (uv_poll_init(loop, &r->poll, ring_buffer__epoll_fd(r->rb)) != 0) {
		ring_buffer__free(r->rb);
		free(r->ends);
		free(r);
		return throw_err(env, "uv_poll_init on the ring buffer's epoll fd failed");
	}
	r->poll.data = r;
	napi_create_reference(env, argv[1], 1, &r->callback);
	napi_create_object(env, &obj);
	napi_wrap(env, obj, r, NULL, NULL, NULL);
	napi_create_reference(env, obj, 1, &r->self);
	napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_close, NULL, &closefn);
	napi_set_named_property(env, obj, "close", closefn);
	uv_poll_start(&r->poll, UV_READABLE, on_readable);
	if (poll_ms > 0) {
		uv_timer_init(loop, &r->timer);
		r->timer.data = r;
		r->timer_on = 1;
		uv_timer_start(&r->timer, on_timer, poll_ms, poll_ms);
		uv_unref((uv_handle_t *)&r->timer); /* the poll handle keeps the loop alive, not the timer */
	}
	return obj;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn);
	napi_set_named_property(env, exports, "open", fn);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
