#!/usr/bin/env python3
"""Readers used by bench/bench.py; each prints one JSON line on stdout.

  loader.py load [--threads N] [--pre F]... FILE...
                                         model load as a safetensors loader does it: N threads take
                                         the shards in order; each shard is mmap'ed (MAP_SHARED,
                                         PROT_READ, like safetensors' memmap), its header parsed,
                                         and every tensor copied out of the mapping in offset order
                                         (like torch copying tensors to the device), so every page
                                         is touched in order. The copies are ctypes.memmove calls:
                                         they release the GIL, so page faults of the N threads are
                                         concurrent (a plain `mm[i]` would fault with the GIL held
                                         and serialise the threads). The --pre files (config,
                                         tokenizer) are read whole first, as a loader does.
  loader.py ttfb FILE...                 per file: time of stat(), then of open() + pread(4096, 0):
                                         the time to the first byte of a file not read before.
  loader.py stat LISTFILE ROOT           stat() of every path listed in LISTFILE (relative to ROOT).
"""
import ctypes
import ctypes.util
import json
import os
import queue
import struct
import sys
import threading
import time

PROT_READ = 0x1
MAP_SHARED = 0x01
MAP_FAILED = ctypes.c_void_p(-1).value
COPY_CHUNK = 16 << 20

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def load_shard(path, buf):
    """Maps PATH, parses its safetensors header, copies every tensor out; returns bytes mapped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < 8:
            raise ValueError("%s: too small for safetensors" % path)
        addr = _libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
        if addr in (None, MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap " + path)
    finally:
        os.close(fd)
    try:
        (hlen,) = struct.unpack("<Q", ctypes.string_at(addr, 8))
        if hlen > size - 8 or hlen > 100 << 20:
            raise ValueError("%s: bad safetensors header length %d" % (path, hlen))
        header = json.loads(ctypes.string_at(addr + 8, hlen))
        base = 8 + hlen
        spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
        end = base
        for start, stop in spans:
            if base + start != end or base + stop > size:
                raise ValueError("%s: tensors do not tile the data section" % path)
            off = base + start
            while off < base + stop:
                n = min(COPY_CHUNK, base + stop - off)
                ctypes.memmove(buf, addr + off, n)  # releases the GIL
                off += n
            end = base + stop
        if end != size:
            raise ValueError("%s: %d bytes after the last tensor" % (path, size - end))
        return size
    finally:
        _libc.munmap(addr, size)


def cmd_load(args):
    threads = 4
    pre = []
    while args[:1] in (["--threads"], ["--pre"]):
        if args[0] == "--threads":
            threads = int(args[1])
        else:
            pre.append(args[1])
        args = args[2:]
    work = queue.Queue()
    for f in args:
        work.put(f)
    total = [0]
    errors = []
    lock = threading.Lock()

    def worker():
        buf = ctypes.create_string_buffer(COPY_CHUNK)
        while True:
            try:
                f = work.get_nowait()
            except queue.Empty:
                return
            try:
                n = load_shard(f, buf)
                with lock:
                    total[0] += n
            except Exception as e:  # reported, the other threads go on
                with lock:
                    errors.append("%s: %s" % (f, e))

    t0 = time.monotonic()
    for f in pre:  # config.json, tokenizer files: read whole, before the weights
        with open(f, "rb") as fh:
            total[0] += len(fh.read())
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    print(json.dumps({"bytes": total[0], "seconds": secs, "files": len(pre) + len(args),
                      "errors": errors}))
    return 1 if errors else 0


def cmd_ttfb(args):
    out = []
    for f in args:
        t0 = time.monotonic()
        os.stat(f)
        t1 = time.monotonic()
        fd = os.open(f, os.O_RDONLY)
        try:
            data = os.pread(fd, 4096, 0)
        finally:
            os.close(fd)
        t2 = time.monotonic()
        if not data:
            raise SystemExit("%s: read nothing" % f)
        out.append({"file": f, "stat_s": t1 - t0, "ttfb_s": t2 - t1})
    print(json.dumps(out))
    return 0


def cmd_stat(args):
    listfile, root = args
    with open(listfile) as fh:
        paths = [line.rstrip("\n") for line in fh if line.strip()]
    t0 = time.monotonic()
    n = 0
    for p in paths:
        os.stat(os.path.join(root, p))
        n += 1
    print(json.dumps({"files": n, "seconds": time.monotonic() - t0}))
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"load": cmd_load, "ttfb": cmd_ttfb, "stat": cmd_stat}.get(cmd)
    if not fn:
        sys.exit(__doc__)
    sys.exit(fn(args))


if __name__ == "__main__":
    main()
