#!/usr/bin/env bash
# daemon_crash.sh: what hoardfs-cached marks present survives crashes and is never wrong.
#
# Part A, kill -9 mid-fetch: a 256 MiB object is read through a proxy that delays every GET (and
# the daemon runs only 2 GETs at a time), so the fetch is slow; once some blocks are committed the
# daemon is killed with SIGKILL while GETs are in flight. With the daemon down, every block its
# LMDB marks present is compared, byte for byte and by its recorded crc32c, with the source
# (tool_metadump --check opens the metadata read-only through common/meta.h). Restarted on the same cache
# dir, a fresh read returns the source's bytes and fetches exactly the blocks that were not
# marked (fetching resumes; nothing marked is fetched twice); after a clean stop every block is
# marked and matches.
#
# Part B, durability: the cache dir lives on a loop-mounted ext4 image. During a load the file
# system is shut down with `xfs_io -x -c shutdown` (EXT4_IOC_SHUTDOWN, NOLOGFLUSH: unsynced data
# and the unflushed journal are dropped, as in a power cut); the daemon keeps running on the dead
# file system for a moment (its writes, fdatasyncs and LMDB commits fail), then is killed; the
# file system is unmounted and mounted again (journal replay) and no block marked present may be
# wrong. Round 2 restarts the daemon (it must resume), reads a second object and shuts the file
# system down again with `shutdown -f` (journal flushed first); round 3 finishes both objects.
# Needs root (loop devices); cleanup unmounts and detaches the loop device even on failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
SIZE=$((256 * MiB))
NBLK=$((SIZE / MiB))
for t in xfs_io mkfs.ext4 losetup mount umount; do
	command -v "$t" >/dev/null || fail "$t is not installed"
done
[ "$(id -u)" = 0 ] || fail "needs root (loop devices, mount)"

b=$(uniq_bucket crash)
s3_mkbucket "$b"
step "uploading objects (256 MiB, 128 MiB)"
mkdata_fast "$TEST_TMP/big" "$SIZE"
s3_put_large "$b" big "$TEST_TMP/big"
mkdata_fast "$TEST_TMP/big2" $((128 * MiB))
s3_put_large "$b" big2 "$TEST_TMP/big2"
declare -A SHA=([big]=$(sha256 "$TEST_TMP/big") [big2]=$(sha256 "$TEST_TMP/big2"))
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")

# slow_gets MS: every GET of an object waits MS ms at the proxy before it is forwarded.
slow_gets() {
	proxy_faults "$P" "[{\"match\": \"/$b/big\", \"method\": \"GET\", \"action\": \"delay\", \"ms\": $1}]"
}

# start_reader KEY: a background cat of KEY (its exit status is not checked: it may lose the
# daemon); sets READER.
start_reader() {
	"$TOOL_CLIENT" --socket "$DAEMON_SOCK" --endpoint "$P" --timeout-ms 30000 "s3://$b" cat "$1" \
		--out /dev/null >"$TEST_TMP/reader.log" 2>&1 &
	READER=$!
	on_exit _daemon_kill "$READER"
}

# stop_reader: the reader must end by itself within 40 s once its daemon is gone.
stop_reader() {
	local i
	for i in $(seq 1 400); do
		kill -0 "$READER" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$READER" 2>/dev/null && fail "a reader did not notice its daemon died"
	wait "$READER" 2>/dev/null || true
}

# wait_progress MIN_FETCHED MIN_COMMITTED: waits (bounded) until the daemon has verified and
# committed enough blocks.
wait_progress() {
	local i f c
	for i in $(seq 1 300); do
		f=$(daemon_stat blocks_fetched)
		c=$(daemon_stat commit_blocks)
		[ "$f" -ge "$1" ] && [ "$c" -ge "$2" ] && return 0
		daemon_alive || fail "the daemon died by itself"
		sleep 0.1
	done
	fail "no progress: $f blocks fetched, $c committed"
}

# present DIR KEY: blocks LMDB marks present for KEY (daemon stopped).
present() {
	metadump "$1" | awk -v k="$2" '$1 == "object" && $6 == k { print $4 }'
}

step "A: kill -9 mid-fetch"
slow_gets 300
daemon_start "$TEST_TMP/cache" --max-inflight 2
start_reader big
wait_progress 48 16
daemon_stats >"$TEST_TMP/before-kill.json"
daemon_kill9
echo "killed with $(json_get j.blocks_fetched <"$TEST_TMP/before-kill.json") blocks verified," \
	"$(json_get j.commit_blocks <"$TEST_TMP/before-kill.json") committed, $(json_get \
		j.fetches_inflight <"$TEST_TMP/before-kill.json") GETs in flight"
stop_reader
daemon_check_log
check_cache "$TEST_TMP/cache" big "$TEST_TMP/big"
p1=$(present "$TEST_TMP/cache" big)
echo "after kill -9: $p1 of $NBLK blocks marked present"
if [ "$p1" -le 0 ] || [ "$p1" -ge "$NBLK" ]; then
	fail "$p1 blocks marked: the kill was not mid-fetch"
fi

step "A: restart on the same cache dir; the fetch resumes"
proxy_reset "$P"
daemon_start "$TEST_TMP/cache"
got=$(client --endpoint "$P" "s3://$b" cat big | sha256) ||
	fail "reading after the restart failed"
[ "$got" = "${SHA[big]}" ] || fail "the read after the restart returned other bytes"
refetched=$(proxy_path_bytes "$P" "/$b/big")
echo "after the restart: $refetched bytes fetched again ($(((SIZE - refetched) / MiB)) MiB reused)"
[ "$refetched" = $(((NBLK - p1) * MiB)) ] ||
	fail "the restart fetched $refetched bytes, want exactly the $((NBLK - p1)) unmarked blocks"
daemon_stop
check_cache "$TEST_TMP/cache" big "$TEST_TMP/big"
[ "$(present "$TEST_TMP/cache" big)" = "$NBLK" ] || fail "not every block marked after the read"
rm -rf "$TEST_TMP/cache"

step "B: cache dir on a loop-mounted ext4"
IMG="$TEST_TMP/fs.img"
MNT="$TEST_TMP/mnt"
mkdir -p "$MNT"
truncate -s 1G "$IMG"
mkfs.ext4 -q -F "$IMG" || fail "mkfs.ext4"
LOOP=$(losetup --find --show "$IMG") || fail "no loop device"
on_exit losetup -d "$LOOP"
# Unmounts (retrying, then lazily): runs after the daemons are killed (cleanups run in reverse).
umount_mnt() {
	local i
	mountpoint -q "$MNT" || return 0
	for i in $(seq 1 50); do
		umount "$MNT" 2>/dev/null && return 0
		sleep 0.1
	done
	umount -l "$MNT"
}
on_exit umount_mnt
mount "$LOOP" "$MNT" || fail "mount $LOOP"
mkdir -m 0700 "$MNT/cache-ext4"
CACHE="$MNT/cache-ext4"

# shutdown_fs FLAGS...: shuts the file system down; FLAGS as xfs_io's shutdown takes them.
shutdown_fs() {
	local cmd
	cmd=$(echo "shutdown $*" | sed 's/ *$//')
	xfs_io -x -c "$cmd" "$MNT" || fail "xfs_io -x -c '$cmd' failed on ext4"
	echo "file system shut down (xfs_io -x -c '$cmd')"
}

# log_after_shutdown: what the daemon logged about the dead file system (printed, not asserted).
log_after_shutdown() {
	local last="$TEST_TMP/last-run.log"
	awk '/^=== daemon_start/ { n = 0 } { l[n++] = $0 } END { for (i = 0; i < n; i++) print l[i] }' \
		"$DAEMON_LOG" >"$last"
	echo "  its log: $(grep -c 'sink write failed' "$last") GETs failed writing," \
		"$(grep -c 'fdatasync of object' "$last") fdatasyncs failed," \
		"$(grep -c 'metadata commit failed' "$last") group commits failed"
	grep -E 'fdatasync of object|commit failed' "$last" | head -n 3 || true
}

# remount: the daemon is dead; unmount and mount again (replaying the journal).
remount() {
	umount "$MNT" || fail "umount after the shutdown"
	mount "$LOOP" "$MNT" || fail "mount after the shutdown"
}

step "B round 1: shutdown (no log flush) during a load"
proxy_reset "$P"
slow_gets 200
daemon_start "$CACHE" --max-inflight 2
start_reader big
wait_progress 40 16
shutdown_fs
sleep 1 # the daemon meets the dead file system: failed writes, syncs and commits
alive=$(daemon_alive && echo alive || echo dead)
echo "daemon after 1 s on the shut-down file system: $alive"
log_after_shutdown
daemon_kill9
stop_reader
daemon_check_log
remount
check_cache "$CACHE" big "$TEST_TMP/big" big2 "$TEST_TMP/big2"
b1=$(present "$CACHE" big)
echo "after shutdown + remount: ${b1:-0} of $NBLK blocks of big marked present"

step "B round 2: restart (resumes big), then shutdown -f during the load of big2"
proxy_reset "$P"
daemon_start "$CACHE" --max-inflight 2
got=$(client --endpoint "$P" "s3://$b" cat big | sha256) ||
	fail "reading big after the remount failed"
[ "$got" = "${SHA[big]}" ] || fail "big after the remount: other bytes"
refetched=$(proxy_path_bytes "$P" "/$b/big")
[ "$refetched" = $(((NBLK - ${b1:-0}) * MiB)) ] ||
	fail "big: fetched $refetched bytes after the remount, want $(((NBLK - ${b1:-0}) * MiB))"
slow_gets 200
start_reader big2
wait_progress $((NBLK + 24)) $((NBLK + 8))
shutdown_fs -f
sleep 1
echo "daemon after 1 s on the shut-down file system: $(daemon_alive && echo alive || echo dead)"
log_after_shutdown
daemon_kill9
stop_reader
daemon_check_log
remount
check_cache "$CACHE" big "$TEST_TMP/big" big2 "$TEST_TMP/big2"
b2=$(present "$CACHE" big2)
echo "after shutdown -f + remount: $(present "$CACHE" big) of $NBLK blocks of big," \
	"${b2:-0} of 128 of big2 marked present"

step "B round 3: restart, finish both objects, stop cleanly"
proxy_reset "$P"
daemon_start "$CACHE"
for k in big big2; do
	got=$(client --endpoint "$P" "s3://$b" cat "$k" | sha256) ||
		fail "reading $k in round 3 failed"
	[ "$got" = "${SHA[$k]}" ] || fail "$k in round 3: other bytes"
done
daemon_stop
check_cache "$CACHE" big "$TEST_TMP/big" big2 "$TEST_TMP/big2"
if [ "$(present "$CACHE" big)" != "$NBLK" ] || [ "$(present "$CACHE" big2)" != 128 ]; then
	fail "not every block marked after round 3"
fi
