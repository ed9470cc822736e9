#!/usr/bin/python3
"""
Packets and what an independent dissector (scapy) finds in them, for the
differential test of weir's packet parser (test/kernel/parser-diff.test.ts).

usage: parser-reference.py COUNT SEED OUT.jsonl

Generates COUNT packets (IPv4 with options, IPv6 extension chains of every
kind, order and length, TCP/UDP/SCTP/ICMP/ICMPv6, ICMP errors quoting all of
these, truncations at every byte, broken length and version fields) and writes
one JSON line per packet: {"hex": frame, "expect": {...}}. The expectation is
computed from the bytes alone: every header is dissected by scapy's own layer
class, and its size is the number of bytes scapy's fields consume (dissected
over zero padding, so a header that runs past the packet is seen as such).
The reference then classifies:

  (frames hold at least Ethernet and the fixed IP header: BPF_PROG_TEST_RUN takes no shorter ones)
  any header (or the 8-byte L4 header quoted in an ICMP
  error) reaching past the frame or past its IP packet's own length field  -> TRUNCATED
  IPv4 version != 4, IHL < 5, total length < IHL; IPv6 version != 6;
  TCP data offset < 5; AH payload length < 1 (shorter than its fixed fields) -> MALFORMED
  more than 6 IPv6 extension headers, or more than 384 bytes of them          -> MALFORMED
                                                            (weir's walk limit)
  ethertype other than IPv4, IPv6, ARP                                       -> UNSUPPORTED_L3

Otherwise the 5-tuple (ports of TCP/UDP/SCTP; ICMP echo id as the request's
source or the reply's destination "port"), fragment state and id, ICMP
type/code, the kind (ARP and ICMPv6 neighbour discovery/MLD: always; ICMP
errors: the quoted tuple) are what weir must report.
"""
import json
import random
import socket
import sys

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    ICMPv6EchoRequest,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

EXT_MAX = 6
EXT_BYTES = 384
PAD = b"\0" * 2200

# Routing headers are sized with scapy's generic length-prefixed layout (the destination-options
# class): its own Routing class dissects only type 0 address lists and fails on other lengths.
EXT_CLS = {0: IPv6ExtHdrHopByHop, 43: IPv6ExtHdrDestOpt, 60: IPv6ExtHdrDestOpt, 44: IPv6ExtHdrFragment, 51: AH}
ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}
ICMP6_ALWAYS = set(range(133, 138)) | {130, 131, 132, 143}


class Refused(Exception):
    def __init__(self, reason, limit=False):
        super().__init__(reason)
        self.reason = reason
        self.limit = limit  # refused only for weir's walk limit: scapy dissects it fine


def dissect(cls, b):
    """scapy's layer `cls` over `b`: (layer, bytes its fields consume)."""
    padded = b + PAD
    h = cls()
    rest = h.do_dissect(padded)  # the header's own fields only; what follows is not dissected
    return h, len(padded) - len(rest)


def header(cls, b, minimum):
    """A header that must lie whole inside `b` (the bytes up to its packet's end)."""
    if len(b) < minimum:
        raise Refused("TRUNCATED")
    h, size = dissect(cls, b)
    return h, size


def ipv6_exts(b, nh):
    """Walks extension headers in `b`; returns (upper protocol, offset after them, frag, frag_id)."""
    off, frag, frag_id, n = 0, "none", 0, 0
    while nh in EXT_CLS:
        if n == EXT_MAX:
            raise Refused("MALFORMED", limit=True)
        n += 1
        cls = EXT_CLS[nh]
        h, size = header(cls, b[off:], 2 if cls is not IPv6ExtHdrFragment else 8)
        if cls is AH and h.payloadlen < 1:
            raise Refused("MALFORMED")
        if off + size > len(b):
            raise Refused("TRUNCATED")
        off += size
        nh = h.nh
        if cls is IPv6ExtHdrFragment:
            frag_id = h.id
            if h.offset:
                return nh, off, "later", frag_id
            if h.m:
                frag = "first"
        if off > EXT_BYTES:
            raise Refused("MALFORMED", limit=True)
    return nh, off, frag, frag_id


def l4_ports(proto, b, quoted):
    """(sport, dport, tcp_flags, icmp_type, icmp_code, inner) of an L4 header in `b`."""
    if proto == 6:
        if quoted:
            if len(b) < 4:
                raise Refused("TRUNCATED")
            h, _ = dissect(TCP, b)
            return h.sport, h.dport, 0, 0, 0, None
        h, size = header(TCP, b, 20)
        if h.dataofs < 5:
            raise Refused("MALFORMED")
        if h.dataofs * 4 > len(b):
            raise Refused("TRUNCATED")
        return h.sport, h.dport, int(h.flags) & 0xFF, 0, 0, None  # weir keeps byte 13 (CWR..FIN), not NS
    if proto in (17, 132):
        need = 4 if quoted else (8 if proto == 17 else 12)
        h, _ = header(UDP if proto == 17 else SCTP, b, need)
        return h.sport, h.dport, 0, 0, 0, None
    if proto in (1, 58):
        # type, code, checksum, id, seq: ICMPv6's echo layout names the id whatever the type
        h, _ = header(ICMP if proto == 1 else ICMPv6EchoRequest, b, 8)
        t, c, ident = h.type, h.code, h.id
        echo_req, echo_rep = (8, 0) if proto == 1 else (128, 129)
        if t == echo_req:
            return ident, 0, 0, t, c, None
        if t == echo_rep:
            return 0, ident, 0, t, c, None
        if not quoted and t in (ICMP4_ERRORS if proto == 1 else ICMP6_ERRORS):
            return 0, 0, 0, t, c, quote(4 if proto == 1 else 6, b[8:])
        return 0, 0, 0, t, c, None
    return 0, 0, 0, 0, 0, None


def quote(family, b):
    """The tuple of the packet an ICMP error quotes (as far as the quote goes)."""
    if family == 4:
        ip, _ = header(IP, b, 20)
        if ip.version != 4 or ip.ihl < 5:
            raise Refused("MALFORMED")
        t = tup(4, ip.src, ip.dst, ip.proto)
        if ip.frag == 0:
            t["sport"], t["dport"] = l4_ports(ip.proto, b[ip.ihl * 4 :], True)[:2]
        return t
    ip6, _ = header(IPv6, b, 40)
    if ip6.version != 6:
        raise Refused("MALFORMED")
    nh, off, frag, _ = ipv6_exts(b[40:], ip6.nh)
    t = tup(6, ip6.src, ip6.dst, nh)
    if frag != "later":
        t["sport"], t["dport"] = l4_ports(nh, b[40 + off :], True)[:2]
    return t


def tup(family, src, dst, proto):
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    return {
        "family": family,
        "saddr": socket.inet_pton(af, src).hex(),
        "daddr": socket.inet_pton(af, dst).hex(),
        "proto": proto,
        "sport": 0,
        "dport": 0,
    }


def reference(frame):
    try:
        return classify(frame)
    except Refused as e:
        return {"reason": e.reason, "limit": e.limit}


def classify(frame):
    if len(frame) < 14:
        raise Refused("TRUNCATED")
    eth = Ether(frame[:14])
    if eth.type == 0x0806:
        return {"reason": "NONE", "kind": "always"}
    if eth.type not in (0x0800, 0x86DD):
        raise Refused("UNSUPPORTED_L3")
    b = frame[14:]
    out = {"reason": "NONE", "kind": "normal", "frag": "none", "frag_id": 0, "tcp_flags": 0, "icmp": [0, 0]}
    if eth.type == 0x0800:
        ip, _ = header(IP, b, 20)
        if ip.version != 4 or ip.ihl < 5 or ip.len < ip.ihl * 4:
            raise Refused("MALFORMED")
        if ip.ihl * 4 > len(b) or ip.len > len(b):
            raise Refused("TRUNCATED")
        out["t"] = tup(4, ip.src, ip.dst, ip.proto)
        if ip.frag:
            out.update(frag="later", frag_id=ip.id)
            return out
        if ip.flags.MF:
            out.update(frag="first", frag_id=ip.id)
        l4 = b[ip.ihl * 4 : ip.len]
        proto = ip.proto
    else:
        ip6, _ = header(IPv6, b, 40)
        if ip6.version != 6:
            raise Refused("MALFORMED")
        if 40 + ip6.plen > len(b):
            raise Refused("TRUNCATED")
        pkt = b[40 : 40 + ip6.plen]
        nh, off, frag, frag_id = ipv6_exts(pkt, ip6.nh)
        out["t"] = tup(6, ip6.src, ip6.dst, nh)
        if frag != "none":
            out.update(frag=frag, frag_id=frag_id)
        if frag == "later":
            return out
        l4 = pkt[off:]
        proto = nh
    sport, dport, flags, it, ic, inner = l4_ports(proto, l4, False)
    out["t"]["sport"], out["t"]["dport"] = sport, dport
    out["tcp_flags"] = flags
    if proto in (1, 58):
        out["icmp"] = [it, ic]
        if inner is not None:
            out["kind"] = "icmp_error"
            out["inner"] = inner
        elif proto == 58 and it in ICMP6_ALWAYS:
            out["kind"] = "always"
    return out


# ---------------------------------------------------------------- generator


def addr4(r):
    return "10.%d.%d.%d" % (r.randrange(256), r.randrange(256), r.randrange(1, 255))


def addr6(r):
    return "fd00:%x::%x:%x" % (r.randrange(65536), r.randrange(65536), r.randrange(65536))


def l4(r, proto, family, depth):
    if proto == 6:
        opts = b"\x01" * (4 * r.choice([0, 0, 0, 1, 3, 10]))
        return bytes(TCP(sport=r.randrange(65536), dport=r.randrange(65536), flags=r.randrange(256), options=[])) [:12] + bytes(
            [(5 + len(opts) // 4) << 4, r.randrange(256)]
        ) + b"\xff\xff\0\0\0\0" + opts + b"x" * r.randrange(20)
    if proto == 17:
        return bytes(UDP(sport=r.randrange(65536), dport=r.randrange(65536)) / Raw(b"u" * r.randrange(16)))
    if proto == 132:
        return bytes(SCTP(sport=r.randrange(65536), dport=r.randrange(65536))) + b"\x01\0\0\x14" + b"\0" * 16
    if proto in (1, 58):
        if proto == 1:
            t = r.choice([0, 8, 3, 4, 5, 11, 12, 13, 3, 11])
        else:
            t = r.choice([128, 129, 1, 2, 3, 4, 133, 134, 135, 136, 137, 130, 143, 1, 3, 200])
        hdr = bytes([t, r.randrange(4), 0, 0]) + r.randrange(65536).to_bytes(2, "big") + b"\0\1"
        errors = ICMP4_ERRORS if proto == 1 else ICMP6_ERRORS
        if t in errors and depth == 0:
            inner = packet(r, family, depth + 1)[14:]
            cut = r.choice([len(inner), len(inner), r.randrange(len(inner) + 1)])
            return hdr + inner[:cut]
        return hdr + b"p" * r.randrange(12)
    return b"z" * r.randrange(24)


def upper(r, family):
    return r.choice([6, 6, 17, 17, 132, 1 if family == 4 else 58, 1 if family == 4 else 58, 47, 50, 59])


def ext_header(r, kind, nh):
    if kind == 44:
        later = r.random() < 0.25
        off = r.randrange(1, 8000) if later else 0
        return bytes(IPv6ExtHdrFragment(nh=nh, offset=off, m=r.random() < 0.6, id=r.randrange(2**32)))
    if kind == 51:
        pl = r.choice([1, 2, 3, 4, 4, 4, 6, 10, 0])
        return bytes([nh, pl, 0, 0]) + r.randrange(2**32).to_bytes(4, "big") + b"\0\0\0\1" + b"\xa5" * max(0, (pl + 2) * 4 - 12)
    n = r.choice([0, 0, 1, 1, 2, 4, 8, 30, 60])
    body = bytes([nh, n]) + b"\0" * (n * 8 + 6)  # Pad1 options
    if kind == 43:
        body = bytes([nh, n, r.choice([0, 2, 4]), r.randrange(3)]) + b"\0" * (n * 8 + 4)
    return body


def packet(r, family=None, depth=0):
    if family is None:
        family = r.choice([4, 4, 6, 6, 6])
    if family == 4:
        proto = upper(r, 4)
        opt_words = r.choice([0, 0, 0, 1, 2, 5, 10])
        frag = r.random()
        ip = IP(
            src=addr4(r),
            dst=addr4(r),
            proto=proto,
            id=r.randrange(65536),
            flags="MF" if frag < 0.15 else 0,
            frag=r.randrange(1, 8000) if 0.15 <= frag < 0.25 else 0,
            options=[],
        )
        hdr = bytearray(bytes(ip / Raw(b"")))[:20]
        hdr[0] = 0x40 | (5 + opt_words)
        body = bytes(hdr) + (b"\x01" * (4 * opt_words - 1) + b"\0" if opt_words else b"") + l4(r, proto, 4, depth)
        body = bytearray(body)
        body[2:4] = len(body).to_bytes(2, "big")
        return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800)) + bytes(body)
    proto = upper(r, 6)
    chain = [r.choice([0, 43, 60, 44, 51]) for _ in range(r.choice([0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7]))]
    nhs = chain + [proto]
    exts = b"".join(ext_header(r, chain[i], nhs[i + 1]) for i in range(len(chain)))
    payload = exts + l4(r, proto, 6, depth)
    ip6 = IPv6(src=addr6(r), dst=addr6(r), nh=nhs[0], plen=len(payload), hlim=64)
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x86DD)) + bytes(ip6)[:40] + payload


def floor(frame):
    """The shortest frame BPF_PROG_TEST_RUN takes: Ethernet plus a whole fixed IP header."""
    et = int.from_bytes(frame[12:14], "big")
    return 54 if et == 0x86DD else 34 if et == 0x0800 else 14


def mutate(r, frame):
    c = r.random()
    b = bytearray(frame)
    lo = floor(frame)
    if c < 0.35:
        return bytes(frame)
    if c < 0.55:  # truncated at a random byte, length fields as they were
        return bytes(b[: r.randrange(lo, len(b) + 1)])
    if c < 0.7:  # truncated, with the IP length fields made to agree (the cut falls inside a header)
        n = r.randrange(lo, len(b) + 1)
        b = b[:n]
        et = int.from_bytes(frame[12:14], "big")
        if et == 0x0800 and n >= 34:
            b[16:18] = (n - 14).to_bytes(2, "big")
        elif et == 0x86DD and n >= 54:
            b[18:20] = (n - 54).to_bytes(2, "big")
        return bytes(b)
    if c < 0.8:  # trailing bytes beyond the IP packet (Ethernet padding)
        return bytes(b) + b"\0" * r.randrange(1, 20)
    if c < 0.9:  # a few bytes flipped
        for _ in range(r.randrange(1, 4)):
            if len(b) > 14:
                b[r.randrange(14, len(b))] = r.randrange(256)
        return bytes(b)
    # other ethertypes
    b[12:14] = r.choice([0x0806, 0x8100, 0x88CC, 0x0800, 0x86DD]).to_bytes(2, "big")
    return bytes(b[: max(len(b), floor(b))] + b"\0" * (floor(b) - len(b)))


def main():
    count, seed, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    r = random.Random(seed)
    with open(path, "w") as f:
        n = 0
        while n < count:
            base = packet(r)
            if len(base) > 1514:  # an Ethernet MTU; BPF_PROG_TEST_RUN takes up to about a page
                continue
            # every truncation length of some packets, random mutations of the others
            frames = [base[:i] for i in range(floor(base), len(base) + 1)] if r.random() < 0.003 else [mutate(r, base)]
            for fr in frames[: count - n]:
                f.write(json.dumps({"hex": fr.hex(), "expect": reference(fr)}) + "\n")
                n += 1


if __name__ == "__main__":
    main()
