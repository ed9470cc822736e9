/**
 * Open and load a BPF object with its maps pinned under a root directory:
 * maps already pinned there are reused (adopted) so a restarted agent keeps
 * conntrack and policy state; programs are pinned too. Nothing is unpinned on close.
 */
import { mkdirSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fn, errno, strerror, withLibbpfLog, LibbpfError } from './libbpf.js';
import { BpfMap, openPinnedMap } from './bpf-map.js';

export interface LoadOptions {
  /** Directory for pinned maps and programs (created if missing). Undefined: nothing pinned. */
  pinRoot?: string;
  /** Pin programs as <pinRoot>/prog_<name> (default true when pinRoot is set). */
  pinPrograms?: boolean;
  /** Max entries per map name, set before load (a pinned map is reused only at the same size). */
  mapMax?: Record<string, number>;
  /**
   * Pinned maps whose layout (type, key or value size, map flags) differs from this object's — pins of an
   * older build — are replaced: a new map is created and pinned in their place, and the old one
   * lives on only as long as programs still attached hold it. For a map named here, the function
   * reads the old map and returns the entries to write into the new one (converted); any other
   * map starts empty.
   */
  upgrade?: Record<string, (old: BpfMap) => Array<[Buffer, Buffer]>>;
}

/** What a pinned map must share with the object's to be adopted (libbpf refuses to reuse it otherwise). */
export interface MapLayout {
  type: number;
  keySize: number;
  valueSize: number;
  flags: number;
}

/** A pinned map replaced at load because its layout differs from the object's. */
export interface ReplacedMap {
  name: string;
  was: MapLayout;
  now: MapLayout;
  /** Entries written into the new map by the upgrade function. */
  carried: number;
}

export interface LoadedObject {
  readonly path: string;
  readonly maps: ReadonlyMap<string, BpfMap>;
  /** Program fds by function name. */
  readonly programs: ReadonlyMap<string, number>;
  /** Names of maps that were adopted from existing pins rather than created. */
  readonly adopted: readonly string[];
  /** Pinned maps of another layout that this load replaced (see LoadOptions.upgrade). */
  readonly replaced: readonly ReplacedMap[];
  map(name: string): BpfMap;
  program(name: string): number;
  /** Releases fds (pinned objects stay in the kernel). */
  close(): void;
}

type Ptr = unknown;

export function loadObject(path: string, opts: LoadOptions = {}): LoadedObject {
  if (!existsSync(path)) throw new Error(`BPF object ${path} not found: run "make build"`);
  const { result: obj, log: openLog } = withLibbpfLog(() => fn.open_file(path, null) as Ptr);
  if (!obj) {
    const e = errno();
    throw new LibbpfError(`opening BPF object ${path} failed: ${strerror(e)}`, e, openLog);
  }
  const adopted: string[] = [];
  const replaced: ReplacedMap[] = [];
  /** Old maps unpinned for replacement: pinned back if the load fails, closed once it holds. */
  const unpinned: Array<{ pin: string; old: BpfMap; entries: Array<[Buffer, Buffer]>; r: ReplacedMap }> = [];
  const restorePins = () => {
    for (const u of unpinned.splice(0)) {
      if (!existsSync(u.pin)) fn.obj_pin(u.old.fd, u.pin);
      u.old.close();
    }
  };
  try {
    if (!opts.pinRoot) {
      // maps declared with pinning would otherwise be pinned under /sys/fs/bpf by libbpf
      for (let m = fn.next_map(obj, null) as Ptr; m; m = fn.next_map(obj, m) as Ptr) fn.map_set_pin_path(m, null);
    } else {
      mkdirSync(opts.pinRoot, { recursive: true });
      for (let m = fn.next_map(obj, null) as Ptr; m; m = fn.next_map(obj, m) as Ptr) {
        const name = fn.map_name(m) as string;
        if (name.includes('.')) continue; // internal maps (.rodata, .kconfig): not shared state
        const pin = join(opts.pinRoot, name);
        if (existsSync(pin)) {
          const old = openPinnedMap(pin);
          const now = {
            type: fn.map_type(m) as number,
            keySize: fn.map_key_size(m) as number,
            valueSize: fn.map_value_size(m) as number,
            flags: fn.map_flags(m) as number,
          };
          const { type, keySize, valueSize, flags } = old.info;
          const was = { type, keySize, valueSize, flags };
          if (
            was.type === now.type &&
            was.keySize === now.keySize &&
            was.valueSize === now.valueSize &&
            was.flags === now.flags
          ) {
            old.close();
            adopted.push(name);
          } else {
            const entries = opts.upgrade?.[name]?.(old) ?? [];
            unlinkSync(pin);
            const r = { name, was, now, carried: 0 };
            unpinned.push({ pin, old, entries, r });
            replaced.push(r);
          }
        }
        const r = fn.map_set_pin_path(m, pin) as number;
        if (r < 0) throw new LibbpfError(`setting pin path ${pin}: ${strerror(-r)}`, -r);
      }
    }
    // sizes asked for at load (a map already pinned keeps its own size)
    const sized = new Set<string>();
    for (let m = fn.next_map(obj, null) as Ptr; m; m = fn.next_map(obj, m) as Ptr) {
      const name = fn.map_name(m) as string;
      const max = opts.mapMax?.[name];
      if (max === undefined) continue;
      const r = fn.map_set_max_entries(m, max) as number;
      if (r < 0) throw new LibbpfError(`sizing map ${name} to ${max} entries: ${strerror(-r)}`, -r);
      sized.add(name);
    }
    for (const name of Object.keys(opts.mapMax ?? {}))
      if (!sized.has(name)) throw new Error(`--map-max: the datapath has no map named ${name}`);
    const { result: ret, log } = withLibbpfLog(() => fn.load(obj) as number);
    if (ret < 0) {
      restorePins();
      const hint = adopted.length
        ? ` (maps pinned under ${opts.pinRoot} may come from an incompatible build: remove that directory to start fresh)`
        : '';
      throw new LibbpfError(`loading BPF object ${path} failed: ${strerror(-ret)}${hint}`, -ret, log);
    }
    const maps = new Map<string, BpfMap>();
    for (let m = fn.next_map(obj, null) as Ptr; m; m = fn.next_map(obj, m) as Ptr) {
      const name = fn.map_name(m) as string;
      if (name.includes('.')) continue;
      const fd = fn.map_fd(m) as number;
      // fds stay owned by the object (closed by close())
      maps.set(name, new BpfMap(fd, name));
    }
    // the replaced maps' carried entries, before any program of this load is attached anywhere
    for (const u of unpinned.splice(0)) {
      const m = maps.get(u.r.name);
      for (const [k, v] of u.entries) {
        try {
          m?.update(k, v);
          u.r.carried++;
        } catch {
          /* not carried: the agent writes it again from its desired state */
        }
      }
      u.old.close();
    }
    const programs = new Map<string, number>();
    for (let p = fn.next_program(obj, null) as Ptr; p; p = fn.next_program(obj, p) as Ptr) {
      const name = fn.program_name(p) as string;
      const fd = fn.program_fd(p) as number;
      programs.set(name, fd);
      if (opts.pinRoot && opts.pinPrograms !== false) {
        const pin = join(opts.pinRoot, `prog_${name}`);
        if (existsSync(pin)) unlinkSync(pin); // replaced by this load
        const r = fn.obj_pin(fd, pin) as number;
        if (r < 0) throw new LibbpfError(`pinning program ${name} at ${pin}: ${strerror(-r)}`, -r);
      }
    }
    let closed = false;
    return {
      path,
      maps,
      programs,
      adopted,
      replaced,
      map(name: string): BpfMap {
        const m = maps.get(name);
        if (!m) throw new Error(`BPF object ${path} has no map "${name}" (have: ${[...maps.keys()].join(', ')})`);
        return m;
      },
      program(name: string): number {
        const p = programs.get(name);
        if (p === undefined)
          throw new Error(`BPF object ${path} has no program "${name}" (have: ${[...programs.keys()].join(', ')})`);
        return p;
      },
      close() {
        if (closed) return;
        closed = true;
        fn.close(obj); // closes map and program fds owned by the object
      },
    };
  } catch (err) {
    restorePins();
    fn.close(obj);
    throw err;
  }
}
