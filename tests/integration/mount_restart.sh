#!/usr/bin/env bash
# mount_restart.sh: a daemon that dies costs readers a delay, not an error; unmounting leaves
# nothing behind.
#  A. Two mounts that started their daemon themselves (autostart) read two files with `cat`,
#     slowed by the proxy (every object GET waits 3 s), and the daemon is killed with SIGKILL
#     in the middle: one of the mounts starts a new daemon (exactly one runs afterwards, again
#     --autostarted), both mounts reconnect, and both `cat`s complete with the right bytes.
#  B. A mount served by a daemon the test started (as a service manager would): after SIGKILL
#     the mount starts no daemon of its own, waits, and reconnects when the test starts the
#     daemon again some seconds later; the `cat` completes with the right bytes.
#  C. Unmounting: fusermount3 -u, SIGTERM to a foreground mount, SIGTERM to a background
#     (default mode) mount, and kill -9 of an --auto-unmount mount each leave no mount point
#     behind (not mounted, no 'Transport endpoint is not connected'), and the daemon's status
#     no longer lists the mount.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

D=$(tmpdir data)
B=$(uniq_bucket mrestart)
s3_mkbucket "$B"
for f in one.bin two.bin three.bin; do
	mkdata "$D/$f" $((64 * MiB + 4099))
	s3_put "$B" "$f" "$D/$f"
done
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
slow_gets() {
	proxy_faults "$P" "[{\"match\": \"/$B/\", \"method\": \"GET\", \"action\": \"delay\", \"ms\": $1}]"
}

# bg_cat NAME FILE: copies FILE to $D/NAME.out in the background (bounded); sets CAT_PID.
bg_cat() {
	timeout -k 5 90 cat "$2" >"$D/$1.out" 2>"$D/$1.err" &
	CAT_PID=$!
}
# cat_ok PID NAME REF: the cat PID finished well and copied REF exactly.
cat_ok() {
	local rc=0
	wait "$1" || rc=$?
	[ "$rc" = 0 ] || fail "cat $2 failed ($rc): $(cat "$D/$2.err")"
	cmp -s "$D/$2.out" "$3" || fail "cat $2 copied wrong bytes ($(stat -c %s "$D/$2.out") bytes)"
}
# daemons_of CACHE: how many hoardfs-cached processes serve CACHE.
daemons_of() {
	local n=0 p
	for p in $(pids_with_arg "$1"); do
		_is_prog "$p" hoardfs-cached && alive "$p" && n=$((n + 1))
	done
	echo "$n"
}

# ---- A. autostarted daemon killed under two readers ---------------------------------------------------
step "A: two autostarting mounts read while their daemon is killed"
mnt_cache auto
M1=$(mnt_point a1)
M2=$(mnt_point a2)
hoardfs_mount "$M1" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$P" "s3://$B" "$M1"
LOG1=$MOUNT_LOG
hoardfs_mount "$M2" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$P" "s3://$B" "$M2"
LOG2=$MOUNT_LOG
D1=$(daemon_pid "$CACHE")
[ -n "$D1" ] || fail "no daemon"
tr '\0' ' ' <"/proc/$D1/cmdline" | grep -q -- --autostarted || fail "daemon not --autostarted"
mt stat "$M1/one.bin" "$M2/two.bin" >/dev/null || fail "stat"
slow_gets 3000
t0=${EPOCHREALTIME/./}
bg_cat one "$M1/one.bin"
C1=$CAT_PID
bg_cat two "$M2/two.bin"
C2=$CAT_PID
sleep 1.5
alive "$C1" && alive "$C2" || fail "a cat finished before the daemon was killed: not slow enough"
kill -KILL "$D1"
step "A: killed daemon $D1 while both cats ran"
cat_ok "$C1" one "$D/one.bin"
cat_ok "$C2" two "$D/two.bin"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
D2=$(daemon_pid "$CACHE")
[ -n "$D2" ] && [ "$D2" != "$D1" ] || fail "no new daemon after the kill"
tr '\0' ' ' <"/proc/$D2/cmdline" | grep -q -- --autostarted || fail "the new daemon is not --autostarted"
[ "$(daemons_of "$CACHE")" = 1 ] || fail "$(daemons_of "$CACHE") daemons serve $CACHE"
grep -q 'reconnected to hoardfs-cached' "$LOG1" || fail "mount 1 did not log a reconnect"
grep -q 'reconnected to hoardfs-cached' "$LOG2" || fail "mount 2 did not log a reconnect"
[ "$(cat "$LOG1" "$LOG2" | grep -c 'started hoardfs-cached')" = 2 ] ||
	fail "want one start at mount and one restart: $(grep -h 'started hoardfs-cached' "$LOG1" "$LOG2")"
wait_for 10 bash -c "[ \"\$('$(tool client)' --socket '$SOCK' s3://x ctl '{\"cmd\":\"status\"}' |
	grep -o '\"mountpoint\"' | wc -l)\" = 2 ]" || fail "the new daemon does not list both mounts"
step "A: both cats right after ${ms} ms; daemon $D2 (restarted by a mount) serves both mounts"
proxy_faults "$P" '[]'
mt cmp "$M1/three.bin" "$D/three.bin" || fail "reading after the restart"

# ---- B. a daemon the test runs ----------------------------------------------------------------------
step "B: a daemon started by the test is killed; the mount waits for the test to restart it"
mnt_cache svc
start_daemon
DS1=$DAEMON_PID
MB=$(mnt_point b)
hoardfs_mount "$MB" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MB"
LOGB=$MOUNT_LOG
mt stat "$MB/two.bin" >/dev/null || fail "stat"
slow_gets 2000
t0=${EPOCHREALTIME/./}
bg_cat b "$MB/two.bin"
CB=$CAT_PID
sleep 1
alive "$CB" || fail "the cat finished before the daemon was killed"
kill -KILL "$DS1"
sleep 3
[ -z "$(daemon_pid "$CACHE")" ] && [ "$(daemons_of "$CACHE")" = 0 ] ||
	fail "a daemon was started for $CACHE, but only the test may start this one"
alive "$CB" || fail "the cat ended while no daemon ran: $(cat "$D/b.err")"
start_daemon
step "B: daemon restarted by the test ($DS1 -> $DAEMON_PID) after 3 s"
cat_ok "$CB" b "$D/two.bin"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
grep -q 'reconnected to hoardfs-cached' "$LOGB" || fail "the mount did not log a reconnect"
! grep -q 'started hoardfs-cached' "$LOGB" || fail "the mount started a daemon"
! tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" | grep -q -- --autostarted || fail "--autostarted?"
step "B: cat right after ${ms} ms"
proxy_faults "$P" '[]'

# ---- C. unmounting ------------------------------------------------------------------------------------
step "C: fusermount3 -u, SIGTERM (foreground and background), kill -9 with --auto-unmount"
n0=$(daemon_mounts)
MC=$(mnt_point c)
gone() { # MP PID MOUNTS_LEFT: the mount is gone, its process too, the daemon forgot it
	wait_gone "$2" 15 || fail "hoardfs $2 still runs"
	wait_for 45 bash -c "! awk -v mp='$1' '\$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo" ||
		fail "$1 is still mounted 45 s after its process ended"
	not_stale "$1"
	wait_for 15 bash -c "[ \"\$('$(tool client)' --socket '$SOCK' s3://x ctl '{\"cmd\":\"status\"}' |
		grep -o '\"mountpoint\"' | wc -l)\" = $3 ]" ||
		fail "the daemon still lists the mount of $1: $(ctl status)"
}
exit_status() { # PID: its exit status (our child)
	local rc=0
	wait "$1" || rc=$?
	echo "$rc"
}

hoardfs_mount "$MC" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MC"
mt cmp "$MC/one.bin" "$D/one.bin" || fail "cmp"
[ "$(daemon_mounts)" = $((n0 + 1)) ] || fail "the daemon does not list the new mount"
unmount "$MC"
gone "$MC" "$MOUNT_PID" "$n0"
[ "$(exit_status "$MOUNT_PID")" = 0 ] || fail "hoardfs exited non-zero after fusermount3 -u"

hoardfs_mount "$MC" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MC"
mt cmp "$MC/two.bin" "$D/two.bin" || fail "cmp"
kill -TERM "$MOUNT_PID"
gone "$MC" "$MOUNT_PID" "$n0"
[ "$(exit_status "$MOUNT_PID")" = 0 ] || fail "hoardfs exited non-zero after SIGTERM"

hoardfs_mount --bg "$MC" --socket "$SOCK" --endpoint "$P" "s3://$B" "$MC"
mt cmp "$MC/two.bin" "$D/two.bin" || fail "cmp"
kill -TERM "$MOUNT_PID"
gone "$MC" "$MOUNT_PID" "$n0"

hoardfs_mount "$MC" --socket "$SOCK" --endpoint "$P" --auto-unmount "s3://$B" "$MC"
mt cmp "$MC/one.bin" "$D/one.bin" || fail "cmp"
kill -KILL "$MOUNT_PID"
gone "$MC" "$MOUNT_PID" "$n0"
{ wait "$MOUNT_PID"; } 2>/dev/null || true # reaped quietly

mnt_finish
