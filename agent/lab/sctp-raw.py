#!/usr/bin/env python3
"""SCTP for lab pods on a kernel without SCTP sockets: raw IP packets of protocol 132.

Runs inside one pod's network namespace, started by the pod agent. It answers an INIT sent to
one of the pod's SCTP ports with an INIT-ACK (an ABORT for other ports, as an SCTP stack
would), and on request sends an INIT to a peer and reports whether an INIT-ACK came back.
Requests and answers are JSON lines on stdin/stdout:
  {"id": 1, "ip": "10.88.0.5", "port": 80, "timeout": 1.0}
  {"id": 1, "connected": true, "detail": "INIT-ACK"}
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time

IPPROTO_SCTP = 132
CHUNK_INIT, CHUNK_INIT_ACK, CHUNK_ABORT = 1, 2, 6
PARAM_STATE_COOKIE = 7


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def packet(sport, dport, vtag, chunks):
    body = struct.pack('!HHII', sport, dport, vtag, 0) + chunks
    crc = crc32c(body)
    # The checksum is stored in little-endian byte order (RFC 9260 appendix A).
    return body[:8] + struct.pack('<I', crc) + body[12:]


def init_chunk(chunk_type, tag, extra=b''):
    fixed = struct.pack('!IIHHI', tag, 65535, 10, 10, random.getrandbits(32))
    length = 4 + len(fixed) + len(extra)
    return struct.pack('!BBH', chunk_type, 0, length) + fixed + extra


def parse(data):
    """Returns (sport, dport, vtag, chunk_type, initiate_tag) or None."""
    if len(data) < 16:
        return None
    sport, dport, vtag = struct.unpack('!HHI', data[:8])
    chunk_type = data[12]
    tag = struct.unpack('!I', data[16:20])[0] if len(data) >= 20 else 0
    return sport, dport, vtag, chunk_type, tag


class Helper:
    def __init__(self, ports):
        self.ports = set(ports)
        self.sock4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
        self.sock6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_SCTP)
        self.pending = {}  # (family, peer ip, peer port, our port) -> (id, tag, deadline)

    def send(self, family, ip, data):
        sock = self.sock4 if family == 4 else self.sock6
        sock.sendto(data, (ip, 0))

    def answer(self, out, req_id, connected, detail):
        out.write(json.dumps({'id': req_id, 'connected': connected, 'detail': detail}) + '\n')
        out.flush()

    def probe(self, req):
        ip, port = req['ip'], int(req['port'])
        family = 6 if ':' in ip else 4
        sport = random.randint(32768, 60999)
        tag = random.getrandbits(32) or 1
        key = (family, ip, port, sport)
        self.pending[key] = (req['id'], tag, time.monotonic() + float(req.get('timeout', 1.0)))
        self.send(family, ip, packet(sport, port, 0, init_chunk(CHUNK_INIT, tag)))

    def receive(self, family, out):
        sock = self.sock4 if family == 4 else self.sock6
        data, addr = sock.recvfrom(65535)
        if family == 4:
            data = data[(data[0] & 0x0F) * 4:]
        src = addr[0]
        parsed = parse(data)
        if parsed is None:
            return
        sport, dport, vtag, chunk_type, tag = parsed
        if chunk_type == CHUNK_INIT:
            if dport in self.ports:
                cookie = struct.pack('!HH', PARAM_STATE_COOKIE, 12) + os.urandom(8)
                reply = init_chunk(CHUNK_INIT_ACK, random.getrandbits(32) or 1, cookie)
            else:
                reply = struct.pack('!BBH', CHUNK_ABORT, 1, 4)
            self.send(family, src, packet(dport, sport, tag, reply))
            return
        key = (family, src, sport, dport)
        pending = self.pending.get(key)
        if pending is None or vtag != pending[1]:
            return
        del self.pending[key]
        if chunk_type == CHUNK_INIT_ACK:
            self.answer(out, pending[0], True, 'INIT-ACK')
        elif chunk_type == CHUNK_ABORT:
            self.answer(out, pending[0], False, 'ABORT')

    def expire(self, out):
        now = time.monotonic()
        for key, (req_id, _tag, deadline) in list(self.pending.items()):
            if deadline <= now:
                del self.pending[key]
                self.answer(out, req_id, False, 'timeout')

    def loop(self):
        out = sys.stdout
        out.write(json.dumps({'ready': True}) + '\n')
        out.flush()
        stdin = sys.stdin.buffer
        buf = b''
        while True:
            deadlines = [p[2] for p in self.pending.values()]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready, _, _ = select.select([self.sock4, self.sock6, stdin], [], [], wait)
            for r in ready:
                if r is stdin:
                    chunk = os.read(stdin.fileno(), 65536)
                    if not chunk:
                        return
                    buf += chunk
                    while b'\n' in buf:
                        line, buf = buf.split(b'\n', 1)
                        if line.strip():
                            self.probe(json.loads(line))
                else:
                    self.receive(4 if r is self.sock4 else 6, out)
            self.expire(out)


if __name__ == '__main__':
    Helper([int(p) for p in sys.argv[1:]]).loop()
