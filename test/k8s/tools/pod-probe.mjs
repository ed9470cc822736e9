// Runs inside a pod's network namespace: one TCP connection attempt per target.
// Prints one line per target: "<ip>:<port> ok" or "<ip>:<port> fail"; all at once, concurrently.
import { connect } from 'node:net';
const timeoutMs = Number(process.argv[2]);
const targets = process.argv.slice(3);
const results = await Promise.all(
  targets.map(
    (t) =>
      new Promise((resolve) => {
        const [ip, port] = [t.slice(0, t.lastIndexOf(':')), Number(t.slice(t.lastIndexOf(':') + 1))];
        const sock = connect({ host: ip, port });
        const done = (ok) => {
          clearTimeout(timer);
          sock.destroy();
          resolve(`${t} ${ok ? 'ok' : 'fail'}`);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        sock.once('data', (d) => done(d.toString().startsWith('hello')));
        sock.once('error', () => done(false));
      }),
  ),
);
process.stdout.write(results.join('\n') + '\n');
