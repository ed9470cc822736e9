// Runs inside a pod's network namespace: answers TCP on the given ports.
// A connection gets "hello <name>\n" and then an echo of every line it sends.
import { createServer } from 'node:net';
const [name, ...ports] = process.argv.slice(2);
for (const port of ports) {
  createServer((sock) => {
    sock.on('error', () => {});
    sock.write(`hello ${name}\n`);
    sock.pipe(sock);
  }).listen(Number(port), '::'); // IPv4 and IPv6
}
process.stdout.write('listening\n');
