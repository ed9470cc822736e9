{
  "targets": [
    {
      "target_name": "weir_ringbuf",
      "sources": ["src/ringbuf.c"],
      "libraries": ["-lbpf"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
