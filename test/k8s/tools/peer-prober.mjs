// Runs inside a client's network namespace for the whole test: reads
// "<id> <tcp|udp> <host> <port> <timeoutMs>" lines on stdin, tries once each (concurrently) and
// answers "<id> ok <first line the server sent>", "<id> refused" (TCP RST, ICMP unreachable) or
// "<id> timeout" on stdout.
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createInterface } from 'node:readline';
createInterface({ input: process.stdin }).on('line', (line) => {
  const [id, proto, host, port, timeoutMs] = line.trim().split(' ');
  let answered = false;
  let close = () => {};
  const done = (what) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    close();
    process.stdout.write(`${id} ${what}\n`);
  };
  const timer = setTimeout(() => done('timeout'), Number(timeoutMs));
  const onError = (err) =>
    done(err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' ? 'refused' : `error ${err.code}`);
  const onData = (d) => done(`ok ${d.toString().split('\n')[0]}`);
  if (proto === 'udp') {
    const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    close = () => s.close();
    s.on('error', onError);
    s.on('message', onData);
    s.connect(Number(port), host, () => s.send('probe'));
  } else {
    const s = connect({ host, port: Number(port) });
    close = () => s.destroy();
    s.once('data', onData);
    s.once('error', onError);
  }
});
process.stdout.write('ready\n');
