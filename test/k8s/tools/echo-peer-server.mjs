// Runs inside a pod's network namespace: answers TCP and UDP on the given ports with
// "hello <name> from <address>\n", the address being the peer the pod saw (IPv4 and IPv6).
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const [name, ...ports] = process.argv.slice(2);
const peer = (a) => (a ?? '').replace(/^::ffff:/, '');
for (const port of ports.map(Number)) {
  createServer((sock) => {
    sock.on('error', () => {});
    sock.end(`hello ${name} from ${peer(sock.remoteAddress)}\n`);
  }).listen(port, '::');
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, rinfo) =>
    udp.send(`hello ${name} from ${peer(rinfo.address)}\n`, rinfo.port, rinfo.address),
  );
  udp.bind(port, '::');
}
process.stdout.write('listening\n');
