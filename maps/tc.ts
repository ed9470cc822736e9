/**
 * tc attach/detach on an ifindex (clsact qdisc, direct-action cls_bpf), from
 * the caller's network namespace or inside another one (setns around the call).
 */
import { openSync, closeSync } from 'node:fs';
import { fn, LibbpfError, strerror, withLibbpfLog } from './libbpf.js';

export type TcPoint = 'ingress' | 'egress';
const ATTACH_POINT = { ingress: 1, egress: 2 } as const;
const EEXIST = 17;
const ENOENT = 2;
const ENODEV = 19;
const EINVAL = 22;
const CLONE_NEWNET = 0x40000000;
const BPF_TC_F_REPLACE = 1;

/** The handle and priority weir's filters use: one filter per hook, replaced in place. */
export const WEIR_TC_HANDLE = 0x77e1;
export const WEIR_TC_PRIORITY = 1;

export interface TcTarget {
  ifindex: number;
  /** Network namespace path (e.g. /var/run/netns/NAME); default: the caller's. */
  netns?: string;
}

function hook(ifindex: number, point: TcPoint) {
  return { sz: 24, ifindex, attach_point: ATTACH_POINT[point], parent: 0 };
}

/**
 * libbpf logs expected conditions (an existing clsact, no filter to detach) to
 * stderr; tc calls run with its log captured, and errors say what matters.
 */
function quiet<T>(f: () => T): T {
  return withLibbpfLog(f).result;
}

/** Runs `f` with the calling thread inside `netns` (restored afterwards). */
export function inNetns<T>(netns: string | undefined, f: () => T): T {
  if (!netns) return quiet(f);
  const self = openSync('/proc/thread-self/ns/net', 'r');
  const target = openSync(netns, 'r');
  try {
    if ((fn.setns(target, CLONE_NEWNET) as number) !== 0)
      throw new Error(`cannot enter network namespace ${netns}: need root (CAP_SYS_ADMIN)`);
    try {
      return quiet(f);
    } finally {
      // Failing to return to the host namespace must not be swallowed.
      if ((fn.setns(self, CLONE_NEWNET) as number) !== 0)
        // eslint-disable-next-line no-unsafe-finally
        throw new Error('cannot return to the original network namespace');
    }
  } finally {
    closeSync(target);
    closeSync(self);
  }
}

/** Attaches (or atomically replaces) weir's filter on one hook. */
export function tcAttach(target: TcTarget, point: TcPoint, progFd: number): void {
  inNetns(target.netns, () => {
    const h = hook(target.ifindex, point);
    const r = fn.tc_hook_create(h) as number;
    if (r < 0 && -r !== EEXIST) {
      throw new LibbpfError(
        `creating clsact on ifindex ${target.ifindex}: ${strerror(-r)} (does the interface exist in this namespace?)`,
        -r,
      );
    }
    const opts = {
      sz: 32,
      prog_fd: progFd,
      flags: BPF_TC_F_REPLACE,
      prog_id: 0,
      handle: WEIR_TC_HANDLE,
      priority: WEIR_TC_PRIORITY,
    };
    const a = fn.tc_attach(h, opts) as number;
    if (a < 0) throw new LibbpfError(`attaching to ${point} of ifindex ${target.ifindex}: ${strerror(-a)}`, -a);
  });
}

/** Removes weir's filter from one hook; returns false when none was there. */
export function tcDetach(target: TcTarget, point: TcPoint): boolean {
  return inNetns(target.netns, () => {
    const opts = { sz: 32, prog_fd: 0, flags: 0, prog_id: 0, handle: WEIR_TC_HANDLE, priority: WEIR_TC_PRIORITY };
    const r = fn.tc_detach(hook(target.ifindex, point), opts) as number;
    if (r === -ENOENT || r === -ENODEV /* interface gone */ || r === -EINVAL /* no clsact there */) return false;
    if (r < 0) throw new LibbpfError(`detaching from ${point} of ifindex ${target.ifindex}: ${strerror(-r)}`, -r);
    return true;
  });
}

/** The id of the program weir has on a hook, or undefined. */
export function tcQuery(target: TcTarget, point: TcPoint): number | undefined {
  return inNetns(target.netns, () => {
    const opts = { sz: 32, prog_fd: 0, flags: 0, prog_id: 0, handle: WEIR_TC_HANDLE, priority: WEIR_TC_PRIORITY };
    const r = fn.tc_query(hook(target.ifindex, point), opts) as number;
    return r < 0 ? undefined : opts.prog_id;
  });
}

/**
 * The name of the loaded BPF program with this id (`bpf_prog_info.name`, at most 15 bytes), or
 * undefined when no such program is loaded any more.
 */
export function programName(id: number): string | undefined {
  const fd = fn.prog_get_fd_by_id(id) as number;
  if (fd < 0) return undefined;
  try {
    // struct bpf_prog_info up to the end of name[16] (offset 64); the pointers in it stay 0, so the
    // kernel copies no instructions or map ids.
    const info = Buffer.alloc(80);
    const len = [info.length];
    if ((fn.obj_get_info_by_fd(fd, info, len) as number) < 0) return undefined;
    const name = info.subarray(64, 80);
    const end = name.indexOf(0);
    return name.subarray(0, end < 0 ? name.length : end).toString('utf8');
  } finally {
    fn.close_fd(fd);
  }
}
