#!/usr/bin/env bash
# mount_read.sh: byte-exact reads through real mounts, cold (nothing cached: bytes come from the
# store through the daemon and the ring) and warm (a second mount on the same daemon, so no page
# cache: every read is a hit served from the object descriptor the daemon handed over, and the
# store sees no further GET for the data). Three ways to read: `cmp` of whole files (sequential),
# pread()s at and around every 1 MiB block boundary plus random ones from 8 threads, and mmap
# (page faults). On s3rver through a counting proxy, and on the GCS emulator. Then a daemon with
# --cache-size 32M (started by the test; the mount uses it through --socket) serves files larger
# than its whole cache, twice, plus a third that pushes the first out; the cache returns under
# its limit once the files are closed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

D=$(tmpdir data)

# check_all MP NAME...: cmp, preads and mmap of each NAME under MP against $D/NAME.
check_all() {
	local mp=$1 f
	shift
	for f in "$@"; do
		mt cmp "$mp/$f" "$D/$f" || fail "cmp $f"
	done
}
check_preads() {
	local out
	out=$(mt python3 "$READER" preads "$1" "$2" 2>&1) || fail "preads $1: $out"
	step "$out"
}
check_mmap() {
	local out
	out=$(mt python3 "$READER" mmap "$1" "$2" 2>&1) || fail "mmap $1: $out"
	step "$out"
}

# get_bytes PROXY NAME: bytes the store sent for object NAME of bucket $B through PROXY.
get_bytes() {
	proxy_stats "$1" | json_get "(j.paths['/$B/$2'] || {bytes_out: 0}).bytes_out"
}

step "uploading to s3rver"
B=$(uniq_bucket mread)
s3_mkbucket "$B"
mkdata "$D/seq.bin" $((24 * MiB + 12345))
mkdata "$D/rand.bin" $((9 * MiB + 17))
mkdata "$D/mm.bin" $((10 * MiB - 5))
mkdata "$D/small.bin" 4099
mkdata "$D/exact.bin" $((2 * MiB))
: >"$D/empty.bin"
for f in seq.bin rand.bin mm.bin small.bin exact.bin empty.bin; do
	s3_put "$B" "$f" "$D/$f"
done
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")

mnt_cache s3
MP=$(mnt_point cold)
step "cold: mount s3://$B through a counting proxy (the daemon is autostarted)"
hoardfs_mount "$MP" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MP"
check_all "$MP" seq.bin small.bin exact.bin empty.bin
check_preads "$MP/rand.bin" "$D/rand.bin"
check_mmap "$MP/mm.bin" "$D/mm.bin"
check_preads "$MP/exact.bin" "$D/exact.bin"
for f in seq.bin rand.bin mm.bin small.bin; do
	got=$(get_bytes "$P" "$f")
	[ "$got" -ge "$(stat -c %s "$D/$f")" ] || fail "cold: the store sent $got bytes of $f"
done
cold_gets=$(proxy_stats "$P" | json_get "j.log.filter(e => e.method == 'GET' && e.range).length")
[ "$cold_gets" -gt 0 ] || fail "cold reads made no ranged GET"

step "warm: a second mount of the same bucket on the same daemon (no page cache)"
proxy_reset "$P"
MPW=$(mnt_point warm)
hoardfs_mount "$MPW" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MPW"
check_all "$MPW" seq.bin small.bin exact.bin
check_preads "$MPW/seq.bin" "$D/seq.bin"
check_preads "$MPW/rand.bin" "$D/rand.bin"
check_mmap "$MPW/mm.bin" "$D/mm.bin"
check_mmap "$MPW/seq.bin" "$D/seq.bin"
warm_gets=$(proxy_stats "$P" | json_get "j.log.filter(e => e.method == 'GET' && e.range).length")
[ "$warm_gets" = 0 ] || fail "warm reads made $warm_gets ranged GETs (everything was cached)"

step "warm, same mount: page cache dropped for the files (POSIX_FADV_DONTNEED), read again"
for f in seq.bin mm.bin; do
	mt python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' \
		"$MP/$f" || fail "fadvise"
done
check_all "$MP" seq.bin
check_mmap "$MP/mm.bin" "$D/mm.bin"
[ "$(proxy_stats "$P" | json_get "j.log.filter(e => e.method == 'GET' && e.range).length")" = 0 ] ||
	fail "re-reading cached files fetched from the store"

# ---- GCS ----------------------------------------------------------------------------------------
step "GCS emulator: cold and warm reads"
G=$(uniq_bucket mread-gcs)
mkdata "$D/g.bin" $((5 * MiB + 99))
gcs_put "$G" "dir/g.bin" "$D/g.bin"
mnt_cache gcs
MPG=$(mnt_point gcs)
hoardfs_mount "$MPG" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$HOARDFS_GCS_ENDPOINT" \
	--anonymous "gs://$G" "$MPG"
check_preads "$MPG/dir/g.bin" "$D/g.bin"
mt cmp "$MPG/dir/g.bin" "$D/g.bin" || fail "cmp GCS cold"
MPG2=$(mnt_point gcs2)
hoardfs_mount "$MPG2" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$HOARDFS_GCS_ENDPOINT" \
	--anonymous "gs://$G/dir" "$MPG2"
check_mmap "$MPG2/g.bin" "$D/g.bin"
mt cmp "$MPG2/g.bin" "$D/g.bin" || fail "cmp GCS warm"

# ---- larger than the cache ----------------------------------------------------------------------
step "files larger than the daemon's --cache-size 32M"
mkdata "$D/huge1.bin" $((48 * MiB + 7))
mkdata "$D/huge2.bin" $((40 * MiB))
s3_put "$B" huge1.bin "$D/huge1.bin"
s3_put "$B" huge2.bin "$D/huge2.bin"
mnt_cache small
start_daemon --cache-size 32M
limit=$(ctl_get status j.bytes_limit)
[ "$limit" -le $((32 * MiB)) ] || fail "limit $limit with --cache-size 32M"
MPS=$(mnt_point small)
proxy_reset "$P"
hoardfs_mount "$MPS" --socket "$SOCK" --no-autostart --endpoint "$P" "s3://$B" "$MPS"
mt cmp "$MPS/huge1.bin" "$D/huge1.bin" || fail "cmp of a file larger than the cache"
check_preads "$MPS/huge1.bin" "$D/huge1.bin"
mt cmp "$MPS/huge2.bin" "$D/huge2.bin" || fail "cmp of the second large file"
check_mmap "$MPS/huge1.bin" "$D/huge1.bin"
mt cmp "$MPS/seq.bin" "$D/seq.bin" || fail "cmp seq.bin on the small cache"
wait_for 20 bash -c "[ \"\$(\"$(tool client)\" --socket '$SOCK' s3://x ctl '{\"cmd\":\"status\"}' |
	sed -n 's/.*\"bytes_used\":\([0-9]*\).*/\1/p')\" -le $limit ]" ||
	fail "the cache stays above its limit: $(ctl status)"
used=$(ctl_get status j.bytes_used)
step "cache limit $limit, used $used after reading 160 MiB through it;" \
	"the store sent $(proxy_stats "$P" | json_get j.bytes_out) bytes"
out=$(ctl check) || fail "the accounting check failed"
[ "$(json_get j.ok <<<"$out")" = true ] || fail "inconsistent accounting: $out"
[ "$(json_get j.accounting_errors <<<"$out")" = 0 ] || fail "accounting errors: $out"

mnt_finish
