// Runs inside a pod's network namespace: keeps one TCP connection to ip:port and sends a line every
// intervalMs; prints "echo <n>" for every echoed line and "closed" when the connection ends.
import { connect } from 'node:net';
const [ip, port, intervalMs] = process.argv.slice(2);
const sock = connect({ host: ip, port: Number(port) });
let n = 0;
let buf = '';
sock.on('connect', () => {
  setInterval(() => sock.write(`${n++}\n`), Number(intervalMs));
});
sock.on('data', (d) => {
  buf += d.toString();
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    process.stdout.write(line.startsWith('hello') ? 'connected\n' : `echo ${line}\n`);
  }
});
sock.on('error', (e) => process.stdout.write(`error ${e.code}\n`));
sock.on('close', () => {
  process.stdout.write('closed\n');
  process.exit(0);
});
