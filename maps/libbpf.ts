/**
 * koffi bindings to the system libbpf.so.1 (1.1+). The only file that declares
 * C functions; everything else in maps/ wraps these in typed helpers.
 */
import koffi from 'koffi';

function open(): koffi.IKoffiLib {
  try {
    return koffi.load('libbpf.so.1');
  } catch (err) {
    throw new Error(
      `cannot load libbpf.so.1 (${err instanceof Error ? err.message : String(err)}): install it with "apt-get install libbpf1 libbpf-dev" or run "make deps"`,
    );
  }
}

/*
 * koffi keeps one process-wide registry of type names, and test runners may
 * evaluate this module more than once per process: each evaluation declares
 * its types under its own suffix.
 */
function declare() {
  const sfx = `${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const lib = open();
  const libc = koffi.load('libc.so.6');

  koffi.struct(`bpf_tc_hook_${sfx}`, {
    sz: 'size_t',
    ifindex: 'int',
    attach_point: 'int',
    parent: 'uint32_t',
  });
  koffi.struct(`bpf_tc_opts_${sfx}`, {
    sz: 'size_t',
    prog_fd: 'int',
    flags: 'uint32_t',
    prog_id: 'uint32_t',
    handle: 'uint32_t',
    priority: 'uint32_t',
  });
  koffi.struct(`bpf_test_run_opts_${sfx}`, {
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  koffi.struct(`bpf_map_batch_opts_${sfx}`, {
    sz: 'size_t',
    elem_flags: 'uint64_t',
    flags: 'uint64_t',
  });
  const printFn = koffi.proto(`int weir_libbpf_print_fn_${sfx}(int level, const char *fmt, void *args)`);
  koffi.opaque(`bpf_object_${sfx}`);
  koffi.opaque(`bpf_map_${sfx}`);
  koffi.opaque(`bpf_program_${sfx}`);

  const fn = {
    set_print: lib.func('void *libbpf_set_print(void *fn)'),
    open_file: lib.func(`bpf_object_${sfx} *bpf_object__open_file(const char *path, void *opts)`),
    load: lib.func(`int bpf_object__load(bpf_object_${sfx} *obj)`),
    close: lib.func(`void bpf_object__close(bpf_object_${sfx} *obj)`),
    next_map: lib.func(`bpf_map_${sfx} *bpf_object__next_map(bpf_object_${sfx} *obj, bpf_map_${sfx} *map)`),
    map_name: lib.func(`const char *bpf_map__name(bpf_map_${sfx} *map)`),
    map_fd: lib.func(`int bpf_map__fd(bpf_map_${sfx} *map)`),
    map_set_pin_path: lib.func(`int bpf_map__set_pin_path(bpf_map_${sfx} *map, const char *path)`),
    map_set_max_entries: lib.func(`int bpf_map__set_max_entries(bpf_map_${sfx} *map, uint32_t max_entries)`),
    map_type: lib.func(`int bpf_map__type(bpf_map_${sfx} *map)`),
    map_key_size: lib.func(`uint32_t bpf_map__key_size(bpf_map_${sfx} *map)`),
    map_value_size: lib.func(`uint32_t bpf_map__value_size(bpf_map_${sfx} *map)`),
    map_flags: lib.func(`uint32_t bpf_map__map_flags(bpf_map_${sfx} *map)`),
    map_create: lib.func(
      'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)',
    ),
    next_program: lib.func(
      `bpf_program_${sfx} *bpf_object__next_program(bpf_object_${sfx} *obj, bpf_program_${sfx} *prog)`,
    ),
    program_name: lib.func(`const char *bpf_program__name(bpf_program_${sfx} *prog)`),
    program_fd: lib.func(`int bpf_program__fd(bpf_program_${sfx} *prog)`),
    obj_pin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
    obj_get: lib.func('int bpf_obj_get(const char *path)'),
    prog_get_fd_by_id: lib.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
    obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)'),
    update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ uint8_t *value)'),
    delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
    get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ uint8_t *next_key)'),
    update_batch: lib.func(
      `int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const bpf_map_batch_opts_${sfx} *opts)`,
    ),
    lookup_batch: lib.func(
      `int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const bpf_map_batch_opts_${sfx} *opts)`,
    ),
    num_possible_cpus: lib.func('int libbpf_num_possible_cpus(void)'),
    tc_hook_create: lib.func(`int bpf_tc_hook_create(bpf_tc_hook_${sfx} *hook)`),
    tc_attach: lib.func(`int bpf_tc_attach(bpf_tc_hook_${sfx} *hook, _Inout_ bpf_tc_opts_${sfx} *opts)`),
    tc_detach: lib.func(`int bpf_tc_detach(bpf_tc_hook_${sfx} *hook, bpf_tc_opts_${sfx} *opts)`),
    tc_query: lib.func(`int bpf_tc_query(bpf_tc_hook_${sfx} *hook, _Inout_ bpf_tc_opts_${sfx} *opts)`),
    test_run: lib.func(`int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts_${sfx} *opts)`),
    close_fd: libc.func('int close(int fd)'),
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, const char *fmt, void *ap)'),
    strerror: libc.func('const char *strerror(int errnum)'),
    setns: libc.func('int setns(int fd, int nstype)'),
  };
  return { fn, printFn };
}

const bindings = declare();

export const fn = bindings.fn;
const PrintFn = bindings.printFn;

export const errno = (): number => koffi.errno();
export const strerror = (e: number): string => fn.strerror(Math.abs(e)) as string;

/** Captures libbpf's log lines (the verifier log included) while `f` runs. */
export function withLibbpfLog<T>(f: () => T): { result: T; log: string } {
  const lines: string[] = [];
  const buf = Buffer.alloc(8192);
  const cb = koffi.register((_level: number, fmt: string, args: unknown) => {
    const n = fn.vsnprintf(buf, buf.length, fmt, args) as number;
    lines.push(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8'));
    return 0;
  }, koffi.pointer(PrintFn));
  const prev = fn.set_print(cb);
  try {
    return { result: f(), log: lines.join('') };
  } finally {
    fn.set_print(prev);
    koffi.unregister(cb);
  }
}

export class LibbpfError extends Error {
  constructor(
    message: string,
    readonly errno: number,
    readonly log = '',
  ) {
    super(log ? `${message}\n--- libbpf/verifier log ---\n${log.trimEnd()}` : message);
    this.name = 'LibbpfError';
  }
}

/** Throws when a libbpf call returned a negative error code. */
export function check(ret: number, what: string, hint = ''): number {
  if (ret < 0) {
    const e = -ret;
    throw new LibbpfError(`${what}: ${strerror(e)} (errno ${e})${hint ? `; ${hint}` : ''}`, e);
  }
  return ret;
}
