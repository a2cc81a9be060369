#!/usr/bin/env bash
# mount_load_plan.sh: the daemon's request plan for loads (cached/plan.c), through real mounts and
# a counting proxy in front of s3rver; every byte read is compared with the source (sha256):
#   1. --sibling-prefetch 0: a loader opening shard 1 of a 4-shard model fetches shard 1 only;
#   2. by default, the same open makes the daemon load shards 2-4 (sibling_loads) before anything
#      opens them: each is fetched exactly once (its GETs tile it), and reading them afterwards
#      makes no GET at all;
#   3. a 200 MiB file loaded whole (an open that waits) takes 17 GETs growing from 8 MiB that
#      tile it exactly (a fixed 8 MiB took 25; the plan is in docs/design.md);
#   4. a random reader of a file it opened without waiting keeps small GETs: no GET longer than
#      the one or two 1 MiB blocks each of its 64 KiB preads touches.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

D=$(tmpdir data)
B=$(uniq_bucket plan)
SHARD=$((24 * MiB + 8))
BIG=$((200 * MiB))
step "uploading two 4-shard models, a 200 MiB file and a 128 MiB file"
s3_mkbucket "$B"
for m in m1 m2; do
	for i in 1 2 3 4; do
		f="model-0000$i-of-00004.safetensors"
		mkdata_fast "$D/$m-$f" "$SHARD"
		s3_put_large "$B" "$m/$f" "$D/$m-$f"
	done
done
mkdata_fast "$D/big.bin" "$BIG"
s3_put_large "$B" big.bin "$D/big.bin"
mkdata_fast "$D/r.bin" $((128 * MiB + 3))
s3_put_large "$B" r.bin "$D/r.bin"

P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
pj() { proxy_stats "$P" | json_get "$1"; }
# gets KEY: GETs the proxy saw for object KEY
gets() { pj "(j.paths['/$B/$1'] || {requests: 0}).requests"; }
# tiles KEY SIZE: "ok" if the GETs of KEY, sorted, cover [0, SIZE) exactly once
tiles() { proxy_stats "$P" | proxy_tiling "/$B/$1" "$2"; }
# longest_get KEY: the longest GET of KEY, in bytes
longest_get() {
	pj "Math.max(0, ...j.log.filter(e => e.path === '/$B/$1' && e.method === 'GET').map(e => {
		const m = /^bytes=(\\d+)-(\\d+)\$/.exec(e.range || '');
		return m ? Number(m[2]) - Number(m[1]) + 1 : Infinity;
	}))"
}
# check_read MP KEY: reads MP/KEY whole through the mount and compares it with the source
check_read() {
	local got
	got=$(mt cat "$1/$2" | sha256) || fail "reading $2"
	[ "$got" = "$(sha256 "$D/${2//\//-}")" ] || fail "$2 read other bytes than the source's"
}
shard() { echo "$1/model-0000$2-of-00004.safetensors"; }

step "1. --sibling-prefetch 0: opening shard 1 fetches shard 1 only"
mnt_cache off
start_daemon --sibling-prefetch 0 --max-inflight 32 --chunk-size 8M
MP=$(mnt_point off)
hoardfs_mount "$MP" --socket "$SOCK" --no-autostart --endpoint "$P" "s3://$B" "$MP"
check_read "$MP" "$(shard m2 1)"
for i in 2 3 4; do
	[ "$(gets "$(shard m2 $i)")" = 0 ] || fail "shard $i was fetched with --sibling-prefetch 0"
done
[ "$(ctl_get stats j.sibling_loads)" = 0 ] || fail "sibling_loads with --sibling-prefetch 0"
unmount "$MP"
stop_daemon "$CACHE"

step "2. by default, opening shard 1 loads shards 2-4, once each, before they are opened"
proxy_reset "$P"
mnt_cache on
start_daemon --max-inflight 32 --chunk-size 8M --fetch-threads 2 # shards spread over two threads
MP=$(mnt_point on)
hoardfs_mount "$MP" --socket "$SOCK" --no-autostart --endpoint "$P" "s3://$B" "$MP"
check_read "$MP" "$(shard m1 1)"
siblings_fetched() {
	local i
	for i in 2 3 4; do
		[ "$(tiles "$(shard m1 $i)" "$SHARD")" = ok ] || return 1
	done
}
wait_for 30 siblings_fetched || fail "shards 2-4 were not fetched whole: $(tiles "$(shard m1 2)" "$SHARD")"
[ "$(ctl_get stats j.sibling_loads)" = 3 ] ||
	fail "sibling_loads $(ctl_get stats j.sibling_loads), want 3"
# the last blocks are committed up to --commit-interval after they arrive: wait for them all
complete() { [ "$(ctl_get stats j.commit_blocks)" -ge $((4 * 25)) ]; }
wait_for 10 complete || fail "the shards' blocks were not committed"
g0=$(pj j.gets)
for i in 2 3 4; do
	check_read "$MP" "$(shard m1 $i)"
done
[ "$(pj j.gets)" = "$g0" ] || fail "reading the prefetched shards made $(($(pj j.gets) - g0)) GETs"
echo "shard GETs: $(for i in 1 2 3 4; do gets "$(shard m1 $i)"; done | xargs)"

step "3. a 200 MiB whole-file load: 17 GETs growing from 8 MiB, tiling the file once"
check_read "$MP" big.bin
n=$(gets big.bin)
echo "big.bin: $n GETs, longest $(longest_get big.bin) bytes"
[ "$(tiles big.bin "$BIG")" = ok ] || fail "big.bin's GETs: $(tiles big.bin "$BIG")"
[ "$n" -le 17 ] || fail "big.bin took $n GETs, want at most 17"

step "4. a random reader keeps small GETs"
MPR=$(mnt_point rnd)
hoardfs_mount "$MPR" --socket "$SOCK" --no-autostart --open-wait 0 --endpoint "$P" "s3://$B" "$MPR"
# 24 preads of 64 KiB at random offsets (seeded), read-ahead off: each touches one or two blocks
mt python3 - "$MPR/r.bin" "$D/r.bin" <<'EOF' || fail "random preads of r.bin"
import os, random, sys
f, r = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
os.posix_fadvise(f, 0, 0, os.POSIX_FADV_RANDOM)
size, rnd = os.fstat(r).st_size, random.Random(7)
for _ in range(24):
    off = rnd.randrange(0, size - 65536)
    if os.pread(f, 65536, off) != os.pread(r, 65536, off):
        sys.exit("r.bin: other bytes than the source's at %d" % off)
EOF
longest=$(longest_get r.bin)
echo "r.bin: $(gets r.bin) GETs, longest $longest bytes"
[ "$(gets r.bin)" -gt 1 ] || fail "the random reader's file was fetched in one GET"
[ "$longest" -le $((2 * MiB)) ] || fail "a random read made a GET of $longest bytes: $(pj "j.log.filter(e => e.path === '/$B/r.bin').map(e => e.range).join(' ')")"
unmount "$MPR"
unmount "$MP"

mnt_finish
echo PASS
