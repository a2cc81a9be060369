#!/usr/bin/env python3
"""Turns bench.py's results.json into report.md and chart.png (gnuplot).

  python3 bench/report.py RESULTS_DIR     (re)writes the report of an earlier run
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

PEERS = ["s3fs", "rclone"]
SYSTEMS = ["hoardfs"] + PEERS


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def runs_of(res, scenario, profile=None, system=None, ok=True):
    return [r for r in res["runs"] if r.get("scenario") == scenario
            and (profile is None or r.get("profile") == profile)
            and (system is None or r.get("system") == system) and r.get("ok", True) == ok]


def mbs(res, scenario, profile, system):
    return med([r.get("mb_s") for r in runs_of(res, scenario, profile, system)])


def secs(res, scenario, profile, system):
    return med([r.get("seconds") for r in runs_of(res, scenario, profile, system)])


def fmt(x, unit="", nd=0):
    if x is None:
        return "—"
    if isinstance(x, float) and nd == 0 and abs(x) < 10:
        nd = 2
    return ("{:,.%df}" % nd).format(x) + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fr(x):
    return "—" if x is None else "%.2f×" % x


def failed_note(res, scenario, profile, system):
    bad = runs_of(res, scenario, profile, system, ok=False)
    if not bad:
        return ""
    return " (%d failed)" % len(bad)


def build(res):
    """Computes the summary (medians and ratios) that report.md and the chart show."""
    cfg = res.get("config", {})
    profiles = cfg.get("profiles", ["loopback", "cloud"])
    systems = [s for s in SYSTEMS if s in res.get("systems", {})]
    net = res.get("limits", {}).get("network", {})
    s = {"profiles": profiles, "systems": systems, "tables": {}, "ratios": {}, "goals": []}
    lim_net = {p: (net.get(p, {}).get("bytes_s") or 0) / 1e6 or None for p in profiles}
    s["network_limit_mb_s"] = lim_net
    dd_cache = mbs(res, "s3", "local", "dd_cache_file")
    dd_pc = mbs(res, "s4", "local", "dd_page_cached")
    s["dd_cache_file_mb_s"], s["dd_page_cached_mb_s"] = dd_cache, dd_pc
    t = {}
    for sc in ("s1", "s2"):
        for p in profiles:
            for sy in systems:
                t[(sc, p, sy)] = mbs(res, sc, p, sy)
    for sc in ("s3", "s4"):
        for sy in systems:
            t[(sc, "local", sy)] = mbs(res, sc, "local", sy)
    s5 = {}
    model_bytes = res.get("data", {}).get("s5_model", {}).get("bytes")
    same_model = res.get("data", {}).get("s5_model", {}).get("name") == \
        res.get("data", {}).get("model", {}).get("name")
    for p in profiles:
        for sy in systems:
            rr = runs_of(res, "s5", p, sy)
            wall = med([r.get("seconds") for r in rr])
            one = secs(res, "s5_1mount", p, sy)
            if one is None and same_model:
                one = secs(res, "s2", p, sy)
            s5[(p, sy)] = {
                "wall": wall, "one": one, "wall_ratio": ratio(wall, one),
                "store_over_model": med([r.get("store_over_model") for r in rr]),
                "page_cache_growth": med([r.get("page_cache_growth_bytes") for r in rr]),
                "agg_mb_s": (4 * model_bytes / wall / 1e6) if (wall and model_bytes) else None,
            }
    s["s5"] = s5
    s["tput"] = t
    # ratios
    r = s["ratios"]
    for sc in ("s1", "s2"):
        for p in profiles:
            h = t.get((sc, p, "hoardfs"))
            r["%s %s hoardfs/network limit" % (sc, p)] = ratio(h, lim_net.get(p))
            for peer in PEERS:
                if peer in systems:
                    r["%s %s hoardfs/%s" % (sc, p, peer)] = ratio(h, t.get((sc, p, peer)))
    r["s3 hoardfs/dd of the cache file (page cache dropped)"] = ratio(t.get(("s3", "local", "hoardfs")), dd_cache)
    r["s4 hoardfs/dd of a page-cached file"] = ratio(t.get(("s4", "local", "hoardfs")), dd_pc)
    for sc in ("s3", "s4"):
        for peer in PEERS:
            if peer in systems:
                r["%s hoardfs/%s" % (sc, peer)] = ratio(t.get((sc, "local", "hoardfs")), t.get((sc, "local", peer)))
    for p in profiles:
        h = s5.get((p, "hoardfs"), {})
        r["s5 %s hoardfs store bytes/model bytes" % p] = h.get("store_over_model")
        r["s5 %s hoardfs 4-mount wall/1-mount wall" % p] = h.get("wall_ratio")
        for peer in PEERS:
            if peer in systems:
                r["s5 %s wall %s/hoardfs" % (p, peer)] = ratio(s5.get((p, peer), {}).get("wall"), h.get("wall"))
        for sc in ("s6", "s7_ls", "s7_stat"):
            hv = secs(res, sc, p, "hoardfs")
            for peer in PEERS:
                if peer in systems:
                    r["%s %s time %s/hoardfs" % (sc, p, peer)] = ratio(secs(res, sc, p, peer), hv)
    # the user's alternative: parallel curl to local files, sync, load (s2_curl)
    for p in profiles:
        t[("s2", p, "curl")] = mbs(res, "s2_curl", p, "curl")
        r["s2 %s hoardfs/parallel curl download+sync+load" % p] = ratio(
            t.get(("s2", p, "hoardfs")), t[("s2", p, "curl")])
    # goals of issue 6
    g = s["goals"]
    cp = "cloud" if "cloud" in profiles else profiles[0]
    for sc, what in (("s1", "cold sequential read"), ("s2", "cold model load")):
        g.append(("%s (%s profile) ≥ 0.9× network limit" % (what, cp),
                  r.get("%s %s hoardfs/network limit" % (sc, cp)), 0.9))
        for peer in PEERS:
            if peer in systems:
                g.append(("%s (%s) ahead of %s" % (what, cp, peer),
                          r.get("%s %s hoardfs/%s" % (sc, cp, peer)), 1.0))
    g.append(("warm from disk ≥ 0.8× dd of the cache file", r.get("s3 hoardfs/dd of the cache file (page cache dropped)"), 0.8))
    g.append(("page-cache reads ≥ 0.9× dd of a cached file", r.get("s4 hoardfs/dd of a page-cached file"), 0.9))
    for p in profiles:
        g.append(("4 mounts (%s): store bytes ≤ 1.02× model" % p,
                  r.get("s5 %s hoardfs store bytes/model bytes" % p), -1.02))
        g.append(("4 mounts (%s): wall ≤ 1.2× one mount" % p,
                  r.get("s5 %s hoardfs 4-mount wall/1-mount wall" % p), -1.2))
    # goals of issue 12, in every profile
    for p in profiles:
        for sc, what in (("s1", "cold file"), ("s2", "cold model")):
            for peer in PEERS:
                if peer in systems:
                    g.append(("12: %s (%s) ≥ 1.2× %s" % (what, p, peer),
                              r.get("%s %s hoardfs/%s" % (sc, p, peer)), 1.2))
        g.append(("12: cold model (%s) time ≤ 1.1× curl download+sync+load" % p,
                  r.get("s2 %s hoardfs/parallel curl download+sync+load" % p), 1 / 1.1))
        gpg = med([rr["store_gets"] / (rr["store_bytes"] / 2**30) for rr in runs_of(res, "s1", p, "hoardfs")
                   if rr.get("store_bytes") and rr.get("store_gets") is not None])
        g.append(("12: sequential read (%s) GETs per GiB ≤ 64" % p, gpg, -64))
    return s


def cpu_per_gib(res):
    """{(scenario, profile, system): (daemon, mounts, readers, servers: CPU s/GiB; GETs per GiB
    the store sent)}, medians over runs of the cold scenarios that record their CPU."""
    acc = {}
    for r in res["runs"]:
        cpu, n = r.get("cpu_s"), r.get("bytes")
        if not cpu or not n or r.get("scenario") not in ("s1", "s2", "s5", "s5_single", "s2_curl"):
            continue
        gib = n / 2**30
        k = (r["scenario"], r.get("profile"), r.get("system"))
        acc.setdefault(k, ([], [], [], [], []))
        d = cpu.get("daemon")
        m = sum(x for kk, x in cpu.items() if kk.startswith("mount") and x is not None)
        acc[k][0].append(d / gib if d is not None else None)
        acc[k][1].append(m / gib)
        for i, name in ((2, "reader"), (3, "server")):
            if cpu.get(name) is not None:
                acc[k][i].append(cpu[name] / gib)
        sb, sg = r.get("store_bytes"), r.get("store_gets")
        if sb and sg is not None:
            acc[k][4].append(sg / (sb / 2**30))
    return {k: tuple(med([x for x in v if x is not None]) for v in vs) for k, vs in acc.items()}


def peak_rss(res, system):
    """(largest single-mount peak of the mount process, of the daemon; largest total of one run)"""
    mount = daemon = total = None
    for r in res["runs"]:
        if r.get("system") != system or not r.get("rss_kib"):
            continue
        v = {k: x for k, x in r["rss_kib"].items() if x}
        ms = [x for k, x in v.items() if k.startswith("mount")]
        if ms:
            mount = max(mount or 0, max(ms))
        if v.get("daemon"):
            daemon = max(daemon or 0, v["daemon"])
        tot = sum(v.values())
        total = max(total or 0, tot)
    return mount, daemon, total


def chart(outdir, res, s):
    groups = []
    for sc, label in (("s1", "1 cold seq"), ("s2", "2 model load")):
        for p in s["profiles"]:
            groups.append(("%s\\n%s" % (label, p), [s["tput"].get((sc, p, sy)) for sy in SYSTEMS],
                           s["network_limit_mb_s"].get(p)))
    groups.append(("3 warm, disk", [s["tput"].get(("s3", "local", sy)) for sy in SYSTEMS],
                   s["dd_cache_file_mb_s"]))
    groups.append(("4 warm, page cache", [s["tput"].get(("s4", "local", sy)) for sy in SYSTEMS],
                   s["dd_page_cached_mb_s"]))
    for p in s["profiles"]:
        groups.append(("5 four mounts\\n%s" % p, [s["s5"].get((p, sy), {}).get("agg_mb_s") for sy in SYSTEMS],
                       None))
    dat = os.path.join(outdir, "chart.dat")
    with open(dat, "w") as f:
        f.write("# group hoardfs s3fs rclone limit (MB/s; '-' = not measured)\n")
        for label, vals, lim in groups:
            cells = ["-" if v is None else "%.1f" % v for v in vals + [lim]]
            f.write('"%s" %s\n' % (label, " ".join(cells)))
    if not shutil.which("gnuplot"):
        return False
    vals = [v for _, vs, lim in groups for v in vs + [lim] if v]
    ymin = 10 ** math.floor(math.log10(min(vals))) if vals else 1
    m = res.get("machine", {})
    title = "hoardfs benchmark (%s): throughput, MB/s, median of %s runs — %s cores, %.0f GiB, kernel %s" % (
        res.get("config", {}).get("preset", ""), res.get("config", {}).get("runs", "?"), m.get("cores", "?"),
        (m.get("memory_bytes") or 0) / 2**30, m.get("kernel", "?"))
    gp = """
set terminal pngcairo size 1400,700 noenhanced font "sans,10"
set output '{out}'
set title "{title}"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [{ymin}:*]
set bmargin 5
set ylabel "MB/s (log scale)"
set grid ytics
set key top left
set xtics nomirror
plot '{dat}' using 2:xtic(1) title 'hoardfs' lc rgb '#1f77b4', \
     '' using 3 title 's3fs' lc rgb '#ff7f0e', \
     '' using 4 title 'rclone' lc rgb '#2ca02c', \
     '' using 5 title 'limit (network / dd of cache file / dd of cached file)' lc rgb '#7f7f7f'
""".format(out=os.path.join(outdir, "chart.png"), title=title, dat=dat, ymin=ymin)
    gpf = os.path.join(outdir, "chart.gp")
    with open(gpf, "w") as f:
        f.write(gp)
    p = subprocess.run(["gnuplot", gpf], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        print("gnuplot: " + p.stderr, file=sys.stderr)
        return False
    return True


def write(outdir, res):
    s = build(res)
    res["summary"] = {
        "network_limit_mb_s": s["network_limit_mb_s"],
        "dd_cache_file_mb_s": s["dd_cache_file_mb_s"],
        "dd_page_cached_mb_s": s["dd_page_cached_mb_s"],
        "throughput_mb_s": {"%s/%s/%s" % k: v for k, v in s["tput"].items()},
        "s5": {"%s/%s" % k: v for k, v in s["s5"].items()},
        "ratios": s["ratios"],
        "goals": [{"goal": g, "measured": v, "target": t} for g, v, t in s["goals"]],
    }
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    have_chart = chart(outdir, res, s)
    m = res.get("machine", {})
    cfg = res.get("config", {})
    d = res.get("data", {})
    L = []
    w = L.append
    w("# hoardfs benchmark — %s run, %s" % (cfg.get("preset", "?"), res.get("started", "")))
    w("")
    w("**Machine**: %s cores (%s), %.1f GiB memory, kernel %s, %s." % (
        m.get("cores"), m.get("cpu", "?"), (m.get("memory_bytes") or 0) / 2**30, m.get("kernel"), m.get("os", "")))
    v = m.get("versions", {})
    w("Peers and servers: %s." % "; ".join("%s" % v[k] for k in sorted(v)))
    w("")
    w("**Data**: model %s (%s files, %s), single file %s (%s), scenario-5 model %s (%s), tree of %s objects. "
      "Medians of %s runs; every cold run has fresh caches (unmounted, cache dirs wiped, a new "
      "daemon) and the server's files in the page cache. MB/s = 10^6 bytes/s." % (
          d.get("model", {}).get("name"), d.get("model", {}).get("files"), mib(d.get("model", {}).get("bytes")),
          d.get("large", {}).get("name"), mib(d.get("large", {}).get("bytes")),
          d.get("s5_model", {}).get("name"), mib(d.get("s5_model", {}).get("bytes")),
          d.get("tree", {}).get("objects"), cfg.get("runs")))
    w("")
    w("**Systems**:")
    for sy, st in res.get("systems", {}).items():
        w("- %s: `%s`" % (sy, st))
    load = res.get("load") or []
    if load:
        ls = sorted(x["load_1m"] for x in load)
        w("")
        w("**Machine load during the run** (sampled every 5 s): 1-minute load average median %.1f, max %.1f "
          "on %s cores; other processes on the machine (e.g. another session's test suite) compete "
          "with the benchmark when it is well above 1–2. Each run records the load at its end "
          "(`loadavg_1m` in results.json)." % (ls[len(ls) // 2], ls[-1], m.get("cores")))
    w("")
    if res.get("failures"):
        w("**Failures**: " + "; ".join(res["failures"]))
        w("")
    # calibration
    w("## Profiles and limits")
    w("")
    w("| profile | first byte (median of 20, keep-alive) | one connection | network limit (parallel curl) | by connections |")
    w("|---|---|---|---|---|")
    net = res.get("limits", {}).get("network", {})
    for p in s["profiles"]:
        c = res.get("calibration", {}).get(p, {})
        n = net.get(p, {})
        by = ", ".join("%s: %s" % (k, fmt((x.get("median_bytes_s") or 0) / 1e6)) for k, x in
                       sorted(n.get("by_connections", {}).items(), key=lambda kv: int(kv[0])))
        w("| %s | %s ms | %s MB/s | **%s MB/s** (%s conns) | %s |" % (
            p, fmt((c.get("first_byte_s") or 0) * 1e3, nd=1), fmt((c.get("one_connection_bytes_s") or 0) / 1e6),
            fmt(s["network_limit_mb_s"].get(p)), n.get("connections"), by))
    w("")
    dw = res.get("limits", {}).get("disk_write", {}).get("bytes_s")
    w("Local limits: dd of hoardfs's cache file, page cache dropped: **%s MB/s**; dd of a page-cached file: "
      "**%s MB/s**; disk write (dd conv=fdatasync on the cache file system): %s MB/s." % (
          fmt(s["dd_cache_file_mb_s"]), fmt(s["dd_page_cached_mb_s"]), fmt(dw / 1e6 if dw else None)))
    w("")
    # throughput table
    w("## Throughput (MB/s, median)")
    w("")
    w("| scenario | profile | " + " | ".join(s["systems"]) + " | limit |")
    w("|---|---|" + "---|" * (len(s["systems"]) + 1))
    for sc, label in (("s1", "1 cold sequential read (dd bs=1M)"), ("s2", "2 cold model load (4 threads, mmap)")):
        for p in s["profiles"]:
            w("| %s | %s | %s | %s |" % (label, p, " | ".join(
                fmt(s["tput"].get((sc, p, sy))) + failed_note(res, sc, p, sy) for sy in s["systems"]),
                fmt(s["network_limit_mb_s"].get(p))))
    w("| 3 warm, page cache dropped | local | %s | %s (dd of the cache file) |" % (" | ".join(
        fmt(s["tput"].get(("s3", "local", sy))) + failed_note(res, "s3", "local", sy) for sy in s["systems"]),
        fmt(s["dd_cache_file_mb_s"])))
    w("| 4 warm, page cache | local | %s | %s (dd of a cached file) |" % (" | ".join(
        fmt(s["tput"].get(("s4", "local", sy))) + failed_note(res, "s4", "local", sy) for sy in s["systems"]),
        fmt(s["dd_page_cached_mb_s"])))
    w("")
    # scenario 5
    w("## Scenario 5: 4 mounts load the same model at once, cold")
    w("")
    w("| profile | system | wall (s) | 1 mount (s) | 4-mount / 1-mount | store bytes / model | page-cache growth | aggregate MB/s |")
    w("|---|---|---|---|---|---|---|---|")
    for p in s["profiles"]:
        for sy in s["systems"]:
            x = s["s5"].get((p, sy), {})
            w("| %s | %s%s | %s | %s | %s | %s | %s | %s |" % (
                p, sy, failed_note(res, "s5", p, sy), fmt(x.get("wall"), nd=2), fmt(x.get("one"), nd=2),
                fr(x.get("wall_ratio")), fr(x.get("store_over_model")), mib(x.get("page_cache_growth")),
                fmt(x.get("agg_mb_s"))))
    w("")
    # CPU per GiB
    w("## The user's alternative: download, sync, then load (scenario 2's model)")
    w("")
    w("Parallel `curl` (the profile's best connection count) downloads every file of the model to "
      "local disk, `sync`, then the same loader reads the local copies.")
    w("")
    w("| profile | download + sync + load (MB/s) | download / sync / load (s) | hoardfs (MB/s) | hoardfs / curl |")
    w("|---|---|---|---|---|")
    for p in s["profiles"]:
        rr = runs_of(res, "s2_curl", p, "curl")
        if not rr:
            continue
        parts = "/".join(fmt(med([x.get(k) for x in rr]), nd=2)
                         for k in ("download_seconds", "sync_seconds", "loader_seconds"))
        w("| %s | %s | %s | %s | %s |" % (p, fmt(s["tput"].get(("s2", p, "curl"))), parts,
                                         fmt(s["tput"].get(("s2", p, "hoardfs"))),
                                         fr(s["ratios"].get("s2 %s hoardfs/parallel curl download+sync+load" % p))))
    w("")
    w("## CPU seconds per GiB read, and GETs per GiB fetched (cold runs, median)")
    w("")
    w("Mounts summed; readers = the loader or dd (and the tools run meanwhile); servers = s3rver and "
      "nginx. `total` is what the host spends per GiB read, the servers' share included.")
    w("")
    w("| scenario | profile | system | daemon | mounts | readers | servers | total | GETs per GiB |")
    w("|---|---|---|---|---|---|---|---|---|")
    for (sc, p, sy), v in sorted(cpu_per_gib(res).items()):
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            sc, p, sy, fmt(v[0], nd=2), fmt(v[1], nd=2), fmt(v[2], nd=2), fmt(v[3], nd=2),
            fmt(sum(x or 0 for x in v[:4]), nd=2), fmt(v[4], nd=0)))
    w("")
    # scenario 6, 7
    w("## Scenarios 6 and 7: first byte and metadata (median seconds)")
    w("")
    w("| scenario | profile | " + " | ".join(s["systems"]) + " |")
    w("|---|---|" + "---|" * len(s["systems"]))
    for sc, label, scale, unit in (("s6", "6 time to first byte of a cold shard (open + 4 KiB pread of its header)", 1e3, " ms"),
                                   ("s7_ls", "7 `ls -lR` of the tree, cold mount", 1, " s"),
                                   ("s7_stat", "7 `stat` of every object by path, cold mount", 1, " s")):
        for p in s["profiles"]:
            cells = []
            for sy in s["systems"]:
                v = secs(res, sc, p, sy)
                cells.append(fmt(v * scale if v is not None else None, unit, nd=1 if scale > 1 else 2)
                             + failed_note(res, sc, p, sy))
            w("| %s | %s | %s |" % (label, p, " | ".join(cells)))
    for p in s["profiles"]:
        st = [med([r.get("stat_seconds") for r in runs_of(res, "s6", p, sy)]) for sy in s["systems"]]
        w("| 6 (the stat() before it) | %s | %s |" % (p, " | ".join(fmt(x * 1e3 if x is not None else None, " ms", 1) for x in st)))
    w("")
    # scenario 8
    w("## Scenario 8: peak RSS (VmHWM)")
    w("")
    w("| system | one mount process (max over runs) | daemon | largest total of one run (scenario 5: 4 mounts) |")
    w("|---|---|---|---|")
    for sy in s["systems"]:
        mnt, dmn, tot = peak_rss(res, sy)
        w("| %s | %s | %s | %s |" % (sy, kib(mnt), kib(dmn) if sy == "hoardfs" else "—", kib(tot)))
    w("")
    if "hoardfs" in s["systems"]:
        _, dmn, _ = peak_rss(res, "hoardfs")
        bound = 64 * 1024 + 32 * 1024  # KiB: 64 MiB + --max-inflight (32) x 1 MiB receive buffers
        w("hoardfs-cached's bound (docs/design.md, Memory): 64 MiB + `--max-inflight` x 1 MiB receive "
          "buffers = %s with the defaults; peak measured %s: %s." % (
              kib(bound), kib(dmn), "within" if dmn and dmn <= bound else "**over**"))
        w("")
    # ratios and goals
    w("## Ratios")
    w("")
    w("| ratio | value |")
    w("|---|---|")
    for k, v in s["ratios"].items():
        w("| %s | %s |" % (k, fr(v)))
    w("")
    w("Time ratios (peer/hoardfs) above 1 mean hoardfs is faster; throughput ratios (hoardfs/x) above 1 "
      "mean hoardfs is faster.")
    w("")
    w("## Goals (issue 6; issue 12 marked 12:)")
    w("")
    w("| goal | measured | met? |")
    w("|---|---|---|")
    for goal, val, target in s["goals"]:
        if val is None:
            met = "not measured"
        elif target < 0:
            met = "yes" if val <= -target else "**no**"
        else:
            met = "yes" if val >= target else "**no**"
        w("| %s | %s | %s |" % (goal, fmt(val) if "GETs per GiB" in goal else fr(val), met))
    w("")
    # validity notes
    notes = list(res.get("notes", []))
    # results of older versions counted the pre-run read of the server's files (from disk when
    # they were not cached yet) in the run's disk reads: discount what that read could have been
    d = res.get("data", {})
    prewarm = {} if res.get("disk_read_excludes_prewarm") else {
        "s1": d.get("large", {}).get("bytes", 0), "s2": d.get("model", {}).get("bytes", 0),
        "s5": d.get("s5_model", {}).get("bytes", 0)}
    for r in res["runs"]:
        if r.get("ok", True) and r.get("scenario") in ("s1", "s2", "s5") and r.get("bytes"):
            dr = (r.get("disk_read_bytes") or 0) - prewarm.get(r["scenario"], 0)
            if dr > max(0.05 * r["bytes"], 64 << 20):
                notes.append("%s %s %s run %s: the machine read %s from disk during this cold run, beyond the pre-run read of the server's files (server "
                             "files evicted, or another process's reads)" % (
                    r["scenario"], r["profile"], r["system"], r["run"], mib(dr)))
    fails = [r for r in res["runs"] if not r.get("ok", True)]
    if fails:
        w("## Failed runs")
        w("")
        for r in fails:
            w("- %s %s %s run %s: %s" % (r.get("scenario"), r.get("profile"), r.get("system"), r.get("run"),
                                         (r.get("error") or "").replace("\n", " ")[:300]))
        w("")
    if notes:
        w("## Notes")
        w("")
        for n in notes:
            w("- " + n)
        w("")
    if have_chart:
        w("![throughput per scenario and system](chart.png)")
        w("")
    w("Every raw run is in results.json (`runs`); the set-up is described in bench/README.md.")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def mib(b):
    if b is None:
        return "—"
    if abs(b) >= 2**30:
        return "%.2f GiB" % (b / 2**30)
    return "%.0f MiB" % (b / 2**20)


def kib(k):
    if not k:
        return "—"
    return "%.0f MiB" % (k / 1024)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(os.path.join(sys.argv[1], "results.json")) as f:
        write(sys.argv[1], json.load(f))
