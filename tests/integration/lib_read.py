#!/usr/bin/env python3
"""lib_read.py: readers for the mount tests (a helper, not a test).

  lib_read.py preads FILE REF [--chunk N] [--random N] [--threads T] [--seed S]
      pread()s FILE at every chunk boundary (straddling it, just before, just after, a byte on
      each side), at the end (and past it), and at N random offsets, in a shuffled order from T
      threads, and compares every answer with REF, the source file. Readahead is turned off
      (POSIX_FADV_RANDOM) so that the reads reach the mount as random reads.
  lib_read.py mmap FILE REF [--chunk N] [--seed S]
      maps FILE shared and read-only, compares slices around every chunk boundary (shuffled),
      then the SHA-256 of the whole mapping with REF's.
  lib_read.py copies FILE REF
      reads FILE whole two ways, each compared with REF by SHA-256: sendfile() into a memfd and
      splice() through a pipe.
  lib_read.py together FILE REF [--threads T]
      T threads open FILE at the same moment (a barrier) and each reads it whole: concurrent
      first opens of one cold inode must all succeed with the right bytes.
  lib_read.py churn FILE REF [--threads T] [--rounds R] [--seed S]
      T threads each open FILE, pread a random range, compare it with REF and close it, R times:
      concurrent opens and releases of one inode must never fail (EIO) or return other bytes.
  lib_read.py holder FILE
      opens FILE, prints "open INO SIZE", then answers commands on stdin, one line each:
        read OFF LEN   -> "ok LEN SHA256" or "err ERRNAME"   (pread on the open descriptor)
        drop           -> "ok"   (POSIX_FADV_DONTNEED: the next reads reach the mount again)
        fstat          -> "ok INO SIZE"
        quit
      so a test can keep a file open while it changes the bucket.
Exits 0 when everything matched; otherwise prints the first mismatch and exits 1.
"""
import argparse
import concurrent.futures
import errno
import hashlib
import mmap
import os
import random
import sys
import threading


def die(msg):
    print(f"lib_read.py: {msg}", file=sys.stderr)
    sys.exit(1)


def boundary_ranges(size, chunk):
    out = []
    for b in range(0, size + chunk, chunk):
        for off, ln in ((b - 1, 2), (b - 4096, 8192), (b, 1), (b - 1, 1), (b, 4096),
                        (b - chunk // 2, chunk), (b + 12345, 3 * 4096 + 7)):
            if off < 0:
                ln += off
                off = 0
            if off >= size or ln <= 0:
                continue
            out.append((off, min(ln, size - off)))
    out.append((max(0, size - 1), 1 if size else 0))
    out.append((max(0, size - 4096), min(size, 4096)))
    return [(o, n) for o, n in out if n > 0]


def cmd_preads(a):
    size = os.path.getsize(a.ref)
    rnd = random.Random(a.seed)
    ranges = boundary_ranges(size, a.chunk)
    for _ in range(a.random):
        off = rnd.randrange(0, max(size, 1))
        ranges.append((off, min(rnd.randrange(1, a.chunk + 8192), size - off)))
    rnd.shuffle(ranges)
    fd = os.open(a.file, os.O_RDONLY)
    ref = os.open(a.ref, os.O_RDONLY)
    if os.fstat(fd).st_size != size:
        die(f"{a.file}: size {os.fstat(fd).st_size}, want {size}")
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)

    def one(r):
        off, ln = r
        got = b""
        while len(got) < ln:  # a read may be short only at the end
            part = os.pread(fd, ln - len(got), off + len(got))
            if not part:
                break
            got += part
        want = os.pread(ref, ln, off)
        if got != want:
            i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                     min(len(got), len(want)))
            return f"pread({off}, {ln}): {len(got)} bytes, first difference at +{i}"
        return None

    with concurrent.futures.ThreadPoolExecutor(a.threads) as ex:
        for err in ex.map(one, ranges):
            if err:
                die(err)
    # past the end: nothing
    for off in (size, size + 1, size + a.chunk):
        if os.pread(fd, 100, off):
            die(f"pread past the end at {off} returned data")
    total = sum(n for _, n in ranges)
    print(f"preads ok: {len(ranges)} reads, {total} bytes, {a.threads} threads")


def cmd_mmap(a):
    size = os.path.getsize(a.ref)
    rnd = random.Random(a.seed)
    with open(a.file, "rb") as f, open(a.ref, "rb") as r:
        if size == 0:
            print("mmap ok: empty file")
            return
        m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        if len(m) != size:
            die(f"mapping of {len(m)} bytes, want {size}")
        ranges = boundary_ranges(size, a.chunk)
        rnd.shuffle(ranges)
        for off, ln in ranges:
            r.seek(off)
            if m[off:off + ln] != r.read(ln):
                die(f"mmap bytes [{off}, +{ln}) differ")
        h = hashlib.sha256()
        for off in range(0, size, 1 << 20):
            h.update(m[off:off + (1 << 20)])
        r.seek(0)
        w = hashlib.sha256()
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            w.update(b)
        m.close()
        if h.hexdigest() != w.hexdigest():
            die("SHA-256 of the mapping differs from the source")
    print(f"mmap ok: {len(ranges)} slices and the whole file ({size} bytes)")


def ref_sha(path):
    w = hashlib.sha256()
    with open(path, "rb") as r:
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            w.update(b)
    return w.hexdigest()


def memfd_sha(mfd, size):
    h = hashlib.sha256()
    off = 0
    while off < size:
        b = os.pread(mfd, min(1 << 20, size - off), off)
        if not b:
            die(f"memfd short at {off}")
        h.update(b)
        off += len(b)
    return h.hexdigest()


def cmd_copies(a):
    size = os.path.getsize(a.ref)
    want = ref_sha(a.ref)
    fd = os.open(a.file, os.O_RDONLY)
    try:
        # sendfile
        mfd = os.memfd_create("sendfile")
        off = 0
        while off < size:
            n = os.sendfile(mfd, fd, off, min(8 << 20, size - off))
            if n <= 0:
                die(f"sendfile returned {n} at {off}")
            off += n
        if memfd_sha(mfd, size) != want:
            die("sendfile copy differs from the source")
        os.close(mfd)
        # splice through a pipe
        rp, wp = os.pipe()
        h = hashlib.sha256()
        off = 0
        while off < size:
            n = os.splice(fd, wp, min(64 << 10, size - off), offset_src=off)
            if n <= 0:
                die(f"splice returned {n} at {off}")
            off += n
            got = b""
            while len(got) < n:
                got += os.read(rp, n - len(got))
            h.update(got)
        os.close(rp)
        os.close(wp)
        if h.hexdigest() != want:
            die("splice copy differs from the source")
    finally:
        os.close(fd)
    print(f"copies ok: sendfile and splice of {size} bytes")


def cmd_together(a):
    want = ref_sha(a.ref)
    gate = threading.Barrier(a.threads)

    def worker(t):
        gate.wait()
        try:
            got = ref_sha(a.file)
        except OSError as e:
            return f"thread {t}: {errno.errorcode.get(e.errno, e.errno)}"
        return None if got == want else f"thread {t}: other bytes"

    with concurrent.futures.ThreadPoolExecutor(a.threads) as ex:
        errs = [e for e in ex.map(worker, range(a.threads)) if e]
    if errs:
        die(f"{len(errs)} of {a.threads} threads failed, first: {errs[0]}")
    print(f"together ok: {a.threads} threads opened and read the file at once")


def cmd_churn(a):
    size = os.path.getsize(a.ref)
    with open(a.ref, "rb") as r:
        ref = r.read()

    def worker(t):
        rnd = random.Random(a.seed * 1000 + t)
        for i in range(a.rounds):
            off = rnd.randrange(0, max(size, 1))
            ln = rnd.randrange(1, 256 << 10)
            try:
                fd = os.open(a.file, os.O_RDONLY)
                try:
                    got = os.pread(fd, ln, off)
                finally:
                    os.close(fd)
            except OSError as e:
                return f"thread {t} round {i}: {errno.errorcode.get(e.errno, e.errno)}"
            if got != ref[off:off + ln]:
                return f"thread {t} round {i}: bytes [{off}, +{ln}) differ"
        return None

    with concurrent.futures.ThreadPoolExecutor(a.threads) as ex:
        errs = [e for e in ex.map(worker, range(a.threads)) if e]
    if errs:
        die(f"{len(errs)} threads failed, first: {errs[0]}")
    print(f"churn ok: {a.threads} threads x {a.rounds} open/pread/close (seed {a.seed})")


def cmd_holder(a):
    fd = os.open(a.file, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    st = os.fstat(fd)
    print(f"open {st.st_ino} {st.st_size}", flush=True)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        try:
            if w[0] == "read":
                off, ln = int(w[1]), int(w[2])
                got = b""
                while len(got) < ln:
                    part = os.pread(fd, ln - len(got), off + len(got))
                    if not part:
                        break
                    got += part
                print(f"ok {len(got)} {hashlib.sha256(got).hexdigest()}", flush=True)
            elif w[0] == "drop":
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                print("ok", flush=True)
            elif w[0] == "fstat":
                st = os.fstat(fd)
                print(f"ok {st.st_ino} {st.st_size}", flush=True)
            elif w[0] == "quit":
                break
            else:
                print("err EINVAL", flush=True)
        except OSError as e:
            print(f"err {errno.errorcode.get(e.errno, str(e.errno))}", flush=True)
    os.close(fd)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("preads", "mmap"):
        s = sub.add_parser(name)
        s.add_argument("file")
        s.add_argument("ref")
        s.add_argument("--chunk", type=int, default=1 << 20)
        s.add_argument("--seed", type=int, default=1)
        if name == "preads":
            s.add_argument("--random", type=int, default=100)
            s.add_argument("--threads", type=int, default=8)
    s = sub.add_parser("copies")
    s.add_argument("file")
    s.add_argument("ref")
    s = sub.add_parser("together")
    s.add_argument("file")
    s.add_argument("ref")
    s.add_argument("--threads", type=int, default=8)
    s = sub.add_parser("churn")
    s.add_argument("file")
    s.add_argument("ref")
    s.add_argument("--threads", type=int, default=8)
    s.add_argument("--rounds", type=int, default=250)
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("holder")
    s.add_argument("file")
    a = p.parse_args()
    {"preads": cmd_preads, "mmap": cmd_mmap, "copies": cmd_copies, "together": cmd_together,
     "churn": cmd_churn,
     "holder": cmd_holder}[a.cmd](a)


if __name__ == "__main__":
    main()
