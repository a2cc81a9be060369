#!/usr/bin/env bash
# inspect.sh: hoardfs-inspect against a running daemon, a mount and s3rver, each command's output
# checked against known state: ls after reading half of a file shows ~50%; after warm a mount
# reads the model with zero object GETs; after evict the next read goes to the store; verify finds
# a block corrupted on disk, drops it, and the next read is correct; stats parse as Prometheus
# text (also on --metrics-addr); status with the daemon down says so and fails; bad input fails
# with a clear line.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

INSPECT="$HOARDFS_BUILD/tools/hoardfs-inspect"
[ -x "$INSPECT" ] || fail "hoardfs-inspect is not built"
D=$(tmpdir data)
B=$(uniq_bucket insp)

# insp ARGS...: hoardfs-inspect on this test's daemon, bounded.
insp() {
	timeout -k 5 60 "$INSPECT" --socket "$SOCK" "$@"
}

step "uploading a model directory and a 64 MiB file"
s3_mkbucket "$B"
for i in 1 2 3; do
	mkdata "$D/shard$i" $((20 * MiB))
	s3_put "$B" "model/shard$i.safetensors" "$D/shard$i"
done
echo '{"hidden_size": 64}' >"$D/config.json"
s3_put "$B" model/config.json "$D/config.json"
mkdata "$D/half" $((64 * MiB))
s3_put "$B" data/half.bin "$D/half"
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

mnt_cache insp
start_daemon --metrics-addr "127.0.0.1:$METRICS_PORT"
MP=$(mnt_point)
# --open-wait 0: the test reads half of a file at random and expects only that half cached (an
# open that waits fetches the whole file first)
hoardfs_mount "$MP" --cache-dir "$CACHE" --socket "$SOCK" --open-wait 0 --endpoint "$P" \
	"s3://$B" "$MP"

step "status: up, the mount listed"
out=$(insp status) || fail "status failed"
grep -q "$MP" <<<"$out" || fail "status does not list the mount: $out"
js=$(insp status --json) || fail "status --json failed"
[ "$(json_get 'j.mounts.length' <<<"$js")" = 1 ] || fail "status --json: $js"
[ "$(json_get 'j.mounts[0].mountpoint' <<<"$js")" = "$MP" ] || fail "status --json mountpoint: $js"

step "ls after reading half of a file (every other MiB, random access) shows ~50%"
mt python3 - "$MP/data/half.bin" "$D/half" <<'EOF' || fail "reading half of the file failed"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead: exactly these blocks
src = open(sys.argv[2], "rb")
for off in range(0, 64 << 20, 2 << 20):
    got = os.pread(fd, 1 << 20, off)
    src.seek(off)
    if got != src.read(1 << 20):
        sys.exit("wrong bytes at %d" % off)
EOF
sleep 0.5 # the group commit that records the blocks
js=$(insp ls "s3://$B/data/" --json) || fail "ls --json failed"
pct=$(json_get 'j.objects[0].percent' <<<"$js")
python3 -c "import sys; p=float(sys.argv[1]); sys.exit(0 if 40 <= p <= 60 else 1)" "$pct" ||
	fail "ls shows $pct% of the half-read file, want ~50%: $js"
insp ls "s3://$B/" | grep -q "half.bin" || fail "human ls does not show the file"
js=$(insp stat "s3://$B/data/half.bin" --json) || fail "stat --json failed"
[ "$(json_get 'j.objects[0].present_blocks' <<<"$js")" = 32 ] || fail "stat: $js"
[ "$(json_get 'j.objects[0].map.split(",").length' <<<"$js")" = 32 ] ||
	fail "stat map should be 32 single blocks: $js"

step "warm --wait, then the mount reads the model with zero object GETs"
out=$(insp warm "s3://$B/model/" --wait --parallel 2 </dev/null) || fail "warm failed: $out"
proxy_reset "$P"
for i in 1 2 3; do
	[ "$(fsha "$MP/model/shard$i.safetensors")" = "$(fsha "$D/shard$i")" ] ||
		fail "shard $i read wrong after warm"
done
gets=$(proxy_stats "$P" | json_get "Object.keys(j.paths).filter(p => p.includes('/model/')).reduce((n, p) => n + j.paths[p].requests, 0)")
[ "$gets" = 0 ] || fail "reading a warmed model made $gets object requests"

step "evict: the next read goes to the store"
insp evict "s3://$B/data/" --dry-run | grep -q half.bin || fail "evict --dry-run does not list it"
js=$(insp evict "s3://$B/data/" --json) || fail "evict failed"
[ "$(json_get 'j.evicted.length' <<<"$js")" = 1 ] || fail "evict: $js"
js=$(insp ls "s3://$B/data/" --json)
[ "$(json_get 'j.objects.length' <<<"$js")" = 0 ] || fail "evicted object still listed: $js"
proxy_reset "$P"
echo 3 >/proc/sys/vm/drop_caches
[ "$(fsha "$MP/data/half.bin")" = "$(fsha "$D/half")" ] || fail "read after evict is wrong"
gets=$(proxy_stats "$P" | json_get "(j.paths['/$B/data/half.bin'] || {requests: 0}).requests")
[ "$gets" -gt 0 ] || fail "read after evict made no GET"

step "verify finds a block corrupted on disk and drops it; the next read is right"
insp verify "s3://$B/model/" </dev/null >/dev/null || fail "verify of a clean cache failed"
id=$(insp stat "s3://$B/model/shard2.safetensors" --json | json_get 'j.objects[0].id')
file=$(printf '%s/objects/%016x' "$CACHE" "$id")
[ -f "$file" ] || fail "no cache file $file"
# A file read by passthrough stays open (pinned, its blocks never punched) for 2 s after its last
# close: wait until the mount has let go, so that verify can drop the block at once.
closed() { [ "$(insp stat "s3://$B/model/shard2.safetensors" --json | json_get 'j.objects[0].open')" = false ]; }
wait_for 20 closed || fail "shard2 is still open: $(insp stat "s3://$B/model/shard2.safetensors" --json)"
printf 'garbage!' | dd of="$file" bs=1 seek=$((5 * MiB + 12345)) conv=notrunc status=none
rc=0
out=$(insp verify "s3://$B/model/" </dev/null 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "verify exited $rc on a corrupt cache: $out"
grep -q "shard2" <<<"$out" || fail "verify does not name the corrupt object: $out"
js=$(insp stat "s3://$B/model/shard2.safetensors" --json)
[ "$(json_get 'j.objects[0].present_blocks' <<<"$js")" = 19 ] || fail "corrupt block kept: $js"
echo 3 >/proc/sys/vm/drop_caches
[ "$(fsha "$MP/model/shard2.safetensors")" = "$(fsha "$D/shard2")" ] ||
	fail "read after verify dropped the corrupt block is wrong"

step "stats: human, JSON, and Prometheus text that parses (also on --metrics-addr)"
insp stats | grep -q bytes_from_store || fail "stats (human) lacks bytes_from_store"
[ "$(insp stats --json | json_get 'typeof j.hits')" = number ] || fail "stats --json"
insp stats --prometheus >"$D/prom.txt" || fail "stats --prometheus failed"
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$D/prom-http.txt" || fail "--metrics-addr"
for f in "$D/prom.txt" "$D/prom-http.txt"; do
	python3 - "$f" <<'EOF' || fail "$f is not valid Prometheus text"
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
types, seen = {}, set()
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if line.startswith("# HELP "):
        assert re.fullmatch(r"# HELP (%s) .*" % name, line), (n, line)
    elif line.startswith("# TYPE "):
        m = re.fullmatch(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)" % name, line)
        assert m and m.group(1) not in types, (n, line)
        types[m.group(1)] = m.group(2)
    else:
        m = re.fullmatch(r"(%s) (-?[0-9.eE+-]+|NaN|[+-]Inf)" % name, line)
        assert m, (n, line)
        assert m.group(1) in types, ("sample without TYPE", n, line)
        float(m.group(2))
        seen.add(m.group(1))
for must in ("hoardfs_hits_total", "hoardfs_bytes_from_store_total", "hoardfs_up"):
    assert must in seen, must
assert all(k.endswith("_total") for k, t in types.items() if t == "counter")
EOF
done

step "bad input: clear errors"
rc=0
err=$(insp ls "http://nope" 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -qi "url" <<<"$err" || fail "bad URL: exit $rc, '$err'"
rc=0
err=$(insp frobnicate 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -qi "unknown command" <<<"$err" || fail "unknown command: exit $rc, '$err'"
rc=0
err=$(insp stat 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "stat without a URL: exit $rc, '$err'"

step "status with the daemon down says so and fails"
unmount "$MP"
stop_daemon "$CACHE"
wait_for 10 bash -c "! [ -S '$SOCK' ] || ! timeout 2 '$INSPECT' --socket '$SOCK' status >/dev/null 2>&1"
rc=0
out=$(insp status 2>&1) || rc=$?
[ "$rc" = 3 ] && grep -qi "not running" <<<"$out" || fail "status with the daemon down: exit $rc, '$out'"

step "ls with the daemon down reads the metadata (root)"
js=$(timeout 30 "$INSPECT" --cache-dir "$CACHE" ls --json) || fail "offline ls failed"
[ "$(json_get 'j.offline' <<<"$js")" = true ] || fail "offline ls: $js"
[ "$(json_get 'j.objects.length' <<<"$js")" -ge 3 ] || fail "offline ls lists too little: $js"
mnt_finish
