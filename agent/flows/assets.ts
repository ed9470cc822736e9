/**
 * Files that ship beside the code (the .proto, package.json), found from the compiled
 * module in dist/ as well as from the TypeScript source.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The repository (package) root: the nearest directory above this module with weir's package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'weir') {
      root = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir)
      throw new Error('cannot find the weir package root above ' + fileURLToPath(import.meta.url) + ': reinstall weir');
    dir = up;
  }
}

export function assetPath(relative: string): string {
  return join(packageRoot(), relative);
}

export function weirVersion(): string {
  return (JSON.parse(readFileSync(assetPath('package.json'), 'utf8')) as { version: string }).version;
}
