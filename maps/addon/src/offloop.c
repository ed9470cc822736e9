/*
 * weir off-loop HTTP server: the node agent's health, status and metrics servers on one native
 * thread, so they answer while the JavaScript main loop is busy (a large policy compiling, a full
 * resync) without a worker thread's V8 isolate (about 10 MiB of RSS). agent/offloop.ts is its only
 * user and documents the behaviour; this file serves HTTP/1.1 GET requests (keep-alive, pipelined
 * requests one after another, `Connection: close`, HTTP/1.0) and nothing else.
 *
 *   const h = host((server, id, path) => {...});     // asks go to the main loop
 *   const [server, port] = listen(h, tcpHost, port, socketPath, paths, kinds, notFoundCode,
 *                                 notFoundType, notFoundBody, deadlineMs, stallLimitMs, stalledBody);
 *   answer(h, server, id, path, code, contentType, body);  // id 0: a publication
 *   closeServer(h, server);                           // frees the port; its connections end
 *   closeHost(h);                                     // ends the thread
 *
 * The thread owns the sockets; the main thread takes the host's lock to hand over answers and
 * servers, and wakes the thread through an eventfd. Questions go to the main loop through a
 * thread-safe function (never blocking the thread). A listening error is thrown at once with
 * its errno name as `code` (EADDRINUSE).
 */
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX	   8192	 /* request line and headers; larger gets 431 */
#define CONNS_MAX	   256	 /* per server; more wait in the listen backlog */
#define KEEPALIVE_MS	   5000	 /* an idle connection ends after this (as Node's http) */
#define HEADERS_TIMEOUT_MS 10000 /* a request's headers must be complete within this */
#define WRITE_TIMEOUT_MS   30000 /* a client that reads nothing for this long is dropped */
#define LINGER_MS	   2000
#define THREAD_STACK	   (256 * 1024)
#define KIND_PUBLISHED	   0
#define KIND_ASK	   1

/* LINGERING: answered and shut for writing; what the client still sends is read and dropped
 * until it closes (or LINGER_MS), so the answer is not lost to a reset for unread input. */
enum conn_state { READING, WAITING, WRITING, LINGERING };

struct answer {
	int code;
	char *ctype;
	char *body;
	size_t len;
	int64_t at; /* ms, monotonic */
};

struct route {
	char *path;
	int kind;
	struct answer *last;
	uint32_t asking; /* the question outstanding for this path, 0 when none */
};

struct conn {
	int fd;
	enum conn_state state;
	char in[REQUEST_MAX];
	size_t in_len;
	size_t consumed; /* bytes of `in` the request being served took */
	char *out;
	size_t out_len, out_off;
	int close_after;
	int keep_alive; /* of the request being served */
	int eof;	/* the client sent all it will send */
	struct route *route;
	uint32_t question;
	int64_t deadline; /* WAITING: when the last answer is served instead; else the timeout */
	struct conn *next;
};

struct server {
	uint32_t id;
	int lfd;
	struct route *routes;
	int nroutes;
	struct answer not_found;
	int64_t deadline_ms, stall_ms;
	char *stalled;
	int64_t published_at;
	struct conn *conns;
	int nconns;
	int closing, closed;
	struct server *next;
};

struct host {
	pthread_t thread;
	int thread_on;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int efd;
	int quit;
	napi_threadsafe_function tsfn;
	struct server *servers;
	uint32_t next_server, next_question;
};

struct ask {
	uint32_t server, id;
	char *path;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct host *h)
{
	uint64_t one = 1;
	ssize_t n = write(h->efd, &one, sizeof(one));
	(void)n;
}

static void answer_free(struct answer *a)
{
	if (!a)
		return;
	free(a->ctype);
	free(a->body);
	free(a);
}

static const char *reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

/* Puts the response in c->out and turns the connection to writing; age < 0: no age header. */
static void respond(struct conn *c, int code, const char *ctype, const char *body, size_t len, int64_t age)
{
	char head[512], agehdr[64] = "", date[64] = "";
	int n;
	time_t t = time(NULL);
	struct tm tm;
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	if (gmtime_r(&t, &tm)) /* the names in English whatever the locale (RFC 9110's IMF-fixdate) */
		snprintf(date, sizeof(date), "%s, %02d %s %d %02d:%02d:%02d GMT", days[tm.tm_wday],
			 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (age >= 0)
		snprintf(agehdr, sizeof(agehdr), "X-Weir-Answer-Age-Ms: %lld\r\n", (long long)age);
	if (!c->keep_alive)
		c->close_after = 1;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nCache-Control: "
		     "no-store\r\n%sContent-Length: "
		     "%zu\r\nConnection: %s\r\n\r\n",
		     code, reason(code), date, ctype, agehdr, len, c->close_after ? "close" : "keep-alive");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		c->close_after = 1;
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n");
		len = 0;
	}
	free(c->out);
	c->out = malloc((size_t)n + len);
	if (!c->out) { /* no memory: end the connection, which answers nothing */
		c->out_len = c->out_off = 0;
		c->close_after = 1;
		c->state = WRITING;
		return;
	}
	memcpy(c->out, head, (size_t)n);
	memcpy(c->out + n, body, len);
	c->out_len = (size_t)n + len;
	c->out_off = 0;
	c->state = WRITING;
	c->deadline = now_ms() + WRITE_TIMEOUT_MS;
}

static void respond_answer(struct conn *c, const struct answer *a, int64_t age)
{
	respond(c, a->code ? a->code : 200, a->ctype, a->body, a->len, age);
}

static void respond_text(struct conn *c, int code, const char *body)
{
	respond(c, code, "text/plain; charset=utf-8", body, strlen(body), -1);
}

static void ask_main_loop(struct host *h, struct server *s, struct route *r)
{
	struct ask *a = malloc(sizeof(*a));
	if (a)
		a->path = strdup(r->path);
	if (a && a->path) {
		a->server = s->id;
		a->id = r->asking;
		if (napi_call_threadsafe_function(h->tsfn, a, napi_tsfn_nonblocking) == napi_ok)
			return;
		free(a->path);
	}
	free(a);
	r->asking = 0; /* not asked: the request gets the last answer at the deadline, the next one asks */
}

/* Has the header `name` (case-insensitive) a value containing `token`? */
static int header_has(const char *headers, const char *name, const char *token)
{
	size_t nl = strlen(name), tl = strlen(token);
	for (const char *p = headers; p && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
		if (strncasecmp(p, name, nl) || p[nl] != ':')
			continue;
		const char *end = strstr(p, "\r\n");
		if (!end)
			end = p + strlen(p);
		for (const char *v = p + nl + 1; v + tl <= end; v++)
			if (!strncasecmp(v, token, tl))
				return 1;
	}
	return 0;
}

/* The value of the header `name` (the first one), spaces before it skipped; NULL when absent. */
static const char *header_value(const char *headers, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = headers; p && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL)
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	return NULL;
}

/* Does the request come with a body (which is never read)? */
static int has_body(const char *headers)
{
	const char *value = header_value(headers, "content-length"), *p = value;
	if (header_value(headers, "transfer-encoding"))
		return 1;
	if (!value)
		return 0;
	while (*p == '0')
		p++;
	/* only zeros (at least one) is no body; anything else, even malformed, is one */
	return p == value || !(*p == '\0' || *p == '\r' || *p == ' ' || *p == '\t');
}

/* Serves the request at the head of c->in if it is complete. */
static void handle_request(struct host *h, struct server *s, struct conn *c)
{
	char *end, *line_end, *sp1, *sp2, *target, *q;
	end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (!end) {
		if (c->in_len == sizeof(c->in)) {
			c->keep_alive = 0;
			respond_text(c, 431, "request headers too large\n");
		}
		return;
	}
	if (memchr(c->in, '\0', (size_t)(end - c->in))) {
		c->keep_alive = 0;
		c->consumed = c->in_len;
		respond_text(c, 400, "bad request\n");
		return;
	}
	*end = '\0'; /* the request line and headers are now one C string */
	c->consumed = (size_t)(end - c->in) + 4;
	line_end = strstr(c->in, "\r\n");
	if (line_end)
		*line_end = '\0';
	sp1 = strchr(c->in, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7)) {
		c->keep_alive = 0;
		respond_text(c, 400, "bad request\n");
		return;
	}
	*sp1 = *sp2 = '\0';
	const char *headers = line_end ? line_end + 2 : "";
	int http10 = !strcmp(sp2 + 1, "HTTP/1.0");
	c->keep_alive = c->eof	 ? 0
			: http10 ? header_has(headers, "connection", "keep-alive")
				 : !header_has(headers, "connection", "close");
	/* A request with a body: answered, then the connection ends (the body is never read). */
	if (has_body(headers))
		c->keep_alive = 0;
	target = sp1 + 1;
	if (!strncasecmp(target, "http://", 7)) { /* absolute form: the path after the authority */
		target = strchr(target + 7, '/');
		if (!target)
			target = "/";
	}
	q = strpbrk(target, "?#");
	if (q)
		*q = '\0';

	struct route *r = NULL;
	if (!strcmp(c->in, "GET"))
		for (int i = 0; i < s->nroutes; i++)
			if (!strcmp(s->routes[i].path, target))
				r = &s->routes[i];
	if (!r) {
		respond(c, 404, s->not_found.ctype, s->not_found.body, s->not_found.len, -1);
		return;
	}
	int64_t now = now_ms();
	if (r->kind == KIND_PUBLISHED) {
		int64_t stalled = now - s->published_at;
		if (s->stall_ms && stalled > s->stall_ms) {
			char body[1024], secs[32];
			const char *mark = strstr(s->stalled, "{s}");
			snprintf(secs, sizeof(secs), "%lld", (long long)((stalled + 500) / 1000));
			if (mark)
				snprintf(body, sizeof(body), "%.*s%s%s", (int)(mark - s->stalled), s->stalled,
					 secs, mark + 3);
			else
				snprintf(body, sizeof(body), "%s", s->stalled);
			respond_text(c, 503, body);
		} else if (r->last) {
			respond_answer(c, r->last, -1);
		} else {
			respond_text(c, 503, "starting\n");
		}
		return;
	}
	/* One question per path at a time: requests that come while the main loop computes an answer
	 * wait for that answer (or the deadline), so a busy main loop never gets a backlog. */
	c->state = WAITING;
	c->route = r;
	c->deadline = now + s->deadline_ms;
	if (!r->asking) {
		if (++h->next_question == 0)
			h->next_question = 1;
		r->asking = h->next_question;
		ask_main_loop(h, s, r);
	}
	c->question = r->asking;
}

static void conn_close(struct server *s, struct conn *c)
{
	struct conn **p = &s->conns;
	while (*p && *p != c)
		p = &(*p)->next;
	if (*p)
		*p = c->next;
	close(c->fd);
	free(c->out);
	free(c);
	s->nconns--;
}

/* Reads what the client sent; returns 0 when the connection ended. */
static int conn_read(struct host *h, struct server *s, struct conn *c)
{
	for (;;) {
		if (c->in_len == sizeof(c->in))
			break;
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n == 0) {
			c->eof = 1; /* a request sent before the end is still answered */
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return 0;
		}
		c->in_len += (size_t)n;
	}
	handle_request(h, s, c);
	return !(c->eof && c->state == READING);
}

/* Reads and drops what a lingering client sends; 0 once it has closed. */
static int drain(struct conn *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
}

/* Writes the response; once written, the next request (pipelined) is served. 0: ended. */
static int conn_write(struct host *h, struct server *s, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return 0;
		}
		c->out_off += (size_t)n;
	}
	if (c->close_after) {
		shutdown(c->fd, SHUT_WR);
		c->state = LINGERING;
		c->deadline = now_ms() + LINGER_MS;
		return 1;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
	c->in_len -= c->consumed;
	c->consumed = 0;
	c->state = READING;
	c->route = NULL;
	c->deadline = now_ms() + (c->in_len ? HEADERS_TIMEOUT_MS : KEEPALIVE_MS);
	if (c->in_len)
		handle_request(h, s, c);
	if (c->state == WRITING)
		return conn_write(h, s, c);
	return 1;
}

static void accept_all(struct server *s)
{
	while (s->nconns < CONNS_MAX) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->state = READING;
		c->deadline = now_ms() + HEADERS_TIMEOUT_MS;
		c->next = s->conns;
		s->conns = c;
		s->nconns++;
	}
}

static void server_free(struct server *s)
{
	while (s->conns)
		conn_close(s, s->conns);
	if (s->lfd >= 0)
		close(s->lfd);
	for (int i = 0; i < s->nroutes; i++) {
		free(s->routes[i].path);
		answer_free(s->routes[i].last);
	}
	free(s->routes);
	free(s->not_found.ctype);
	free(s->not_found.body);
	free(s->stalled);
	free(s);
}

static void *run(void *arg)
{
	struct host *h = arg;
	struct pollfd *fds = NULL;
	struct server **srvs = NULL;
	struct conn **conns = NULL; /* NULL: the server's listening socket */
	size_t cap = 0;

	pthread_mutex_lock(&h->mu);
	while (!h->quit) {
		int64_t now = now_ms(), next = now + 60000;
		size_t n = 0, want = 1;
		/* servers being closed: their port and connections end here, on the thread that owns them */
		for (struct server **p = &h->servers; *p;) {
			struct server *s = *p;
			if (s->closing) {
				*p = s->next;
				server_free(s);
				continue;
			}
			want += 1 + (size_t)s->nconns;
			p = &s->next;
		}
		pthread_cond_broadcast(&h->cond);
		for (struct server *s = h->servers; s; s = s->next)
			for (struct conn *c = s->conns, *nc; c; c = nc) {
				nc = c->next;
				if (c->deadline > now) {
					if (c->deadline < next)
						next = c->deadline;
					continue;
				}
				if (c->state != WAITING) { /* idle, slow or not reading: ends */
					conn_close(s, c);
					continue;
				}
				if (c->route->last) { /* the deadline passed: the last answer, with its age */
					respond_answer(c, c->route->last, now - c->route->last->at);
					if (!conn_write(h, s, c))
						conn_close(s, c);
				} else {
					c->deadline =
						INT64_MAX; /* nothing to serve yet: waits for the answer */
				}
			}
		if (want > cap) {
			struct pollfd *f = realloc(fds, want * sizeof(*fds));
			if (f)
				fds = f;
			struct server **sv = realloc(srvs, want * sizeof(*srvs));
			if (sv)
				srvs = sv;
			struct conn **cv = realloc(conns, want * sizeof(*conns));
			if (cv)
				conns = cv;
			if (f && sv && cv)
				cap = want;
		}
		if (!cap) { /* no memory for the poll set: try again shortly */
			pthread_mutex_unlock(&h->mu);
			usleep(100000);
			pthread_mutex_lock(&h->mu);
			continue;
		}
		fds[n++] = (struct pollfd){.fd = h->efd, .events = POLLIN};
		for (struct server *s = h->servers; s && n < cap; s = s->next) {
			srvs[n] = s;
			conns[n] = NULL;
			fds[n++] =
				(struct pollfd){.fd = s->nconns < CONNS_MAX ? s->lfd : -1, .events = POLLIN};
			for (struct conn *c = s->conns; c && n < cap; c = c->next) {
				short ev = c->state == WRITING ? POLLOUT : c->state == WAITING ? 0 : POLLIN;
				srvs[n] = s;
				conns[n] = c;
				fds[n++] = (struct pollfd){.fd = c->fd, .events = ev};
			}
		}
		pthread_mutex_unlock(&h->mu);
		int timeout = next - now > 60000 ? 60000 : (int)(next - now);
		int ready = poll(fds, n, timeout < 0 ? 0 : timeout);
		pthread_mutex_lock(&h->mu);
		if (ready <= 0)
			continue;
		if (fds[0].revents) {
			uint64_t v;
			ssize_t r = read(h->efd, &v, sizeof(v));
			(void)r;
		}
		/* These stay valid: only this thread frees servers and connections. */
		for (size_t i = 1; i < n; i++) {
			struct server *s = srvs[i];
			struct conn *c = conns[i];
			if (!fds[i].revents || s->closing)
				continue;
			if (!c) {
				accept_all(s);
				continue;
			}
			int alive = 1;
			if (fds[i].revents & (POLLERR | POLLNVAL))
				alive = 0;
			else if (c->state == LINGERING)
				alive = drain(c);
			else if (c->state == READING && (fds[i].revents & (POLLIN | POLLHUP)))
				alive = conn_read(h, s, c);
			else if (c->state == WAITING && (fds[i].revents & POLLHUP))
				alive = 0;
			if (alive && c->state == WRITING)
				alive = conn_write(h, s, c);
			if (!alive)
				conn_close(s, c);
		}
	}
	while (h->servers) {
		struct server *s = h->servers;
		h->servers = s->next;
		server_free(s);
	}
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	free(fds);
	free(srvs);
	free(conns);
	return NULL;
}

/* ---- the JavaScript side ---------------------------------------------------------------- */

static napi_value throw_err(napi_env env, const char *code, const char *msg)
{
	napi_throw_error(env, code, msg);
	return NULL;
}

static char *get_string(napi_env env, napi_value v, size_t *len_out)
{
	size_t len;
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
		return NULL;
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	napi_get_value_string_utf8(env, v, s, len + 1, &len);
	if (len_out)
		*len_out = len;
	return s;
}

static struct host *get_host(napi_env env, napi_value v)
{
	struct host *h = NULL;
	if (napi_get_value_external(env, v, (void **)&h) != napi_ok)
		return NULL;
	return h;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data)
{
	struct ask *a = data;
	(void)context;
	if (env && cb) {
		napi_value argv[3], undef;
		napi_create_uint32(env, a->server, &argv[0]);
		napi_create_uint32(env, a->id, &argv[1]);
		napi_create_string_utf8(env, a->path, NAPI_AUTO_LENGTH, &argv[2]);
		napi_get_undefined(env, &undef);
		napi_call_function(env, undef, cb, 3, argv, NULL);
	}
	free(a->path);
	free(a);
}

static void host_stop(struct host *h)
{
	if (!h->thread_on)
		return;
	pthread_mutex_lock(&h->mu);
	h->quit = 1;
	pthread_mutex_unlock(&h->mu);
	wake(h);
	pthread_join(h->thread, NULL);
	h->thread_on = 0;
}

static void host_finalize(napi_env env, void *data, void *hint)
{
	struct host *h = data;
	(void)env;
	(void)hint;
	host_stop(h);
	close(h->efd);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cond);
	free(h);
}

static napi_value js_host(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], name, ext;
	napi_valuetype t;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function)
		return throw_err(env, NULL, "host(onAsk): onAsk must be a function");
	struct host *h = calloc(1, sizeof(*h));
	if (!h)
		return throw_err(env, NULL, "out of memory");
	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	napi_create_string_utf8(env, "weir off-loop ask", NAPI_AUTO_LENGTH, &name);
	if (h->efd < 0 || napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL,
							  call_js, &h->tsfn) != napi_ok) {
		if (h->efd >= 0)
			close(h->efd);
		free(h);
		return throw_err(env, NULL, "cannot create the off-loop host");
	}
	/* The asks never keep the process alive on their own (as an unref'd worker). */
	napi_unref_threadsafe_function(env, h->tsfn);
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the main thread */
	int err = pthread_create(&h->thread, &attr, run, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
		close(h->efd);
		free(h);
		return throw_err(env, NULL, "cannot start the off-loop thread");
	}
	h->thread_on = 1;
	pthread_setname_np(h->thread, "weir-offloop");
	napi_create_external(env, h, host_finalize, NULL, &ext);
	return ext;
}

static const char *errno_code(int e)
{
	switch (e) {
	case EADDRINUSE:
		return "EADDRINUSE";
	case EACCES:
		return "EACCES";
	case EADDRNOTAVAIL:
		return "EADDRNOTAVAIL";
	default:
		return "ELISTEN";
	}
}

/* A listening socket on host:port (port 0: any) or on a unix socket path; -errno on failure. */
static int open_listener(const char *host, uint32_t port, const char *socket_path, uint32_t *bound)
{
	int fd, one = 1;
	*bound = 0;
	if (socket_path) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(socket_path) >= sizeof(sun.sun_path))
			return -ENAMETOOLONG;
		strcpy(sun.sun_path, socket_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 511)) {
			int e = errno;
			close(fd);
			return -e;
		}
		return fd;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res;
	char svc[16];
	snprintf(svc, sizeof(svc), "%u", port);
	int gai = getaddrinfo(host, svc, &hints, &res);
	if (gai)
		return -EADDRNOTAVAIL;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		freeaddrinfo(res);
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 511)) {
		int e = errno;
		freeaddrinfo(res);
		close(fd);
		return -e;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
		*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static napi_value js_listen(napi_env env, napi_callback_info info)
{
	size_t argc = 12;
	napi_value argv[12], out, v;
	napi_valuetype t;
	uint32_t port = 0, nroutes = 0, nf_code = 404, deadline = 250, stall = 0, bound = 0;
	char *tcp_host = NULL, *socket_path = NULL;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct host *h = argc == 12 ? get_host(env, argv[0]) : NULL;
	if (!h)
		return throw_err(env, NULL, "listen: bad arguments");
	napi_typeof(env, argv[1], &t);
	if (t == napi_string)
		tcp_host = get_string(env, argv[1], NULL);
	napi_get_value_uint32(env, argv[2], &port);
	napi_typeof(env, argv[3], &t);
	if (t == napi_string)
		socket_path = get_string(env, argv[3], NULL);
	napi_get_array_length(env, argv[4], &nroutes);
	napi_get_value_uint32(env, argv[6], &nf_code);
	napi_get_value_uint32(env, argv[9], &deadline);
	napi_get_value_uint32(env, argv[10], &stall);

	struct server *s = calloc(1, sizeof(*s));
	if (!s)
		return throw_err(env, NULL, "out of memory");
	s->lfd = -1;
	s->routes = calloc(nroutes ? nroutes : 1, sizeof(*s->routes));
	s->nroutes = (int)nroutes;
	for (uint32_t i = 0; s->routes && i < nroutes; i++) {
		uint32_t kind = 0;
		napi_get_element(env, argv[4], i, &v);
		s->routes[i].path = get_string(env, v, NULL);
		napi_get_element(env, argv[5], i, &v);
		napi_get_value_uint32(env, v, &kind);
		s->routes[i].kind = kind == KIND_ASK ? KIND_ASK : KIND_PUBLISHED;
		if (!s->routes[i].path)
			s->nroutes = (int)i;
	}
	s->not_found.code = (int)nf_code;
	s->not_found.ctype = get_string(env, argv[7], NULL);
	s->not_found.body = get_string(env, argv[8], &s->not_found.len);
	s->deadline_ms = deadline;
	s->stall_ms = stall;
	s->stalled = get_string(env, argv[11], NULL);
	s->published_at = now_ms();
	if (!s->routes || s->nroutes != (int)nroutes || !s->not_found.ctype || !s->not_found.body ||
	    !s->stalled) {
		free(tcp_host);
		free(socket_path);
		server_free(s);
		return throw_err(env, NULL, "out of memory");
	}
	int fd = open_listener(tcp_host ? tcp_host : "0.0.0.0", port, socket_path, &bound);
	free(tcp_host);
	free(socket_path);
	if (fd < 0) {
		server_free(s);
		return throw_err(env, errno_code(-fd), strerror(-fd));
	}
	s->lfd = fd;
	pthread_mutex_lock(&h->mu);
	s->id = ++h->next_server;
	s->next = h->servers;
	h->servers = s;
	pthread_mutex_unlock(&h->mu);
	wake(h);
	napi_create_array_with_length(env, 2, &out);
	napi_create_uint32(env, s->id, &v);
	napi_set_element(env, out, 0, v);
	napi_create_uint32(env, bound, &v);
	napi_set_element(env, out, 1, v);
	return out;
}

static napi_value js_answer(napi_env env, napi_callback_info info)
{
	size_t argc = 7;
	napi_value argv[7];
	uint32_t server = 0, id = 0, code = 200;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct host *h = argc == 7 ? get_host(env, argv[0]) : NULL;
	if (!h)
		return throw_err(env, NULL, "answer: bad arguments");
	napi_get_value_uint32(env, argv[1], &server);
	napi_get_value_uint32(env, argv[2], &id);
	napi_get_value_uint32(env, argv[4], &code);
	char *path = get_string(env, argv[3], NULL);
	struct answer *a = calloc(1, sizeof(*a));
	if (a) {
		a->code = (int)code;
		a->ctype = get_string(env, argv[5], NULL);
		a->body = get_string(env, argv[6], &a->len);
	}
	if (!path || !a || !a->ctype || !a->body) {
		free(path);
		answer_free(a);
		return throw_err(env, NULL, "out of memory");
	}
	pthread_mutex_lock(&h->mu);
	struct server *s = h->servers;
	while (s && s->id != server)
		s = s->next;
	struct route *r = NULL;
	for (int i = 0; s && i < s->nroutes; i++)
		if (!strcmp(s->routes[i].path, path))
			r = &s->routes[i];
	if (s && r && !s->closing) {
		int64_t now = now_ms();
		a->at = now;
		if (id == 0)
			s->published_at = now;
		for (struct conn *c = s->conns; id && c; c = c->next)
			if (c->state == WAITING && c->question == id)
				respond_answer(c, a, -1);
		if (id && r->asking == id)
			r->asking = 0;
		/* Kept for later requests: what succeeded, or anything a published route publishes. */
		if (a->code == 0 || a->code == 200 || r->kind == KIND_PUBLISHED) {
			answer_free(r->last);
			r->last = a;
			a = NULL;
		}
	}
	pthread_mutex_unlock(&h->mu);
	answer_free(a);
	free(path);
	wake(h);
	return NULL;
}

static napi_value js_close_server(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	uint32_t server = 0;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct host *h = argc == 2 ? get_host(env, argv[0]) : NULL;
	if (!h)
		return throw_err(env, NULL, "closeServer: bad arguments");
	napi_get_value_uint32(env, argv[1], &server);
	pthread_mutex_lock(&h->mu);
	for (struct server *s = h->servers; s; s = s->next)
		if (s->id == server)
			s->closing = 1;
	wake(h);
	/* The thread frees it (and closes its port) on its next turn; wait for that. */
	for (;;) {
		struct server *s = h->servers;
		while (s && s->id != server)
			s = s->next;
		if (!s || !h->thread_on)
			break;
		pthread_cond_wait(&h->cond, &h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static napi_value js_close_host(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct host *h = argc == 1 ? get_host(env, argv[0]) : NULL;
	if (!h)
		return throw_err(env, NULL, "closeHost: bad arguments");
	if (h->thread_on) {
		host_stop(h);
		napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
	}
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"host", NULL, js_host, NULL, NULL, NULL, napi_enumerable, NULL},
		{"listen", NULL, js_listen, NULL, NULL, NULL, napi_enumerable, NULL},
		{"answer", NULL, js_answer, NULL, NULL, NULL, napi_enumerable, NULL},
		{"closeServer", NULL, js_close_server, NULL, NULL, NULL, napi_enumerable, NULL},
		{"closeHost", NULL, js_close_host, NULL, NULL, NULL, napi_enumerable, NULL},
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
