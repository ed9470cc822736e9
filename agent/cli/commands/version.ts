import type { Command } from 'commander';
import { readFileSync } from 'node:fs';

export function register(program: Command): void {
  program
    .command('version')
    .description('print the weir version')
    .action(() => {
      const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      process.stdout.write(`weir ${pkg.version}\n`);
    });
}
