#!/usr/bin/env bash
# mount_legacy.sh: the Rust tool's command line still works, exactly as its users typed it:
#   hoardfs --mount-point M --bucket-name B --data-dir D --auto_unmount --allow-root
# (a GCS bucket: the GCS emulator through STORAGE_EMULATOR_HOST, which the autostarted daemon
# inherits), in the default background mode: it mounts, lists and reads byte-exact; the daemon it
# starts uses D as its cache dir; kill -9 of the mount process leaves no mount (auto_unmount).
# The --auto-unmount spelling with --direct-io mounts and reads too, and, as --help documents,
# refuses shared mmap there. Without --data-dir the cache dir is /tmp/fuser, created 0700: that
# part runs in a private mount namespace over a private tmpfs /tmp (the real /tmp stays reachable
# through a bind mount elsewhere), so it can neither meet nor leave a real /tmp/fuser.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

command -v unshare >/dev/null || fail "unshare is not installed"
export STORAGE_EMULATOR_HOST=$HOARDFS_GCS_ENDPOINT
D=$(tmpdir data)
G=$(uniq_bucket mlegacy)
mkdata "$D/model.bin" $((6 * MiB + 77))
printf '{"model_type": "llama"}\n' >"$D/config.json"
gcs_put "$G" model.bin "$D/model.bin"
gcs_put "$G" sub/config.json "$D/config.json"

"$HOARDFS_BIN" --help >"$TEST_TMP/help" || fail "--help failed"
for w in --mount-point --bucket-name --data-dir --auto-unmount --allow-root --direct-io mmap; do
	grep -q -- "$w" "$TEST_TMP/help" || fail "--help does not mention $w"
done

# legacy_data_dir: a short cache dir the way a user would pick it (its socket goes inside).
DATA=$(mktemp -d /tmp/hfl.XXXXXX)
on_exit rm -rf "$DATA"
echo "$DATA" >>"$_MNT_CACHES"
on_exit stop_daemon "$DATA"

step "hoardfs --mount-point M --bucket-name B --data-dir D --auto_unmount --allow-root"
M1=$(mnt_point legacy1)
hoardfs_mount --bg "$M1" --mount-point "$M1" --bucket-name "$G" --data-dir "$DATA" \
	--auto_unmount --allow-root
P1=$MOUNT_PID
[ -S "$DATA/cached.sock" ] || fail "no daemon socket in the --data-dir"
[ -n "$(daemon_pid "$DATA")" ] || fail "no daemon serves the --data-dir"
[ "$(mt ls "$M1" | LC_ALL=C sort | paste -sd,)" = "model.bin,sub" ] || fail "ls: $(mt ls "$M1")"
mt cmp "$M1/model.bin" "$D/model.bin" || fail "cmp model.bin"
mt cmp "$M1/sub/config.json" "$D/config.json" || fail "cmp config.json"
awk -v mp="$M1" '$5 == mp' /proc/self/mountinfo | grep -q 'fuse.hoardfs' || fail "not a fuse.hoardfs mount"
awk -v mp="$M1" '$5 == mp' /proc/self/mountinfo | grep -qw ro || fail "not mounted read-only"

step "--auto-unmount --direct-io: reads work, shared mmap is refused (as --help says)"
M2=$(mnt_point legacy2)
hoardfs_mount --bg "$M2" --mount-point "$M2" --bucket-name "$G" --data-dir "$DATA" \
	--auto-unmount --direct-io
mt cmp "$M2/model.bin" "$D/model.bin" || fail "cmp with --direct-io"
out=$(mt python3 "$READER" mmap "$M2/model.bin" "$D/model.bin" 2>&1) &&
	fail "shared mmap works with --direct-io; --help says it does not: $out"
grep -q 'No such device' <<<"$out" || fail "mmap with --direct-io: $out"
[ "$(daemon_mounts "$DATA/cached.sock")" = 2 ] || fail "the two mounts do not share the daemon"

step "kill -9 of an --auto_unmount mount: no mount is left"
kill -KILL "$P1"
wait_for 45 bash -c "! awk -v mp='$M1' '\$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo" ||
	fail "$M1 is still mounted 45 s after kill -9 with --auto_unmount"
not_stale "$M1"
wait_for 15 bash -c "[ \"\$('$(tool client)' --socket '$DATA/cached.sock' s3://x ctl '{\"cmd\":\"status\"}' |
	grep -o '\"mountpoint\"' | wc -l)\" = 1 ]" || fail "the daemon still lists the killed mount"
unmount "$M2"
wait_gone "$MOUNT_PID" 15 || fail "the --direct-io mount did not exit"
not_stale "$M2"

# ---- the default data dir: /tmp/fuser ---------------------------------------------------------
step "no --data-dir: the cache dir is /tmp/fuser (in a private mount namespace and /tmp)"
M3=$(mnt_point legacy3)
had_fuser=$([ -e /tmp/fuser ] && echo 1 || true)
PIDS="$TEST_TMP/ns.pids"
: >"$PIDS"
# whatever the inner script leaves running is killed by pid from here (mounts die with it)
on_exit bash -c 'while read -r p n; do
	[ "$({ tr "\0" "\n" <"/proc/$p/cmdline"; } 2>/dev/null | head -n 1 | sed "s|.*/||")" = "$n" ] &&
		kill -KILL "$p" 2>/dev/null; done <"$1"; true' _ "$PIDS"
rc=0
# The real /tmp stays reachable inside the namespace through a bind mount at $STASH, so the test
# works when the checkout (binaries, mount points, data) itself lives under /tmp.
STASH=$(mktemp -d /run/hoardfs-legacy.XXXXXX)
on_exit rmdir "$STASH"
M3=$M3 G=$G REF="$D/model.bin" PIDS=$PIDS BIN=$HOARDFS_BIN STASH=$STASH \
	timeout -k 5 90 unshare -m --propagation private bash -s >"$TEST_TMP/ns.log" 2>&1 <<'EOF' || rc=$?
set -euo pipefail
mount --bind /tmp "$STASH"
mount -t tmpfs -o mode=1777 hoardfs-test-tmp /tmp
under_stash() { case $1 in /tmp/*) echo "$STASH/${1#/tmp/}" ;; *) echo "$1" ;; esac; }
M3=$(under_stash "$M3") REF=$(under_stash "$REF") PIDS=$(under_stash "$PIDS")
BIN=$(under_stash "$BIN")
[ ! -e /tmp/fuser ] || { echo "a private /tmp holds /tmp/fuser"; exit 1; }
timeout -k 5 60 "$BIN" --mount-point "$M3" --bucket-name "$G" --auto-unmount
mp_pid=
for p in $(grep -lzxF -- "$M3" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
	[ "$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -n 1)" = "$BIN" ] && mp_pid=$p
done
[ -n "$mp_pid" ] || { echo "no hoardfs process serves $M3"; exit 1; }
echo "$mp_pid hoardfs" >>"$PIDS"
d_pid=$(tr -dc 0-9 </tmp/fuser/cached.lock)
echo "$d_pid hoardfs-cached" >>"$PIDS"
rc=0
[ "$(stat -c '%a %U' /tmp/fuser)" = "700 root" ] || { echo "/tmp/fuser: $(stat -c '%a %U' /tmp/fuser)"; rc=1; }
[ -S /tmp/fuser/cached.sock ] || { echo "no /tmp/fuser/cached.sock"; rc=1; }
tr '\0' ' ' <"/proc/$d_pid/cmdline" | grep -q -- '--cache-dir /tmp/fuser' ||
	{ echo "daemon: $(tr '\0' ' ' <"/proc/$d_pid/cmdline")"; rc=1; }
timeout 30 cmp "$M3/model.bin" "$REF" || { echo "cmp through the default data dir"; rc=1; }
timeout 15 fusermount3 -u "$M3" || { echo "fusermount3 -u"; rc=1; }
for i in $(seq 1 100); do [ -e "/proc/$mp_pid" ] || break; sleep 0.1; done
kill -TERM "$d_pid"
for i in $(seq 1 100); do [ -e "/proc/$d_pid" ] || break; sleep 0.1; done
if [ -e "/proc/$mp_pid" ] || [ -e "/proc/$d_pid" ]; then echo "processes left"; rc=1; fi
exit $rc
EOF
if [ "$rc" != 0 ]; then
	cat "$TEST_TMP/ns.log" >&2
	fail "the default /tmp/fuser run failed ($rc)"
fi
[ -n "$had_fuser" ] || [ ! -e /tmp/fuser ] || fail "/tmp/fuser appeared in the real /tmp"
! mounted "$M3" || fail "$M3 is mounted outside the namespace"

mnt_finish
