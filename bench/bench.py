#!/usr/bin/env python3
"""hoardfs benchmark driver (run it through bench/run.sh, which installs and builds first).

Sets up an S3 endpoint (s3rver for the bucket and its listings, nginx serving object bytes from
s3rver's files), three network profiles (loopback; "cloud": a first-byte delay and a
per-connection rate cap; "cloud-tls": the same over HTTPS; "busy-server": s3rver itself sends the
bytes, delayed and capped like "cloud", competing for the CPU), measures the limits, runs every scenario of issue 6 against hoardfs,
s3fs and rclone, and writes report.md, results.json and chart.png. See bench/README.md.
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import resource
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUCKET = "hoardfs-bench"
MiB = 1 << 20
SECRET = "S3RVER"
ALL_SYSTEMS = ["hoardfs", "s3fs", "rclone", "curl"]  # curl: download + sync + load (s2)
ALL_PROFILES = ["loopback", "cloud", "cloud-tls", "busy-server"]
ALL_SCENARIOS = [1, 2, 3, 4, 5, 6, 7, 8]

PRESETS = {
    # shards, shard MiB, large MiB, scenario-5 shard MiB, tree objects, runs
    "full": dict(shards=8, shard_mib=1024, large_mib=4096, s5_shard_mib=256, tree=10000, runs=3,
                 curl_conns="8,16,32,64"),
    "quick": dict(shards=8, shard_mib=64, large_mib=512, s5_shard_mib=64, tree=1000, runs=3,
                  curl_conns="8,16,32,64"),
    "smoke": dict(shards=8, shard_mib=1, large_mib=8, s5_shard_mib=1, tree=40, runs=1,
                  curl_conns="4,8"),
}

LOG = None
T_START = time.monotonic()


def log(msg):
    line = "[%7.1fs] %s" % (time.monotonic() - T_START, msg)
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


class BenchError(Exception):
    pass


# ---- processes and cleanup ---------------------------------------------------------------------


def run(cmd, timeout, env=None, check=False, stdout=subprocess.PIPE, cwd=None):
    """Runs CMD (a list) in its own process group, killed (whole group) after TIMEOUT seconds.
    Returns (rc, stdout, stderr, seconds); rc 124 on timeout."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd,
                         start_new_session=True, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill_group(p.pid)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        rc = 124
        err = (err or "") + "\n(timed out after %ss)" % timeout
    secs = time.monotonic() - t0
    if check and rc != 0:
        raise BenchError("%s: exit %s: %s" % (" ".join(cmd[:3]), rc, (err or "").strip()[-400:]))
    return rc, out or "", err or "", secs


def kill_group(pid):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(30):
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except (OSError, IndexError):
        return False


def pid_is(pid, name):
    """Whether PID runs program NAME (argv[0], or a title such as "nginx: master process")."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            a0 = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return os.path.basename(a0) == name or a0.startswith(name + ":")


def stop_pid(pid, name, proc=None, grace=5.0):
    """SIGTERM to PID (only while it still runs NAME), then SIGKILL; reaps PROC if given."""
    if not pid or not pid_alive(pid) or (name and not pid_is(pid, name)):
        if proc:
            proc.poll()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        if proc:
            proc.poll()
        time.sleep(0.05)
    if pid_alive(pid):
        log("cleanup: %s %d ignored SIGTERM; SIGKILL" % (name, pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if proc:
                proc.poll()
            if not pid_alive(pid):
                break
            time.sleep(0.1)
    if proc:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """User + system CPU seconds PID has used so far (None if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_seconds(pid):
    """CPU seconds of PID and its direct children (nginx's master and workers)."""
    total = cpu_seconds(pid) or 0.0
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        kids = []
    return total + sum(cpu_seconds(k) or 0.0 for k in kids)


def thread_cpu_seconds(pid):
    """{thread name: CPU seconds} of PID's threads, summed by name (hoardfs names its threads:
    hfs-fetch, hfs-writer, hfs-meta; the engine keeps the program's name)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                st = f.read()
            name = st[st.index("(") + 1:st.rindex(")")]
            fields = st.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return out


def children_cpu_seconds():
    """CPU seconds of this process's children that have been waited for (readers, tools)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def rss_parts_kib(pid):
    """Current RssAnon/RssFile/RssShmem of PID (what its peak is made of)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def mountinfo():
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index("-") + 1]
            out[parts[4]] = (parts[2], fstype)
    return out


def is_mounted(mp):
    return mp in mountinfo()


def force_unmount(mp):
    """Unmounts MP whatever state its FUSE server is in; never blocks for long."""
    mi = mountinfo().get(mp)
    if not mi:
        return True
    rc, _, err, _ = run(["fusermount3", "-u", "-q", mp], timeout=15)
    if rc == 0 and not is_mounted(mp):
        return True
    log("cleanup: fusermount3 -u %s failed (%s); aborting its FUSE connection" % (mp, err.strip()))
    conn = mi[0].split(":")[1]
    try:
        with open("/sys/fs/fuse/connections/%s/abort" % conn, "w") as f:
            f.write("1")
    except OSError:
        pass
    run(["umount", "-l", mp], timeout=15)
    return not is_mounted(mp)


class Cleanup:
    """Everything started is registered here and undone in reverse order on exit or signal."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, fn, *args):
        with self.lock:
            self.items.append((fn, args))
        return (fn, args)

    def remove(self, token):
        with self.lock:
            if token in self.items:
                self.items.remove(token)

    def run_all(self):
        while True:
            with self.lock:
                if not self.items:
                    return
                fn, args = self.items.pop()
            try:
                fn(*args)
            except Exception as e:  # keep cleaning
                log("cleanup step failed: %s" % e)


CLEANUP = Cleanup()


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ---- machine -----------------------------------------------------------------------------------


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out


def disk_read_bytes():
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            name = p[2]
            if name.startswith(("loop", "ram", "zram", "dm-")) or name[-1].isdigit() and \
                    not name.startswith("nvme"):
                continue
            total += int(p[5]) * 512
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class LoadSampler(threading.Thread):
    """Samples the machine's load average and CPU use every 5 s: other work on the machine
    (another test suite) shows up here, and in the report."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    @staticmethod
    def cpu():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v) - idle, sum(v)

    def run(self):
        b0, t0 = self.cpu()
        while not self.stop.wait(5):
            b1, t1 = self.cpu()
            self.samples.append({"t": round(time.monotonic() - T_START, 1), "load_1m": loadavg(),
                                 "cpu_busy": round((b1 - b0) / max(1, t1 - t0), 3)})
            b0, t0 = b1, t1


def sync():
    run(["sync"], timeout=300)


def drop_caches():
    sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def machine():
    mi = meminfo()
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    osr = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osr = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    versions = {}
    for name, cmd in [("s3fs", ["s3fs", "--version"]), ("rclone", ["rclone", "version"]),
                      ("nginx", ["nginx", "-v"]), ("curl", ["curl", "--version"])]:
        if shutil.which(cmd[0]):
            _, out, err, _ = run(cmd, timeout=20)
            versions[name] = ((out or err).strip().splitlines() or [""])[0]
    return {
        "cores": os.cpu_count(), "cpu": cpu, "memory_bytes": mi["MemTotal"],
        "kernel": platform.release(), "os": osr, "hostname": socket.gethostname(),
        "versions": versions,
    }


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---- data sets ---------------------------------------------------------------------------------


class Datasets:
    """Objects of bucket BUCKET, written straight into s3rver's file layout under WORK/s3 (an
    object KEY is s3/BUCKET/KEY._S3rver_object, its md5 in ..._S3rver_object.md5, its metadata in
    KEY._S3rver_metadata.json), so s3rver lists them and nginx serves them. Each data set is
    recorded in WORK/datasets/NAME.json once complete and reused by later runs."""

    def __init__(self, work):
        self.work = work
        self.s3dir = os.path.join(work, "s3")
        self.meta = os.path.join(work, "datasets")
        os.makedirs(os.path.join(self.s3dir, BUCKET), exist_ok=True)
        os.makedirs(self.meta, exist_ok=True)
        self.sets = {}

    def obj_path(self, key):
        return os.path.join(self.s3dir, BUCKET, key + "._S3rver_object")

    def _load(self, name):
        p = os.path.join(self.meta, name + ".json")
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError):
            return None
        for o in d["objects"]:
            try:
                if os.path.getsize(self.obj_path(o["key"])) != o["size"]:
                    return None
            except OSError:
                return None
        return d

    def _save(self, name, d):
        p = os.path.join(self.meta, name + ".json")
        with open(p + ".tmp", "w") as f:
            json.dump(d, f)
        os.rename(p + ".tmp", p)

    def _put_meta(self, key, md5):
        base = os.path.join(self.s3dir, BUCKET, key)
        with open(base + "._S3rver_object.md5", "w") as f:
            f.write(md5)
        with open(base + "._S3rver_metadata.json", "w") as f:
            json.dump({"content-type": "application/octet-stream"}, f)

    def _put_small(self, key, data):
        path = self.obj_path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)
        md5 = hashlib.md5(data).hexdigest()
        self._put_meta(key, md5)
        return {"key": key, "size": len(data), "md5": md5}

    def _put_random(self, key, size, prefix=b""):
        """Writes PREFIX then pseudo-random bytes (AES-128-CTR keystream from openssl, seeded by
        KEY: fast and incompressible) up to SIZE bytes."""
        path = self.obj_path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:  # left complete by an interrupted generation (objects are renamed when complete)
            if os.path.getsize(path) == size:
                with open(path + ".md5") as f:
                    return {"key": key, "size": size, "md5": f.read().strip()}
        except OSError:
            pass
        k = hashlib.sha256(key.encode()).hexdigest()
        proc = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", k[:32],
                                 "-iv", k[32:64], "-in", "/dev/zero"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        md5 = hashlib.md5()
        left = size
        try:
            with open(path + ".tmp", "wb", buffering=0) as f:
                if prefix:
                    f.write(prefix)
                    md5.update(prefix)
                    left -= len(prefix)
                while left > 0:
                    chunk = proc.stdout.read(min(left, 8 * MiB))
                    if not chunk:
                        raise BenchError("openssl stopped generating data")
                    f.write(chunk)
                    md5.update(chunk)
                    left -= len(chunk)
        finally:
            proc.kill()
            proc.wait()
        os.rename(path + ".tmp", path)
        h = md5.hexdigest()
        self._put_meta(key, h)
        return {"key": key, "size": size, "md5": h}

    @staticmethod
    def safetensors_header(shard_idx, size, ntensors=16):
        """A valid safetensors header (8-byte length + JSON, padded with spaces to a multiple of
        8) whose BF16 tensors tile the rest of a SIZE-byte file exactly."""
        hlen = 4096
        while True:
            data = size - 8 - hlen
            if data <= 0 or data % 2:
                raise BenchError("shard size %d cannot hold a safetensors file" % size)
            n = max(1, min(ntensors, data // 4096))
            per = (data // n) // 2 * 2
            tensors, off = {}, 0
            for t in range(n):
                length = per if t < n - 1 else data - off
                name = "model.layers.%d.mlp.w%d.weight" % (shard_idx, t)
                tensors[name] = {"dtype": "BF16", "shape": [length // 2], "data_offsets": [off, off + length]}
                off += length
            tensors["__metadata__"] = {"format": "pt"}
            h = json.dumps(tensors, separators=(",", ":")).encode()
            if len(h) <= hlen:
                h += b" " * (hlen - len(h))
                return len(h).to_bytes(8, "little") + h, list(tensors)
            hlen *= 2

    def model(self, shards, shard_mib):
        name = "m%dx%dm" % (shards, shard_mib)
        d = self._load(name)
        if not d:
            log("generating model %s: %d safetensors shards of %d MiB" % (name, shards, shard_mib))
            prefix = "%s/" % name
            size = shard_mib * MiB
            jobs, weight_map = [], {}
            for i in range(1, shards + 1):
                fname = "model-%05d-of-%05d.safetensors" % (i, shards)
                header, names = self.safetensors_header(i, size)
                for t in names:
                    if t != "__metadata__":
                        weight_map[t] = fname
                jobs.append((prefix + fname, size, header))
            with ThreadPoolExecutor(2) as ex:
                objs = list(ex.map(lambda j: self._put_random(*j), jobs))
            vocab = {"tok%d" % i: i for i in range(32000)}
            small = {
                "config.json": {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
                                "num_hidden_layers": shards, "torch_dtype": "bfloat16",
                                "vocab_size": 32000},
                "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2},
                "tokenizer.json": {"version": "1.0", "model": {"type": "BPE", "vocab": vocab,
                                                               "merges": []}},
                "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>",
                                          "model_max_length": 4096},
                "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>"},
                "model.safetensors.index.json": {"metadata": {"total_size": size * shards},
                                                 "weight_map": weight_map},
            }
            for fname, content in small.items():
                objs.append(self._put_small(prefix + fname, json.dumps(content, indent=1).encode()))
            d = {"name": name, "prefix": prefix, "objects": objs,
                 "shards": [prefix + "model-%05d-of-%05d.safetensors" % (i, shards)
                            for i in range(1, shards + 1)],
                 "small": [prefix + f for f in small]}
            self._save(name, d)
        d["bytes"] = sum(o["size"] for o in d["objects"])
        d["shard_bytes"] = sum(o["size"] for o in d["objects"] if o["key"] in d["shards"])
        self.sets[name] = d
        return d

    def large(self, mib):
        name = "large-%dm" % mib
        d = self._load(name)
        if not d:
            log("generating the single large file %s (%d MiB)" % (name, mib))
            key = "%s.bin" % name
            d = {"name": name, "key": key, "objects": [self._put_random(key, mib * MiB)]}
            self._save(name, d)
        d["bytes"] = d["objects"][0]["size"]
        self.sets[name] = d
        return d

    def tree(self, n):
        name = "t%d" % n
        d = self._load(name)
        if not d:
            log("generating the %d-object tree %s" % (n, name))
            prefix = "%s/" % name
            # index.json at the top: s3rver reports a common prefix only when a key lies right
            # below it, so a directory holding nothing but directories would not be listed
            objs = [self._put_small(prefix + "index.json", json.dumps({"objects": n}).encode())]
            for i in range(n - 1):
                key = "%sd%03d/f%05d.json" % (prefix, i // 100, i)
                objs.append(self._put_small(key, json.dumps({"i": i, "pad": "x" * (i % 200)}).encode()))
            d = {"name": name, "prefix": prefix, "objects": objs}
            self._save(name, d)
        d["bytes"] = sum(o["size"] for o in d["objects"])
        self.sets[name] = d
        return d

    def all_objects(self):
        for d in self.sets.values():
            for o in d["objects"]:
                yield o

    def prewarm(self, keys):
        """Makes sure the server's files for KEYS are in the page cache (read twice, so the
        kernel sees them as used and evicts the clients' pages first)."""
        paths = [self.obj_path(k) for k in keys]
        for _ in range(2):
            for p in paths:
                with open(p, "rb", buffering=0) as f:
                    buf = bytearray(8 * MiB)
                    while f.readinto(buf):
                        pass


# ---- servers -----------------------------------------------------------------------------------

NGINX_CONF = r"""
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
load_module /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so;
user root root;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  open_file_cache max=50000 inactive=120s;
  default_type application/octet-stream;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  map_hash_bucket_size 256;
  map_hash_max_size 262144;
  # $objkey is the request's path, saved before try_files rewrites $uri
  map $objkey $s3etag {{
    default "";
    include {dir}/etags.map;
  }}
  # If-Match: absent, "*" or the object's ETag pass; anything else is 412 (s3rver ignores it)
  map "$http_if_match|$s3etag" $if_match_fail {{
    default 1;
    "~^\|" 0;
    "~^\*\|." 0;
    "~^(.+)\|\1$" 0;
  }}
  log_format bench '$msec $request_method $uri $status $body_bytes_sent "$http_range" $request_time $connection';
  map $server_port $cloud_log {{
    default cloud;
    {tport} cloud-tls;
  }}
  upstream s3rver {{ server 127.0.0.1:{s3port}; keepalive 64; }}

  # loopback profile: object bytes at memory speed
  server {{
    listen 127.0.0.1:{lport} backlog=4096;
    access_log {dir}/loopback.log bench;
    set $objkey $uri;
    error_page 418 = @s3rver;
    if ($args) {{ return 418; }}
    if ($if_match_fail) {{ return 412; }}
    location ~ ^/[^/]+/.*[^/]$ {{
      root {s3dir};
      more_clear_input_headers If-Match;
      etag off;
      add_header ETag $s3etag always;
      try_files $uri._S3rver_object @s3rver;
    }}
    location / {{
      proxy_pass http://s3rver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
    location @s3rver {{
      proxy_pass http://s3rver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
  }}

  # cloud profile: every response's first byte {latency_ms} ms after the request, each
  # connection paced at {rate} bytes/s; cloud-tls: the same over HTTPS (a CA made at run time)
  server {{
    listen 127.0.0.1:{cport} backlog=4096;
    listen 127.0.0.1:{tport} ssl backlog=4096;
    ssl_certificate {dir}/tls/server.crt;
    ssl_certificate_key {dir}/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:tls:10m;
    access_log {dir}/$cloud_log.log bench;
    set $objkey $uri;
    error_page 418 = @slow_s3rver;
    if ($args) {{ return 418; }}
    if ($if_match_fail) {{ return 412; }}
    location ~ ^/[^/]+/.*[^/]$ {{ echo_sleep {latency_s}; echo_exec @obj; }}
    location / {{ echo_sleep {latency_s}; echo_exec @s3rver; }}
    location @slow_s3rver {{ echo_sleep {latency_s}; echo_exec @s3rver; }}
    location @obj {{
      root {s3dir};
      more_clear_input_headers If-Match;
      etag off;
      add_header ETag $s3etag always;
      limit_rate {rate};
      try_files $uri._S3rver_object @s3rver;
    }}
    location @s3rver {{
      proxy_pass http://s3rver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
  }}

  # busy-server profile: s3rver itself sends every byte (a store endpoint that competes for the
  # CPU, like a busy one), each response {latency_ms} ms late, each connection paced at {rate}
  # bytes/s; nginx only delays and paces (no buffering)
  server {{
    listen 127.0.0.1:{bport} backlog=4096;
    access_log {dir}/busy-server.log bench;
    set $objkey $uri;
    if ($if_match_fail) {{ return 412; }}
    location / {{ echo_sleep {latency_s}; echo_exec @paced_s3rver; }}
    location @paced_s3rver {{
      limit_rate {rate};
      proxy_buffering off;
      proxy_pass http://s3rver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
  }}
}}
"""


def make_tls(d):
    """A CA and a server certificate for 127.0.0.1 signed by it, made now in D (nothing is
    reused between runs). Every client of the run is told to trust D/ca.crt: curl and s3fs through
    CURL_CA_BUNDLE, rclone through SSL_CERT_FILE, hoardfs through hoardfs-cached --ca-file.
    Returns the CA's path."""
    os.makedirs(d, exist_ok=True)
    ca, key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    skey, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    for cmd in (["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", ca, "-days", "2", "-subj", "/CN=hoardfs bench CA"],
                ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", skey, "-out", csr, "-subj", "/CN=127.0.0.1"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", key, "-CAcreateserial",
                 "-out", crt, "-days", "2", "-extfile", ext]):
        rc, _, err, _ = run(cmd, timeout=60)
        if rc != 0:
            raise BenchError("%s: %s" % (" ".join(cmd[:3]), err.strip()))
    # curl (the calibration, parallel_curl) and s3fs read CURL_CA_BUNDLE; rclone SSL_CERT_FILE
    os.environ["CURL_CA_BUNDLE"] = ca
    os.environ["SSL_CERT_FILE"] = ca
    return ca


class Servers:
    def __init__(self, args, data, outdir):
        self.args = args
        self.data = data
        self.dir = os.path.join(args.work, "servers")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.endpoints = {}
        self.logs = {}

    def start(self):
        node = shutil.which("node")
        s3rver = os.path.join(ROOT, "tests/servers/node_modules/s3rver/bin/s3rver.js")
        if not node or not os.path.exists(s3rver):
            raise BenchError("s3rver is not installed (bash tests/servers/install.sh)")
        self.s3port = free_port()
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        logf = open(os.path.join(self.dir, "s3rver.log"), "w")
        p = subprocess.Popen([node, s3rver, "-d", self.data.s3dir, "-a", "127.0.0.1", "-p",
                              str(self.s3port), "-s"], stdout=logf, stderr=logf, env=env,
                             start_new_session=True)
        CLEANUP.add(stop_pid, p.pid, "", p)
        self.s3rver = p
        self.s3_url = "http://127.0.0.1:%d" % self.s3port
        self._wait_http(self.s3_url + "/", p, "s3rver")

        with open(os.path.join(self.dir, "etags.map"), "w") as f:
            for o in self.data.all_objects():
                f.write('"/%s/%s" "\\"%s\\"";\n' % (BUCKET, o["key"], o["md5"]))
        self.ca = make_tls(os.path.join(self.dir, "tls"))
        lport, cport, tport, bport = free_port(), free_port(), free_port(), free_port()
        conf = NGINX_CONF.format(
            workers=os.cpu_count() or 2, dir=self.dir, s3port=self.s3port, lport=lport,
            cport=cport, tport=tport, bport=bport, s3dir=self.data.s3dir,
            latency_ms=self.args.latency_ms,
            latency_s="%.3f" % (self.args.latency_ms / 1000.0), rate=self.args.rate)
        cpath = os.path.join(self.dir, "nginx.conf")
        with open(cpath, "w") as f:
            f.write(conf)
        rc, _, err, _ = run(["nginx", "-t", "-q", "-c", cpath, "-p", self.dir], timeout=30)
        if rc != 0:
            raise BenchError("nginx -t: " + err.strip())
        logf = open(os.path.join(self.dir, "nginx.out"), "w")
        p = subprocess.Popen(["nginx", "-c", cpath, "-p", self.dir], stdout=logf, stderr=logf,
                             start_new_session=True)
        CLEANUP.add(stop_pid, p.pid, "nginx", p)
        self.nginx = p
        self.endpoints = {"loopback": "http://127.0.0.1:%d" % lport,
                          "cloud": "http://127.0.0.1:%d" % cport,
                          "cloud-tls": "https://127.0.0.1:%d" % tport,
                          "busy-server": "http://127.0.0.1:%d" % bport}
        self.logs = {prof: os.path.join(self.dir, prof + ".log") for prof in self.endpoints}
        for prof, url in self.endpoints.items():
            self._wait_http(url + "/", p, "nginx")
        log("servers: s3rver %s, nginx %s (CA %s)" % (
            self.s3_url, ", ".join("%s %s" % kv for kv in self.endpoints.items()), self.ca))

    def _wait_http(self, url, proc, name):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError("%s exited at start (see %s)" % (name, self.dir))
            rc, out, _, _ = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                 "--max-time", "2", url], timeout=5)
            if out.strip() not in ("", "000"):
                return
            time.sleep(0.2)
        raise BenchError("%s did not answer %s" % (name, url))

    def cpu(self):
        """CPU seconds the object servers (s3rver, nginx's processes) have used so far."""
        return sum(tree_cpu_seconds(p.pid) for p in (self.s3rver, self.nginx))

    def log_offset(self, profile):
        try:
            return os.path.getsize(self.logs[profile])
        except OSError:
            return 0

    def store_bytes(self, profile, since):
        """Body bytes of object GETs the endpoint sent since log offset SINCE; and GET count."""
        total = gets = 0
        try:
            with open(self.logs[profile]) as f:
                f.seek(since)
                for line in f:
                    p = line.split()
                    if len(p) >= 5 and p[1] == "GET" and p[2].startswith("/%s/" % BUCKET):
                        total += int(p[4])
                        gets += 1
        except OSError:
            pass
        return total, gets


# ---- S3 helpers --------------------------------------------------------------------------------


def curl_s3(args, timeout=60):
    return run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u", SECRET + ":" + SECRET,
                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"] + args, timeout=timeout)


def check_endpoint(url, data, obj, suffix=True):
    """Checks what the clients rely on: HEAD (ETag, Last-Modified, Content-Length), ranges
    (plain and, unless SUFFIX is false, suffix) with the right bytes, If-Match, and a listing.
    Returns a list of problems (empty when all is well)."""
    problems = []
    key, size, md5 = obj["key"], obj["size"], obj["md5"]
    u = "%s/%s/%s" % (url, BUCKET, key)
    rc, out, err, _ = curl_s3(["-I", u])
    hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in out.splitlines() if ":" in l}
    if hdr.get("etag") != '"%s"' % md5:
        problems.append("HEAD ETag %r, want \"%s\"" % (hdr.get("etag"), md5))
    if hdr.get("content-length") != str(size):
        problems.append("HEAD Content-Length %r" % hdr.get("content-length"))
    if "last-modified" not in hdr:
        problems.append("HEAD has no Last-Modified")
    path = data.obj_path(key)
    with open(path, "rb") as f:
        f.seek(size // 3)
        want_mid = f.read(1000)
        f.seek(size - 100)
        want_tail = f.read(100)
    ranges = [("%d-%d" % (size // 3, size // 3 + 999), want_mid)]
    if suffix:
        ranges.append(("-100", want_tail))
    for rng, want in ranges:
        proc = subprocess.run(["curl", "-sS", "-D", "-", "-H", "Range: bytes=" + rng,
                               "-H", 'If-Match: "%s"' % md5, "-o", "/dev/stdout", u],
                              capture_output=True, timeout=60)
        body = proc.stdout
        head, _, rest = body.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 206") or rest != want:
            problems.append("Range %s: %s" % (rng, head.split(b"\r\n")[0].decode(errors="replace")))
        if b'etag: "%s"' % md5.encode() not in head.lower():
            problems.append("Range %s: no ETag in the 206" % rng)
    rc, out, _, _ = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                         'If-Match: "0123"', "-H", "Range: bytes=0-9", u], timeout=30)
    if out != "412":
        problems.append("If-Match mismatch answered %s, want 412" % out)
    rc, out, _, _ = curl_s3(["%s/%s?list-type=2&prefix=%s" % (url, BUCKET, key)])
    if "<Key>%s</Key>" % key not in out or "&quot;%s&quot;" % md5 not in out:
        problems.append("listing lacks the object or its ETag: " + out[:200])
    return problems


def curl_timing(url, n, rng="0-0"):
    """Time to first byte of N sequential requests on one keep-alive connection."""
    args = ["curl", "-s"]
    for _ in range(n):
        args += ["-o", "/dev/null", "-H", "Range: bytes=" + rng, "-w", "%{time_starttransfer}\\n", url]
    rc, out, _, _ = run(args, timeout=120)
    return [float(x) for x in out.split()]


def parallel_curl(url, size, conns, timeout):
    """CONNS curl processes, each GETting one contiguous range of the SIZE-byte object at URL
    to /dev/null. Returns (bytes/s, ok)."""
    per = -(-size // conns)
    procs = []
    t0 = time.monotonic()
    for i in range(conns):
        s, e = i * per, min(size, (i + 1) * per) - 1
        if s > e:
            break
        procs.append(subprocess.Popen(["curl", "-sS", "--fail", "-o", "/dev/null", "-H",
                                       "Range: bytes=%d-%d" % (s, e), url],
                                      stderr=subprocess.DEVNULL, start_new_session=True))
    ok = True
    for p in procs:
        try:
            left = max(1, timeout - (time.monotonic() - t0))
            ok = (p.wait(timeout=left) == 0) and ok
        except subprocess.TimeoutExpired:
            kill_group(p.pid)
            ok = False
    secs = time.monotonic() - t0
    return size / secs, ok


# ---- systems -----------------------------------------------------------------------------------


class MountHandle:
    def __init__(self, system, mp, proc, caches, extra_pids=()):
        self.system, self.mp, self.proc, self.caches = system, mp, proc, caches
        self.extra_pids = list(extra_pids)
        self.token = None

    def pids(self):
        return [self.proc.pid] + self.extra_pids


class System:
    name = "?"
    binary = "?"
    shares_daemon = False

    def __init__(self, bench):
        self.b = bench
        self.counter = 0
        self.logdir = os.path.join(bench.args.work, "logs", self.name)
        os.makedirs(self.logdir, exist_ok=True)

    def available(self):
        return shutil.which(self.binary) is not None

    def new_dir(self, kind):
        self.counter += 1
        d = os.path.join(self.b.args.work, "run", "%s-%s-%d" % (self.name, kind, self.counter))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        return d

    def wait_mounted(self, mp, proc, logpath, secs=30):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if is_mounted(mp):
                rc, _, _, _ = run(["stat", "-t", mp], timeout=10)
                if rc == 0:
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = ""
        try:
            with open(logpath) as f:
                tail = f.read()[-800:]
        except OSError:
            pass
        raise BenchError("%s did not mount %s: %s" % (self.name, mp, tail.strip()))

    def spawn_mount(self, cmd, mp, env, logname):
        logpath = os.path.join(self.logdir, logname)
        logf = open(logpath, "a")
        logf.write("=== %s\n" % " ".join(cmd))
        logf.flush()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env, start_new_session=True)
        token = CLEANUP.add(self.cleanup_mount, mp, proc)
        try:
            self.wait_mounted(mp, proc, logpath)
        except BenchError:
            self.cleanup_mount(mp, proc)
            CLEANUP.remove(token)
            raise
        return proc, token

    def cleanup_mount(self, mp, proc):
        force_unmount(mp)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_pid(proc.pid, "", proc)

    # A "session" is what one cold run needs: fresh caches (and daemon); mount() adds mounts.
    def start_session(self, profile):
        self.session_profile = profile
        self.mounts = []

    def mount(self):
        raise NotImplementedError

    def rss(self):
        """Peak RSS (VmHWM, KiB) of this session's processes, by role."""
        out = {}
        for i, m in enumerate(self.mounts):
            out["mount%d" % (i + 1)] = vm_hwm_kib(m.proc.pid)
        return out

    def cpu(self):
        """CPU seconds this session's processes used (they start with the session), by role."""
        out = {}
        for i, m in enumerate(self.mounts):
            out["mount%d" % (i + 1)] = cpu_seconds(m.proc.pid)
        if getattr(self, "daemon", None):
            out["daemon"] = cpu_seconds(self.daemon.pid)
        return out

    def rss_parts(self):
        out = {}
        for i, m in enumerate(self.mounts):
            out["mount%d" % (i + 1)] = rss_parts_kib(m.proc.pid)
        if getattr(self, "daemon", None):
            out["daemon"] = rss_parts_kib(self.daemon.pid)
        return out

    def end_session(self):
        for m in reversed(self.mounts):
            self.cleanup_mount(m.mp, m.proc)
            CLEANUP.remove(m.token)
            for c in m.caches:
                shutil.rmtree(c, ignore_errors=True)
            shutil.rmtree(m.mp, ignore_errors=True) if not is_mounted(m.mp) else None
        self.mounts = []

    def settings(self):
        return ""


class Hoardfs(System):
    name = "hoardfs"
    shares_daemon = True

    def __init__(self, bench):
        super().__init__(bench)
        self.bin = os.path.join(bench.args.build, "mountd", "hoardfs")
        self.cached = os.path.join(bench.args.build, "cached", "hoardfs-cached")
        self.inspect = os.path.join(bench.args.build, "tools", "hoardfs-inspect")
        self.daemon = None

    def available(self):
        return os.access(self.bin, os.X_OK) and os.access(self.cached, os.X_OK)

    def env(self):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=SECRET, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1")
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.pop(k, None)
        return env

    def settings(self):
        return "defaults (" + " ".join(self.b.args.hoardfs_opts or []) + ")" if self.b.args.hoardfs_opts \
            else "default settings; one hoardfs-cached per session, fresh cache dir"

    def start_session(self, profile):
        super().start_session(profile)
        self.cache = self.new_dir("cache")
        self.sock = os.path.join("/tmp", "hfsb-%d-%d.sock" % (os.getpid(), self.counter))
        logpath = os.path.join(self.logdir, "cached.log")
        logf = open(logpath, "a")
        cmd = [self.cached, "--foreground", "--cache-dir", self.cache, "--socket", self.sock,
               "--ca-file", self.b.servers.ca] + list(self.b.args.cached_opts or [])
        logf.write("=== %s\n" % " ".join(cmd))
        logf.flush()
        self.daemon = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=self.env(),
                                       start_new_session=True)
        self.daemon_token = CLEANUP.add(stop_pid, self.daemon.pid, "hoardfs-cached", self.daemon)
        deadline = time.monotonic() + 30
        while True:
            if self.daemon.poll() is not None:
                raise BenchError("hoardfs-cached exited at start (see %s)" % logpath)
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.connect(self.sock)
                s.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("hoardfs-cached did not listen on %s" % self.sock)
                time.sleep(0.05)

    def mount(self):
        mp = self.new_dir("mnt")
        url = self.b.servers.endpoints[self.session_profile]
        cmd = [self.bin, "--foreground", "s3://" + BUCKET, mp, "--endpoint", url, "--cache-dir",
               self.cache, "--socket", self.sock, "--no-autostart"] + list(self.b.args.hoardfs_opts or [])
        proc, token = self.spawn_mount(cmd, mp, self.env(), "mount.log")
        m = MountHandle(self, mp, proc, [])
        m.token = token
        self.mounts.append(m)
        return m

    def rss(self):
        out = super().rss()
        if self.daemon:
            out["daemon"] = vm_hwm_kib(self.daemon.pid)
        return out

    def stats(self):
        if not os.access(self.inspect, os.X_OK):
            return None
        rc, out, _, _ = run([self.inspect, "--socket", self.sock, "--json", "stats"], timeout=20)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def cache_file_of(self, size):
        """The cache file holding an object of SIZE bytes (the largest such file)."""
        best = None
        for dp, _, fs in os.walk(os.path.join(self.cache, "objects")):
            for f in fs:
                p = os.path.join(dp, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                if st.st_size == size and (best is None or st.st_blocks > best[1]):
                    best = (p, st.st_blocks)
        return best[0] if best else None

    def end_session(self):
        super().end_session()
        if self.daemon:
            stop_pid(self.daemon.pid, "hoardfs-cached", self.daemon, grace=15)
            CLEANUP.remove(self.daemon_token)
            self.daemon = None
            shutil.rmtree(self.cache, ignore_errors=True)
            try:
                os.unlink(self.sock)
            except OSError:
                pass


class S3fs(System):
    name = "s3fs"
    binary = "s3fs"

    def opts(self):
        a = self.b.args
        return ["ro", "use_path_request_style", "endpoint=us-east-1", "kernel_cache",
                "parallel_count=%d" % a.s3fs_parallel, "multipart_size=%d" % a.s3fs_multipart,
                "dbglevel=warn"]

    def settings(self):
        return "-o " + ",".join(self.opts()) + ",use_cache=DIR,passwd_file=F"

    def start_session(self, profile):
        super().start_session(profile)
        self.passwd = os.path.join(self.b.args.work, "s3fs.passwd")
        with open(self.passwd, "w") as f:
            f.write("%s:%s\n" % (SECRET, SECRET))
        os.chmod(self.passwd, 0o600)

    def mount(self):
        mp = self.new_dir("mnt")
        cache = self.new_dir("cache")
        url = self.b.servers.endpoints[self.session_profile]
        o = self.opts() + ["url=" + url, "passwd_file=" + self.passwd, "use_cache=" + cache]
        cmd = ["s3fs", BUCKET, mp, "-f", "-o", ",".join(o)]
        proc, token = self.spawn_mount(cmd, mp, dict(os.environ), "s3fs.log")
        m = MountHandle(self, mp, proc, [cache])
        m.token = token
        self.mounts.append(m)
        return m


class Rclone(System):
    name = "rclone"
    binary = "rclone"

    def flags(self):
        a = self.b.args
        return ["--read-only", "--vfs-cache-mode", "full", "--vfs-read-ahead", a.rclone_read_ahead,
                "--buffer-size", a.rclone_buffer, "--dir-cache-time", "1h", "--use-server-modtime",
                "--log-level", "NOTICE"]

    def settings(self):
        return " ".join(self.flags()) + " --cache-dir DIR"

    def mount(self):
        mp = self.new_dir("mnt")
        cache = self.new_dir("cache")
        url = self.b.servers.endpoints[self.session_profile]
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)
        env.update({
            "RCLONE_CONFIG": os.path.join(self.b.args.work, "rclone.conf"),
            "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENV_AUTH": "false", "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": SECRET,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET, "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
            "RCLONE_CONFIG_BENCH_ENDPOINT": url, "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        })
        open(env["RCLONE_CONFIG"], "a").close()
        cmd = ["rclone", "mount", "bench:" + BUCKET, mp, "--cache-dir", cache] + self.flags()
        proc, token = self.spawn_mount(cmd, mp, env, "rclone.log")
        m = MountHandle(self, mp, proc, [cache])
        m.token = token
        self.mounts.append(m)
        return m


class CurlDownload:
    """Stands for the user's alternative in guarded(): nothing to mount or stop."""
    name = "curl"

    def end_session(self):
        pass


# ---- the benchmark -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.results = {"runs": [], "limits": {}, "calibration": {}, "failures": [], "notes": []}
        self.py = sys.executable or "python3"
        self.loader = os.path.join(HERE, "loader.py")

    # -- bookkeeping --
    def record(self, **kw):
        kw.setdefault("ok", True)
        kw.setdefault("loadavg_1m", loadavg())
        if kw.get("bytes") and kw.get("seconds"):
            kw["mb_s"] = kw["bytes"] / kw["seconds"] / 1e6
        self.results["runs"].append(kw)
        if kw["ok"]:
            extra = ""
            if "mb_s" in kw:
                extra = "%.0f MB/s" % kw["mb_s"]
            elif "seconds" in kw:
                extra = "%.3f s" % kw["seconds"]
            log("  %s %s %s run %s: %s" % (kw.get("scenario"), kw.get("profile"), kw.get("system"),
                                           kw.get("run"), extra))
        else:
            log("  %s %s %s run %s FAILED: %s" % (kw.get("scenario"), kw.get("profile"),
                                                 kw.get("system"), kw.get("run"), kw.get("error")))

    def fail(self, scenario, profile, system, run_no, err):
        self.record(scenario=scenario, profile=profile, system=system, run=run_no, ok=False,
                    error=str(err)[:600])

    def timeout_for(self, nbytes):
        return max(60, int(nbytes / (self.args.min_rate_mbs * 1e6)) + 30)

    def mnt_run(self, cmd, nbytes=0, timeout=None):
        rc, out, err, secs = run(cmd, timeout=timeout or self.timeout_for(nbytes))
        if rc != 0:
            raise BenchError("%s: exit %d: %s" % (os.path.basename(cmd[0]) if cmd[0] != self.py
                                                  else cmd[2], rc, (err + out).strip()[-400:]))
        return out, secs

    # -- set-up --
    def setup(self):
        a = self.args
        self.data = Datasets(a.work)
        self.model = self.data.model(a.shards, a.shard_mib)
        self.large = self.data.large(a.large_mib)
        self.s5model = self.model if a.s5_shard_mib == a.shard_mib else \
            self.data.model(a.shards, a.s5_shard_mib)
        self.tree = self.data.tree(a.tree)
        self.servers = Servers(a, self.data, a.out)
        self.servers.start()
        for prof, url in self.servers.endpoints.items():
            # s3rver (which sends the bytes in busy-server) does not do suffix ranges; none of
            # the systems asks it for one
            sfx = prof != "busy-server"
            probs = check_endpoint(url, self.data, self.large["objects"][0], sfx)
            probs += check_endpoint(url, self.data, self.model["objects"][0], sfx)
            self.results["calibration"].setdefault(prof, {})["endpoint_checks"] = probs or "ok"
            if probs:
                raise BenchError("endpoint %s misbehaves: %s" % (prof, "; ".join(probs)))
        log("endpoint checks passed (HEAD, ranges, suffix range, If-Match, ETag, listing)")

    def calibrate(self):
        a = self.args
        lg = self.large["objects"][0]
        self.data.prewarm([lg["key"]])
        for prof in a.profiles:
            url = "%s/%s/%s" % (self.servers.endpoints[prof], BUCKET, lg["key"])
            cal = self.results["calibration"].setdefault(prof, {})
            t = curl_timing(url, 21)[1:]  # the first pays for the connection
            cal["first_byte_s"] = median(t)
            one = min(lg["size"], 256 * MiB)
            rc, out, _, secs = run(["curl", "-sS", "-o", "/dev/null", "-H", "Range: bytes=0-%d" % (one - 1),
                                    "-w", "%{time_starttransfer} %{time_total}", url], timeout=600)
            st, tot = (float(x) for x in out.split())
            cal["one_connection_bytes_s"] = one / (tot - st) if tot > st else None
            cal["one_connection_sample_bytes"] = one
            lim = {}
            for n in a.curl_conns:
                vals = []
                for _ in range(max(1, a.runs)):
                    rate, ok = parallel_curl(url, lg["size"], n, self.timeout_for(lg["size"]))
                    if ok:
                        vals.append(rate)
                lim[str(n)] = {"runs_bytes_s": vals, "median_bytes_s": median(vals)}
            best = max((v["median_bytes_s"] or 0, int(k)) for k, v in lim.items())
            self.results["limits"].setdefault("network", {})[prof] = {
                "bytes_s": best[0], "connections": best[1], "by_connections": lim}
            log("profile %s: first byte %.1f ms, one connection %.0f MB/s, network limit %.0f MB/s "
                "(%d connections)" % (prof, cal["first_byte_s"] * 1e3,
                                      (cal["one_connection_bytes_s"] or 0) / 1e6, best[0] / 1e6, best[1]))
        # the disk under the caches: sequential write with fdatasync (what a cold run must also do)
        p = os.path.join(a.work, "run", "disk-write.tmp")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        n = min(lg["size"], 1024 * MiB)
        rc, _, err, secs = run(["dd", "if=/dev/zero", "of=" + p, "bs=1M", "count=%d" % (n // MiB),
                                "conv=fdatasync"], timeout=600)
        os.unlink(p)
        self.results["limits"]["disk_write"] = {"bytes_s": n / secs if rc == 0 else None}
        log("disk write (dd conv=fdatasync, %d MiB): %.0f MB/s" % (n // MiB, n / secs / 1e6))

    # -- one cold session helper --
    def cold(self, sysobj, profile, prewarm_keys, nmounts=1):
        sync()
        self.data.prewarm(prewarm_keys)
        self._disk0 = disk_read_bytes()  # the run's disk reads start after the prewarm's
        self._cpu0 = (children_cpu_seconds(), self.servers.cpu())
        sysobj.start_session(profile)
        return [sysobj.mount() for _ in range(nmounts)]

    def finish(self, sysobj, profile, log_off, disk0, rec):
        rec["rss_kib"] = sysobj.rss()
        rec["rss_parts_kib"] = sysobj.rss_parts()
        rec["cpu_s"] = sysobj.cpu()
        if isinstance(sysobj, Hoardfs) and sysobj.daemon:
            rec["daemon_threads_cpu_s"] = thread_cpu_seconds(sysobj.daemon.pid)
        if getattr(self, "_cpu0", None):
            # readers (and the few tools run meanwhile), and the object servers, during the run
            rec["cpu_s"]["reader"] = children_cpu_seconds() - self._cpu0[0]
            rec["cpu_s"]["server"] = self.servers.cpu() - self._cpu0[1]
            self._cpu0 = None
        if isinstance(sysobj, Hoardfs):
            st = sysobj.stats()
            if st:
                rec["daemon_stats"] = {k: st.get(k) for k in
                                       ("bytes_from_store", "mount_hit_bytes", "hits", "misses")
                                       if k in st}
        sysobj.end_session()
        rec["store_bytes"], rec["store_gets"] = self.servers.store_bytes(profile, log_off)
        rec["disk_read_bytes"] = disk_read_bytes() - getattr(self, "_disk0", disk0)

    # -- scenarios --
    def s1(self, sysobj, profile, r):
        lg = self.large["objects"][0]
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        mounts = self.cold(sysobj, profile, [lg["key"]])
        path = os.path.join(mounts[0].mp, lg["key"])
        rec = dict(scenario="s1", profile=profile, system=sysobj.name, run=r, bytes=lg["size"])
        try:
            out, secs = self.mnt_run(["dd", "if=" + path, "of=/dev/null", "bs=1M"], lg["size"])
            rec["seconds"] = secs
        finally:
            self.finish(sysobj, profile, off, disk0, rec)
        self.record(**rec)

    def s6(self, sysobj, profile, r):
        """Time to the first byte of a cold shard (what a loader reads first: the header), in a
        fresh mount after a stat() of it (the stat's time is recorded too)."""
        key = self.model["shards"][0]
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        mounts = self.cold(sysobj, profile, [key])
        rec = dict(scenario="s6", profile=profile, system=sysobj.name, run=r)
        try:
            out, _ = self.mnt_run([self.py, self.loader, "ttfb", os.path.join(mounts[0].mp, key)],
                                  timeout=self.timeout_for(self.model["shard_bytes"]))
            t = json.loads(out)[0]
            rec.update(seconds=t["ttfb_s"], stat_seconds=t["stat_s"])
        finally:
            self.finish(sysobj, profile, off, disk0, rec)
        self.record(**rec)

    def load_cmd(self, mp, model):
        cmd = [self.py, self.loader, "load", "--threads", str(self.args.threads)]
        for k in model["small"]:
            cmd += ["--pre", os.path.join(mp, k)]
        return cmd + [os.path.join(mp, k) for k in model["shards"]]

    def s2(self, sysobj, profile, r):
        m = self.model
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        mounts = self.cold(sysobj, profile, m["shards"])
        rec = dict(scenario="s2", profile=profile, system=sysobj.name, run=r, bytes=m["bytes"])
        try:
            out, secs = self.mnt_run(self.load_cmd(mounts[0].mp, m), m["bytes"])
            j = json.loads(out.strip().splitlines()[-1])
            if j["errors"] or j["bytes"] != m["bytes"]:
                raise BenchError("loader: %s bytes, errors %s" % (j["bytes"], j["errors"][:2]))
            rec["seconds"] = secs
            rec["loader_seconds"] = j["seconds"]
        finally:
            self.finish(sysobj, profile, off, disk0, rec)
        self.record(**rec)

    def s2_curl(self, sysobj, profile, r):
        """The user's alternative to a mount: parallel curl downloads the model's files to local
        disk (as many at once as the profile's best connection count), `sync`, then the same
        loader reads the local copies; the three are timed together."""
        m = self.model
        base = "%s/%s/" % (self.servers.endpoints[profile], BUCKET)
        dl = os.path.join(self.args.work, "run", "download")
        shutil.rmtree(dl, ignore_errors=True)
        keys = list(m["small"]) + list(m["shards"])
        for k in keys:
            os.makedirs(os.path.dirname(os.path.join(dl, k)), exist_ok=True)
        sync()
        self.data.prewarm(m["shards"])
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        self._disk0 = disk0
        self._cpu0 = (children_cpu_seconds(), self.servers.cpu())
        conns = (self.results["limits"].get("network", {}).get(profile) or {}).get("connections") or 16
        rec = dict(scenario="s2_curl", profile=profile, system=sysobj.name, run=r, bytes=m["bytes"],
                   connections=conns)
        try:
            t0 = time.monotonic()

            def get(k):
                return run(["curl", "-sS", "--fail", "-o", os.path.join(dl, k), base + k],
                           timeout=self.timeout_for(m["bytes"]))

            with concurrent.futures.ThreadPoolExecutor(max_workers=conns) as ex:
                for k, (rc, _, err, _) in zip(keys, ex.map(get, keys)):
                    if rc != 0:
                        raise BenchError("curl %s: exit %d: %s" % (k, rc, err.strip()[-200:]))
            t1 = time.monotonic()
            sync()
            t2 = time.monotonic()
            out, _ = self.mnt_run(self.load_cmd(dl, m), m["bytes"])
            j = json.loads(out.strip().splitlines()[-1])
            if j["errors"] or j["bytes"] != m["bytes"]:
                raise BenchError("loader: %s bytes, errors %s" % (j["bytes"], j["errors"][:2]))
            rec.update(seconds=time.monotonic() - t0, download_seconds=t1 - t0,
                       sync_seconds=t2 - t1, loader_seconds=j["seconds"])
        finally:
            rec["cpu_s"] = {"reader": children_cpu_seconds() - self._cpu0[0],
                            "server": self.servers.cpu() - self._cpu0[1]}
            self._cpu0 = None
            rec["store_bytes"], rec["store_gets"] = self.servers.store_bytes(profile, off)
            shutil.rmtree(dl, ignore_errors=True)
        self.record(**rec)

    def s5(self, sysobj, profile, r):
        m = self.s5model
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        mounts = self.cold(sysobj, profile, m["shards"], nmounts=4)
        rec = dict(scenario="s5", profile=profile, system=sysobj.name, run=r, mounts=4,
                   model_bytes=m["bytes"], bytes=4 * m["bytes"])
        procs = []
        try:
            sync()
            cached0 = meminfo()["Cached"]
            t0 = time.monotonic()
            tmo = self.timeout_for(4 * m["bytes"])
            for mh in mounts:
                procs.append(subprocess.Popen(self.load_cmd(mh.mp, m), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True,
                                              start_new_session=True))
            outs = []
            for p in procs:
                try:
                    o, e = p.communicate(timeout=max(1, tmo - (time.monotonic() - t0)))
                except subprocess.TimeoutExpired:
                    raise BenchError("a loader did not finish within %d s" % tmo)
                if p.returncode != 0:
                    raise BenchError("loader exit %d: %s %s" % (p.returncode, o[-300:], e[-300:]))
                outs.append(json.loads(o.strip().splitlines()[-1]))
            rec["seconds"] = time.monotonic() - t0
            rec["loader_seconds"] = [o["seconds"] for o in outs]
            rec["page_cache_growth_bytes"] = meminfo()["Cached"] - cached0
        finally:
            for p in procs:
                if p.poll() is None:
                    kill_group(p.pid)
            self.finish(sysobj, profile, off, disk0, rec)
        rec["store_over_model"] = rec["store_bytes"] / m["bytes"]
        self.record(**rec)

    def s5_single(self, sysobj, profile, r):
        m = self.s5model
        off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
        mounts = self.cold(sysobj, profile, m["shards"])
        rec = dict(scenario="s5_1mount", profile=profile, system=sysobj.name, run=r, bytes=m["bytes"])
        try:
            out, secs = self.mnt_run(self.load_cmd(mounts[0].mp, m), m["bytes"])
            rec["seconds"] = secs
        finally:
            self.finish(sysobj, profile, off, disk0, rec)
        self.record(**rec)

    def s7(self, sysobj, profile, r):
        t = self.tree
        listfile = os.path.join(self.args.work, "run", "tree-%s.list" % t["name"])
        with open(listfile, "w") as f:
            for o in t["objects"]:
                f.write(o["key"] + "\n")
        for what in ("ls", "stat"):
            off, disk0 = self.servers.log_offset(profile), disk_read_bytes()
            mounts = self.cold(sysobj, profile, [])
            mp = mounts[0].mp
            rec = dict(scenario="s7_" + what, profile=profile, system=sysobj.name, run=r,
                       objects=len(t["objects"]))
            try:
                if what == "ls":
                    out, secs = self.mnt_run(["ls", "-lR", os.path.join(mp, t["prefix"])],
                                             timeout=self.args.meta_timeout)
                    n = sum(1 for line in out.splitlines() if line.startswith("-"))
                    if n != len(t["objects"]):
                        raise BenchError("ls -lR showed %d files, want %d" % (n, len(t["objects"])))
                else:
                    out, secs = self.mnt_run([self.py, self.loader, "stat", listfile, mp],
                                             timeout=self.args.meta_timeout)
                rec["seconds"] = secs
            finally:
                self.finish(sysobj, profile, off, disk0, rec)
            rec["requests"] = rec.pop("store_gets")
            self.record(**rec)

    def warm(self, sysobj):
        """s3 (warm, page cache dropped) and s4 (warm, page cache), loopback endpoint; for
        hoardfs also the limits: dd of its cache file, dropped and page-cached."""
        a = self.args
        lg = self.large["objects"][0]
        prof = "loopback"
        mounts = self.cold(sysobj, prof, [lg["key"]])
        path = os.path.join(mounts[0].mp, lg["key"])
        try:
            self.mnt_run(["dd", "if=" + path, "of=/dev/null", "bs=1M"], lg["size"])
            sync()
            time.sleep(1)  # let a daemon commit what it fetched
            off = self.servers.log_offset(prof)
            for kind in ("s3", "s4"):
                for r in range(1, a.runs + 1):
                    if kind == "s3":
                        drop_caches()
                    disk0 = disk_read_bytes()
                    try:
                        _, secs = self.mnt_run(["dd", "if=" + path, "of=/dev/null", "bs=1M"], lg["size"])
                        self.record(scenario=kind, profile="local", system=sysobj.name, run=r,
                                    bytes=lg["size"], seconds=secs,
                                    disk_read_bytes=disk_read_bytes() - disk0)
                    except BenchError as e:
                        self.fail(kind, "local", sysobj.name, r, e)
            sb, gets = self.servers.store_bytes(prof, off)
            self.results["runs"][-1]["store_bytes_during_warm"] = sb
            if isinstance(sysobj, Hoardfs):
                cf = sysobj.cache_file_of(lg["size"])
                if not cf:
                    raise BenchError("no cache file of %d bytes in %s" % (lg["size"], sysobj.cache))
                for kind, name in (("s3", "dd_cache_file"), ("s4", "dd_page_cached")):
                    for r in range(1, a.runs + 1):
                        if kind == "s3":
                            drop_caches()
                        _, secs = self.mnt_run(["dd", "if=" + cf, "of=/dev/null", "bs=1M"], lg["size"])
                        self.record(scenario=kind, profile="local", system=name, run=r,
                                    bytes=lg["size"], seconds=secs)
            rss = sysobj.rss()
            self.results["runs"][-1]["rss_kib"] = rss
        finally:
            sysobj.end_session()
            drop_caches()

    # -- driver --
    def guarded(self, fn, scenario, sysobj, profile, r):
        try:
            fn(sysobj, profile, r)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            self.fail(scenario, profile, sysobj.name, r, e)
            try:
                sysobj.end_session()
            except Exception as e2:
                log("end_session after failure: %s" % e2)

    def main(self):
        a = self.args
        self.results["machine"] = machine()
        self.results["config"] = {k: v for k, v in vars(a).items()}
        self.results["started"] = datetime.datetime.now().isoformat(timespec="seconds")
        self.results["disk_read_excludes_prewarm"] = True
        self.sampler = LoadSampler()
        self.sampler.start()
        self.results["load"] = self.sampler.samples
        self.setup()
        if a.serve:
            log("serving until Ctrl-C: bucket %s; S3 credentials %s/%s; s3rver %s; loopback %s; "
                "cloud %s" % (BUCKET, SECRET, SECRET, self.servers.s3_url,
                              self.servers.endpoints["loopback"], self.servers.endpoints["cloud"]))
            while True:
                time.sleep(3600)
        self.calibrate()
        systems = []
        for name in a.systems:
            if name == "curl":
                continue  # not a mount: scenario 2's download-then-load row (s2_curl)
            s = {"hoardfs": Hoardfs, "s3fs": S3fs, "rclone": Rclone}[name](self)
            if not s.available():
                self.results["failures"].append("%s is not installed: skipped" % name)
                log("%s is not installed: skipped" % name)
                continue
            systems.append(s)
        self.results["systems"] = {s.name: s.settings() for s in systems}
        self.results["data"] = {
            "model": {"name": self.model["name"], "bytes": self.model["bytes"],
                      "files": len(self.model["objects"])},
            "large": {"name": self.large["name"], "bytes": self.large["bytes"]},
            "s5_model": {"name": self.s5model["name"], "bytes": self.s5model["bytes"]},
            "tree": {"name": self.tree["name"], "objects": len(self.tree["objects"])},
        }
        sc = set(a.scenarios)
        curl = CurlDownload()
        for prof in a.profiles:
            if 2 in sc and "curl" in a.systems:
                log("== profile %s, parallel curl download + sync + load" % prof)
                for r in range(1, a.runs + 1):
                    self.guarded(self.s2_curl, "s2_curl", curl, prof, r)
            for s in systems:
                log("== profile %s, %s" % (prof, s.name))
                for r in range(1, a.runs + 1):
                    if sc & {1, 8}:
                        self.guarded(self.s1, "s1", s, prof, r)
                for r in range(1, a.runs + 1):
                    if 6 in sc:
                        self.guarded(self.s6, "s6", s, prof, r)
                for r in range(1, a.runs + 1):
                    if sc & {2, 8}:
                        self.guarded(self.s2, "s2", s, prof, r)
                for r in range(1, a.runs + 1):
                    if 5 in sc:
                        self.guarded(self.s5, "s5", s, prof, r)
                        if self.s5model is not self.model:
                            self.guarded(self.s5_single, "s5_1mount", s, prof, r)
                for r in range(1, a.runs + 1):
                    if 7 in sc:
                        self.guarded(self.s7, "s7", s, prof, r)
                self.save()
        if sc & {3, 4}:
            for s in systems:
                log("== warm reads (page cache dropped, then cached), %s" % s.name)
                try:
                    self.warm(s)
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    self.fail("s3", "local", s.name, 0, e)
                    s.end_session()
        self.results["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        self.save()

    def save(self):
        with open(os.path.join(self.args.out, "results.json.tmp"), "w") as f:
            json.dump(self.results, f, indent=1, default=str)
        os.rename(os.path.join(self.args.out, "results.json.tmp"),
                  os.path.join(self.args.out, "results.json"))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_const", dest="preset", const="quick",
                   help="small data: 8x64 MiB model, 512 MiB file, 1,000-object tree (< 15 min)")
    p.add_argument("--smoke", action="store_const", dest="preset", const="smoke",
                   help="tiny data, one run each: checks the plumbing (the test suite's smoke test)")
    p.add_argument("--out", help="results directory [bench/results/DATE[-quick]]")
    p.add_argument("--work", default=os.path.join(HERE, "work"),
                   help="generated data (reused), servers, caches, mount points [bench/work]")
    p.add_argument("--build", default=os.path.join(ROOT, "build-bench"), help="hoardfs build tree")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--profiles", default=",".join(ALL_PROFILES))
    p.add_argument("--scenarios", default=",".join(map(str, ALL_SCENARIOS)))
    p.add_argument("--serve", action="store_true",
                   help="only generate the data and start the servers, until Ctrl-C (to try things)")
    p.add_argument("--runs", type=int)
    p.add_argument("--shards", type=int)
    p.add_argument("--shard-mib", type=int)
    p.add_argument("--large-mib", type=int)
    p.add_argument("--s5-shard-mib", type=int, help="shard size of scenario 5's model")
    p.add_argument("--tree", type=int, help="objects in scenario 7's tree")
    p.add_argument("--threads", type=int, default=4, help="loader threads [4]")
    p.add_argument("--latency-ms", type=float, default=20, help="cloud: first-byte delay [20]")
    p.add_argument("--rate", type=int, default=100_000_000,
                   help="cloud: bytes/s per connection [100000000]")
    p.add_argument("--curl-conns", help="connection counts tried for the network limit [8,16,32,64]")
    p.add_argument("--s3fs-parallel", type=int, default=32)
    p.add_argument("--s3fs-multipart", type=int, default=16, help="MB")
    p.add_argument("--rclone-read-ahead", default="512M")
    p.add_argument("--rclone-buffer", default="32M")
    p.add_argument("--hoardfs-opt", action="append", dest="hoardfs_opts",
                   help="extra hoardfs mount option (a tuned variant; repeat)")
    p.add_argument("--cached-opt", action="append", dest="cached_opts",
                   help="extra hoardfs-cached option (a tuned variant; repeat)")
    p.add_argument("--min-rate-mbs", type=float, default=20,
                   help="a read slower than this (MB/s) times out and is recorded as failed")
    p.add_argument("--meta-timeout", type=int, default=900, help="seconds for one ls -lR / stat")
    a = p.parse_args(argv)
    preset = PRESETS[a.preset or "full"]
    for k, v in preset.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    a.preset = a.preset or "full"
    a.systems = [s for s in a.systems.split(",") if s]
    a.profiles = [s for s in a.profiles.split(",") if s]
    a.scenarios = [int(s) for s in a.scenarios.split(",") if s]
    a.curl_conns = [int(s) for s in a.curl_conns.split(",") if s]
    for s in a.systems:
        if s not in ALL_SYSTEMS:
            p.error("unknown system " + s)
    for s in a.profiles:
        if s not in ALL_PROFILES:
            p.error("unknown profile " + s)
    if not a.out:
        day = datetime.date.today().isoformat()
        a.out = os.path.join(HERE, "results", day + ("" if a.preset == "full" else "-" + a.preset))
    a.out = os.path.abspath(a.out)
    a.work = os.path.abspath(a.work)
    a.build = os.path.abspath(a.build)
    return a


def main():
    global LOG
    a = parse_args(sys.argv[1:])
    if os.geteuid() != 0:
        sys.exit("bench: run as root (FUSE mounts, drop_caches)")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    shutil.rmtree(os.path.join(a.work, "run"), ignore_errors=True)
    shutil.rmtree(os.path.join(a.work, "logs"), ignore_errors=True)
    os.makedirs(os.path.join(a.work, "run"))
    LOG = open(os.path.join(a.out, "bench.log"), "w")
    # SIGINT too: a shell starting us in the background would have it ignored
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    b = Bench(a)
    rc = 0
    try:
        b.main()
    except KeyboardInterrupt as e:
        log("interrupted (%s): cleaning up" % (e or "Ctrl-C"))
        b.results["failures"].append("interrupted")
        rc = 130
    except BenchError as e:
        log("error: %s" % e)
        b.results["failures"].append(str(e))
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        CLEANUP.run_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        b.save()
        import report
        report.write(a.out, b.results)
        log("wrote %s/report.md, results.json%s" % (
            a.out, ", chart.png" if os.path.exists(os.path.join(a.out, "chart.png")) else ""))
    except Exception as e:
        log("report failed: %s" % e)
        rc = rc or 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
