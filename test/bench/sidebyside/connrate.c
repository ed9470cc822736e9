/*
 * connrate: new TCP connections per second between two hosts, and TCP request/response latency.
 *
 *   connrate server ADDR PORT            accept connections and close each at once
 *   connrate client ADDR PORT SECONDS    connect, wait for the server's close, close; repeat
 *   connrate echo ADDR PORT              echo every connection's bytes back, one connection at a time
 *   connrate pingpong ADDR PORT SECONDS  one connection: send a 14-byte message, wait for its echo; repeat
 *
 * The client prints one JSON line: {"connections":N,"seconds":S,"perSecond":R,"failures":F,"cpuSeconds":C},
 * C being the CPU time the client itself used in its loop (getrusage: user and system, which
 * includes the kernel's work on the packets it sends, softirq included unless the kernel accounts
 * irq time apart).
 * The server closes first, so TIME_WAIT stays on the server and the client never runs out of
 * ephemeral ports. Connect and read time out after a second, so a dropped SYN counts as a
 * failure instead of stalling the run. Sequential on purpose: the rate is the inverse of the cost of one connection
 * (handshake, first verdict, teardown), which is what a policy dataplane adds to.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return 0;
	}
	fprintf(stderr, "connrate: %s is not an IPv4 or IPv6 address\n", addr);
	return -1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int serve(const struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 4096) < 0) {
		perror("connrate server");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			perror("connrate accept");
	}
	return 0;
}

static int client(const struct sockaddr_storage *ss, socklen_t len, double seconds)
{
	long connections = 0, failures = 0;
	double cpu0 = cpu_s(), start = now_s(), end = start + seconds, t = start;
	char buf[64];

	while (t < end) {
		int fd = socket(ss->ss_family, SOCK_STREAM, 0);

		if (fd < 0) {
			perror("connrate socket");
			return 1;
		}
		/* A dropped SYN must not stall the loop: connect and read give up after a second. */
		struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };

		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (const struct sockaddr *)ss, len) == 0) {
			ssize_t n;

			while ((n = read(fd, buf, sizeof(buf))) > 0)
				;
			if (n == 0)
				connections++;
			else
				failures++;
		} else {
			failures++;
		}
		close(fd);
		t = now_s();
	}
	printf("{\"connections\":%ld,\"seconds\":%.6f,\"perSecond\":%.1f,\"failures\":%ld,\"cpuSeconds\":%.6f}\n",
	       connections, t - start, connections / (t - start), failures, cpu_s() - cpu0);
	return 0;
}

/*
 * Ping-pong: what sockperf's TCP ping-pong measures (14-byte messages, Nagle off, one-way latency
 * = round trip / 2, the first 400 ms of the run not counted), without sockperf's fixed two-second
 * sleep before every run. Prints {"samples":N,"p50":US,"p99":US} (nearest-rank percentiles, µs).
 */
#define MSG 14
#define WARMUP_S 0.4

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

static int echo(const struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);
	char buf[4096];

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 16) < 0) {
		perror("connrate echo");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);
		ssize_t n;

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, n) != n)
				break;
		close(c);
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double rank(const double *xs, long n, double p)
{
	long r = (long)(p / 100 * n + 0.999999) - 1;

	return xs[r < 0 ? 0 : r >= n ? n - 1 : r];
}

static int pingpong(const struct sockaddr_storage *ss, socklen_t len, double seconds)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);
	long cap = 1 << 22, n = 0;
	double *lat = malloc(cap * sizeof(double));
	char msg[MSG] = "weir-pingpong", buf[MSG];
	double start, warm, end, t0, t1;

	if (fd < 0 || !lat || connect(fd, (const struct sockaddr *)ss, len) < 0) {
		perror("connrate pingpong");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	start = now_s();
	warm = start + WARMUP_S;
	end = start + seconds;
	for (t0 = start; t0 < end; t0 = t1) {
		if (write(fd, msg, MSG) != MSG || read_full(fd, buf, MSG) < 0) {
			perror("connrate pingpong");
			return 1;
		}
		t1 = now_s();
		if (t0 >= warm && n < cap)
			lat[n++] = (t1 - t0) / 2 * 1e6;
	}
	close(fd);
	if (n == 0) {
		fprintf(stderr, "connrate pingpong: no message after the warm-up (run longer than %.1f s)\n", WARMUP_S);
		return 1;
	}
	qsort(lat, n, sizeof(double), cmp_double);
	printf("{\"samples\":%ld,\"p50\":%.3f,\"p99\":%.3f}\n", n, rank(lat, n, 50), rank(lat, n, 99));
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (argc >= 4 && strcmp(argv[1], "server") == 0) {
		if (parse_addr(argv[2], atoi(argv[3]), &ss, &len))
			return 2;
		return serve(&ss, len);
	}
	if (argc >= 5 && strcmp(argv[1], "client") == 0) {
		if (parse_addr(argv[2], atoi(argv[3]), &ss, &len))
			return 2;
		return client(&ss, len, atof(argv[4]));
	}
	if (argc >= 4 && strcmp(argv[1], "echo") == 0) {
		if (parse_addr(argv[2], atoi(argv[3]), &ss, &len))
			return 2;
		return echo(&ss, len);
	}
	if (argc >= 5 && strcmp(argv[1], "pingpong") == 0) {
		if (parse_addr(argv[2], atoi(argv[3]), &ss, &len))
			return 2;
		return pingpong(&ss, len, atof(argv[4]));
	}
	fprintf(stderr, "usage: connrate server|echo ADDR PORT | connrate client|pingpong ADDR PORT SECONDS\n");
	return 2;
}
