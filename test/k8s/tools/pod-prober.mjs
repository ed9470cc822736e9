// Runs inside a pod's network namespace for the whole test: reads "<id> <ip>:<port> <timeoutMs>" lines
// on stdin, tries one TCP connection each (concurrently), answers "<id> ok" (connected and greeted)
// or "<id> fail" on stdout. Saves starting a process per probe.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
createInterface({ input: process.stdin }).on('line', (line) => {
  const [id, target, timeoutMs] = line.trim().split(' ');
  const i = target.lastIndexOf(':');
  const sock = connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
  let answered = false;
  const done = (ok) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    sock.destroy();
    process.stdout.write(`${id} ${ok ? 'ok' : 'fail'}\n`);
  };
  const timer = setTimeout(() => done(false), Number(timeoutMs));
  sock.once('data', (d) => done(d.toString().startsWith('hello')));
  sock.once('error', () => done(false));
});
process.stdout.write('ready\n');
