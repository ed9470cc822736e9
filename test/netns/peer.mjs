// Test peer run inside a pod namespace.
//   node peer.mjs serve <tcpPort> <udpPort>   echo server (TCP lines, UDP datagrams), prints "ready"
//   node peer.mjs tcp <host> <port> <ms>      one request; prints "ok <echo>" | "timeout" | "refused"
//   node peer.mjs udp <host> <port> <ms>      one datagram; prints "ok <echo>" | "timeout"
//   node peer.mjs hold <host> <port>          keeps a TCP connection: sends each stdin line, prints each echo
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

const [mode, a, b, c] = process.argv.slice(2);
const out = (s) => process.stdout.write(`${s}\n`);

if (mode === 'serve') {
  const tcp = net.createServer((s) => s.pipe(s));
  tcp.listen(Number(a), '::');
  const udp = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (m, r) => udp.send(m, r.port, r.address));
  udp.bind(Number(b), '::', () => out('ready'));
} else if (mode === 'tcp') {
  const s = net.connect({ host: a, port: Number(b) });
  const t = setTimeout(() => {
    out('timeout');
    process.exit(0);
  }, Number(c));
  s.on('connect', () => s.write('hello\n'));
  s.on('data', (d) => {
    clearTimeout(t);
    out(`ok ${d.toString().trim()}`);
    process.exit(0);
  });
  s.on('error', (e) => {
    clearTimeout(t);
    out(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`);
    process.exit(0);
  });
} else if (mode === 'udp') {
  const s = dgram.createSocket(a.includes(':') ? 'udp6' : 'udp4');
  const t = setTimeout(() => {
    out('timeout');
    process.exit(0);
  }, Number(c));
  s.on('message', (m) => {
    clearTimeout(t);
    out(`ok ${m.toString()}`);
    process.exit(0);
  });
  s.send('hello', Number(b), a);
} else if (mode === 'hold') {
  const s = net.connect({ host: a, port: Number(b) });
  s.on('connect', () => out('connected'));
  s.on('data', (d) =>
    d
      .toString()
      .split('\n')
      .filter(Boolean)
      .forEach((l) => out(`echo ${l}`)),
  );
  s.on('error', (e) => out(`error ${e.code}`));
  readline.createInterface({ input: process.stdin }).on('line', (l) => s.write(`${l}\n`));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
