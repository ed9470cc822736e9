/**
 * A CPU profile of a bench's agent process, loaded into it with `node --import` (never by the
 * agent itself). `node --cpu-prof` cannot be used: its sampling signal (SIGPROF, every
 * millisecond) interrupts the kernel's verifier, which then gives up loading the programs
 * (EAGAIN, retried only a few times). So profiling starts once the file named by
 * `WEIR_BENCH_PROFILE_AFTER` exists (a pinned program: the load is over), and every SIGUSR2 writes
 * the profile so far to `WEIR_BENCH_PROFILE_DIR/phase-N.cpuprofile` and starts the next, so a
 * bench cuts the run into phases (first sync, label changes). The last phase is written at exit.
 */
import { Session } from 'node:inspector';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.WEIR_BENCH_PROFILE_DIR;
const after = process.env.WEIR_BENCH_PROFILE_AFTER;

if (dir && after) {
  const session = new Session();
  session.connect();
  let phase = 0;
  let running = false;
  const start = (): void => {
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 500 });
    session.post('Profiler.start');
    running = true;
  };
  /** The inspector answers on this thread synchronously, so this works in an exit handler too. */
  const stop = (): void => {
    if (!running) return;
    running = false;
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(dir, `phase-${phase++}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  const wait = setInterval(() => {
    if (!existsSync(after)) return;
    clearInterval(wait);
    start();
  }, 2);
  wait.unref();
  process.on('SIGUSR2', () => {
    stop();
    start();
  });
  process.on('exit', stop);
}
