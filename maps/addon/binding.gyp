{
  "targets": [
    {
      "target_name": "weir_ringbuf",
      "sources": ["src/ringbuf.c"],
      "libraries": ["-lbpf"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "weir_v8heap",
      "sources": ["src/v8heap.cc"],
      "cflags_cc": ["-O2", "-Wall"]
    },
    {
      "target_name": "weir_offloop",
      "sources": ["src/offloop.c"],
      "libraries": ["-lpthread"],
      "cflags": ["-O2", "-Wall", "-D_GNU_SOURCE"]
    }
  ]
}
