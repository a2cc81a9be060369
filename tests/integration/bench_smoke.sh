#!/usr/bin/env bash
# bench_smoke.sh: the benchmark's plumbing on tiny data, so that bench/run.sh cannot rot. Runs
# `bench/run.sh --smoke` (8 shards of 1 MiB, an 8 MiB file, a 40-object tree, one run of every
# scenario in three network profiles — loopback, cloud-tls (cloud's latency and rate over HTTPS:
# it covers cloud's set-up too), busy-server — against
# hoardfs, the installed peers and the download-then-load baseline) with this build's binaries and
# a private work directory, then checks what it wrote: results.json with every run of hoardfs
# successful, the endpoint checks passed, every profile calibrated, scenario 5's store bytes equal
# to one copy of the model for hoardfs, the curl baseline in every profile, report.md with its
# sections, and chart.png when gnuplot is installed. Peers that are not installed are skipped by the benchmark itself;
# a peer that is installed must work too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || fail "the benchmark needs root (FUSE mounts, drop_caches)"
for c in nginx python3 openssl fusermount3; do
	command -v "$c" >/dev/null || fail "$c is not installed (scripts/setup.sh --deps-only)"
done
for m in ngx_http_echo_module ngx_http_headers_more_filter_module; do
	[ -f "/usr/lib/nginx/modules/$m.so" ] || fail "nginx module $m is missing (scripts/packages.txt)"
done

OUT=$(tmpdir out)
WORK=$(tmpdir work)
peers=()
for p in s3fs rclone; do
	command -v "$p" >/dev/null && peers+=("$p")
done
systems=$(IFS=,; echo "hoardfs${peers[*]:+,${peers[*]}},curl")

step "bench/run.sh --smoke (systems: $systems)"
rc=0
with_timeout 240 bash "$HOARDFS_SRC/bench/run.sh" --smoke --no-build --build "$HOARDFS_BUILD" \
	--out "$OUT" --work "$WORK" --systems "$systems" --profiles loopback,cloud-tls,busy-server \
	>"$TEST_TMP/bench.out" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 40 "$TEST_TMP/bench.out" >&2
	fail "bench/run.sh --smoke exited $rc"
fi
! grep -qF " $WORK/" /proc/self/mountinfo || fail "the benchmark left mounts behind"

step "checking results.json and report.md"
python3 - "$OUT" "${peers[@]}" <<'EOF' || fail "results check failed (above)"
import json, os, sys
out, peers = sys.argv[1], sys.argv[2:]
res = json.load(open(os.path.join(out, "results.json")))
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
runs = res["runs"]
PROFILES = ("loopback", "cloud-tls", "busy-server")
for prof in PROFILES:
    cal = res["calibration"].get(prof, {})
    check(cal.get("endpoint_checks") == "ok", "%s endpoint checks: %s" % (prof, cal.get("endpoint_checks")))
    check(res["limits"]["network"].get(prof, {}).get("bytes_s"), "%s: no network limit" % prof)
cl = res["calibration"]["cloud-tls"]
check(0.015 < cl["first_byte_s"] < 0.2, "cloud-tls first byte %.3f s, want about 20 ms" % cl["first_byte_s"])
check(res["calibration"]["loopback"]["first_byte_s"] < 0.015, "loopback is as slow as cloud")
want = {(sc, p) for sc in ("s1", "s2", "s5", "s6", "s7_ls", "s7_stat") for p in PROFILES} | \
    {("s3", "local"), ("s4", "local")}
curl = {r["profile"] for r in runs if r.get("system") == "curl" and r.get("scenario") == "s2_curl"
        and r.get("ok")}
check(curl == set(PROFILES), "the download-then-load baseline ran in %s only" % sorted(curl))
for system in ["hoardfs"] + peers:
    mine = [r for r in runs if r.get("system") == system]
    for r in mine:
        check(r.get("ok"), "%s %s %s failed: %s" % (system, r.get("scenario"), r.get("profile"), r.get("error")))
    got = {(r["scenario"], r["profile"]) for r in mine if r.get("ok")}
    check(want <= got, "%s lacks %s" % (system, sorted(want - got)))
for r in runs:
    if r.get("system") == "hoardfs" and r.get("scenario") == "s5" and r.get("ok"):
        check(0.99 <= r["store_over_model"] <= 1.02,
              "hoardfs scenario 5 (%s) fetched %.2fx the model" % (r["profile"], r["store_over_model"]))
    if r.get("system") == "hoardfs" and r.get("scenario") in ("s1", "s2") and r.get("ok"):
        check(r.get("store_bytes", 0) >= r["bytes"] - 4096, "hoardfs %s %s: the store sent %s of %s bytes"
              % (r["scenario"], r["profile"], r.get("store_bytes"), r["bytes"]))
for name in ("dd_cache_file", "dd_page_cached"):
    check(any(r.get("system") == name and r.get("ok") for r in runs), "no %s limit" % name)
check("summary" in res and res["summary"]["goals"], "no summary/goals in results.json")
rep = open(os.path.join(out, "report.md")).read()
for section in ("**Machine**", "## Profiles and limits", "## Throughput", "## Scenario 5",
                "## The user's alternative", "## CPU seconds per GiB", "## Scenarios 6 and 7",
                "## Scenario 8", "## Ratios", "## Goals"):
    check(section in rep, "report.md lacks " + section)
for e in errors:
    print("results: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
if command -v gnuplot >/dev/null; then
	[ -s "$OUT/chart.png" ] || fail "no chart.png although gnuplot is installed"
	[ "$(head -c 4 "$OUT/chart.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "chart.png is not a PNG"
fi
step "ok: $(grep -c '"scenario"' "$OUT/results.json") runs recorded"
