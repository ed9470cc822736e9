/*
 * connrate: new TCP connections per second between two hosts.
 *
 *   connrate server ADDR PORT          accept connections and close each at once
 *   connrate client ADDR PORT SECONDS  connect, wait for the server's close, close; repeat
 *
 * The client prints one JSON line: {"connections":N,"seconds":S,"perSecond":R,"failures":F}.
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
	double start = now_s(), end = start + seconds, t = start;
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
	printf("{\"connections\":%ld,\"seconds\":%.6f,\"perSecond\":%.1f,\"failures\":%ld}\n", connections,
	       t - start, connections / (t - start), failures);
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
	fprintf(stderr, "usage: connrate server ADDR PORT | connrate client ADDR PORT SECONDS\n");
	return 2;
}
