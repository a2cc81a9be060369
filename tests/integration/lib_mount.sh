# lib_mount.sh: FUSE helpers for the mount tests, sourced after lib.sh.
#
# Gives a test: private daemons (a fresh 0700 cache dir and a short socket path each), mounts of
# build/mountd/hoardfs at private mount points under $TEST_TMP, waits that are always bounded, and
# cleanups that can never hang: a mount is unmounted with fusermount3 -u (then umount -l), its
# FUSE connection aborted through /sys/fs/fuse/connections/N if it is stuck, and its process and
# its daemon killed by pid (TERM, then KILL). Mounts are torn down before daemons and proxies.
#
# Rules for tests: never touch a mount point that may be stuck without a timeout (use `mt`, or
# with_timeout); call mnt_finish at the end, which unmounts everything cleanly, stops the daemons
# and fails the test if a sanitizer reported anything in any process (mounts and daemons detach,
# so their reports go to $TEST_TMP/sanitizer/ rather than to a terminal).

HOARDFS_BIN=${HOARDFS_BIN:-$HOARDFS_BUILD/mountd/hoardfs}
CACHED_BIN=${CACHED_BIN:-$HOARDFS_BUILD/cached/hoardfs-cached}
[ -x "$HOARDFS_BIN" ] || fail "hoardfs is not built ($HOARDFS_BIN)"
[ -x "$CACHED_BIN" ] || fail "hoardfs-cached is not built ($CACHED_BIN)"
[ "$(id -u)" = 0 ] || fail "the mount tests need root (real FUSE mounts)"
[ -c /dev/fuse ] || fail "/dev/fuse is missing"
command -v fusermount3 >/dev/null || fail "fusermount3 is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"
MiB=$((1024 * 1024))
READER="$HOARDFS_SRC/tests/integration/lib_read.py"
command -v openssl >/dev/null || fail "openssl is not installed"

# fsha FILE: SHA-256 of FILE (openssl: several times faster than sha256sum on large files).
fsha() {
	openssl dgst -sha256 -r "$1" | cut -d' ' -f1
}

# Sanitizer reports of every process (detached ones have no terminal) go to files checked by
# mnt_finish / san_check.
SAN_DIR="$TEST_TMP/sanitizer"
mkdir -p "$SAN_DIR"
export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$SAN_DIR/asan"
export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$SAN_DIR/ubsan:print_stacktrace=1"

# Last line of defence, run after every other cleanup but before lib.sh removes $TEST_TMP (whose
# rm -rf would otherwise walk into a leftover mount): whatever is still mounted under $TEST_TMP
# is aborted and detached, and hoardfs processes naming $TEST_TMP are killed by pid.
_mnt_sweep() {
	local mp dev p
	while read -r dev mp; do
		echo "cleanup: $mp is still mounted at the end: aborting and detaching it" >&2
		[ -e "/sys/fs/fuse/connections/${dev#*:}/abort" ] &&
			echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null
		timeout -k 2 10 umount -l "$mp" || echo "cleanup: umount -l $mp failed" >&2
	done < <(awk -v t="$TEST_TMP/" 'index($5, t) == 1 && / - fuse/ { print $3, $5 }' \
		/proc/self/mountinfo | sort -k2 -r)
	for p in $(grep -lzF -- "$TEST_TMP/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		{ _is_prog "$p" hoardfs || _is_prog "$p" hoardfs-cached; } || continue
		echo "cleanup: killing leftover $(_is_prog "$p" hoardfs && echo hoardfs || echo hoardfs-cached) $p" >&2
		kill -KILL "$p" 2>/dev/null || true
	done
	return 0
}
# When the test failed: every sanitizer report, and the end of each mount's and daemon's log
# (runs after the sweep below, so the logs are complete, and before $TEST_TMP is removed).
_mnt_report() {
	local f
	[ "${HOARDFS_TEST_STATUS:-0}" != 0 ] || return 0
	for f in "$SAN_DIR"/*; do
		[ -s "$f" ] || continue
		echo "==== $f" >&2
		cat "$f" >&2
	done
	for f in "$TEST_TMP"/mount-log.* "$TEST_TMP"/*/cached.log; do
		[ -s "$f" ] || continue
		echo "==== $f (last 40 lines)" >&2
		tail -n 40 "$f" >&2
	done
	return 0
}
on_exit _mnt_report
on_exit _mnt_sweep

_MNT_LIST="$TEST_TMP/mounts"     # "MP PID fg|bg" per mount made by hoardfs_mount
_MNT_CACHES="$TEST_TMP/caches"   # cache dirs whose daemons we stop
: >"$_MNT_LIST"
: >"$_MNT_CACHES"

# ---- processes ----------------------------------------------------------------------------------

# alive PID: whether PID runs (a zombie does not count).
alive() {
	local st
	st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _is_prog PID NAME: whether PID's argv[0] ends in /NAME (or is NAME): never signal a reused pid.
_is_prog() {
	local a0
	a0=$({ tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null | head -n 1) || return 1
	[ "${a0##*/}" = "$2" ]
}

# _kill_prog PID NAME: SIGTERM to PID if it runs NAME, up to 5 s, then SIGKILL; waits (bounded)
# for it to be gone.
_kill_prog() {
	local pid=$1 name=$2 i
	[ -n "$pid" ] && alive "$pid" && _is_prog "$pid" "$name" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null || true # a stopped process handles TERM only once resumed
	for i in $(seq 1 50); do
		alive "$pid" || return 0
		sleep 0.1
	done
	echo "cleanup: $name $pid ignored SIGTERM for 5 s: SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		alive "$pid" || return 0
		sleep 0.1
	done
	echo "cleanup: $name $pid is still there after SIGKILL (stuck in the kernel?)" >&2
	return 1
}

# ---- daemons ------------------------------------------------------------------------------------

# mnt_cache [NAME]: a fresh cache dir (0700) and a short socket path for one daemon: sets CACHE
# and SOCK (sun_path holds 107 bytes, so the socket lives under /tmp), and registers the stop of
# whatever daemon ends up serving that cache dir (it runs after the unmounts registered later).
mnt_cache() {
	local sd
	CACHE=$(tmpdir "cache-${1:-c}")
	chmod 700 "$CACHE"
	sd=$(mktemp -d /tmp/hfs.XXXXXX)
	on_exit rm -rf "$sd"
	SOCK="$sd/s"
	echo "$CACHE" >>"$_MNT_CACHES"
	on_exit stop_daemon "$CACHE"
}

# daemon_pid CACHE: prints the pid of the hoardfs-cached serving CACHE (from CACHE/cached.lock),
# or nothing when none runs.
daemon_pid() {
	local pid
	pid=$(head -n 1 "$1/cached.lock" 2>/dev/null | tr -dc 0-9) || true
	if [ -n "$pid" ] && alive "$pid" && _is_prog "$pid" hoardfs-cached; then
		echo "$pid"
	fi
}

# start_daemon [OPTIONS...]: starts hoardfs-cached (in the background, as a service manager
# would: not --autostarted) on $CACHE and $SOCK with OPTIONS, waits until it answers, and sets
# DAEMON_PID.
start_daemon() {
	local rc=0
	with_timeout 30 "$CACHED_BIN" --cache-dir "$CACHE" --socket "$SOCK" "$@" \
		</dev/null >>"$TEST_TMP/daemon-start.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$TEST_TMP/daemon-start.log" "$CACHE/cached.log" >&2 2>/dev/null || true
		fail "hoardfs-cached did not start (status $rc)"
	fi
	DAEMON_PID=$(daemon_pid "$CACHE")
	[ -n "$DAEMON_PID" ] || fail "hoardfs-cached started but $CACHE/cached.lock has no live pid"
}

# stop_daemon CACHE: stops the daemon serving CACHE, if any (TERM, then KILL).
stop_daemon() {
	_kill_prog "$(daemon_pid "$1")" hoardfs-cached
}

# ctl CMD [SOCKET]: prints the daemon's JSON answer to {"cmd":"CMD"} (status, stats).
ctl() {
	with_timeout 20 "$(tool client)" --socket "${2:-$SOCK}" s3://ctl ctl "{\"cmd\":\"$1\"}"
}

# ctl_get CMD EXPR [SOCKET]: one value of the daemon's answer (EXPR as for json_get).
ctl_get() {
	local out
	out=$(ctl "$1" "${3:-$SOCK}") || fail "ctl $1 failed"
	json_get "$2" <<<"$out"
}

# ---- mounts -------------------------------------------------------------------------------------

# mounted MP: whether MP is a mount point, from /proc/self/mountinfo (never stats MP, which could
# hang on a stuck FUSE mount).
mounted() {
	awk -v mp="$1" '$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# fuse_conn MP: the FUSE connection number of the mount at MP (its device minor), or nothing.
fuse_conn() {
	awk -v mp="$1" '$5 == mp && / - fuse/ { split($3, d, ":"); c = d[2] } END { if (c != "") print c }' \
		/proc/self/mountinfo
}

# mnt_point [NAME]: creates and prints a fresh mount point under $TEST_TMP.
mnt_point() {
	tmpdir "mnt-${1:-m}"
}

# mt CMD...: runs the program CMD against a mount, bounded (30 s): a hung mount fails the test's
# step instead of hanging it.
mt() {
	timeout -k 5 30 "$@"
}

# hoardfs_mount [--bg] MP ARGS...: runs `hoardfs ARGS...` (ARGS include the URL and MP, or the
# legacy flags), with --foreground unless --bg is given (then the default: it detaches and exits
# 0 once mounted). Waits (30 s at most) until MP is mounted, registers the unmount, and sets
# MOUNT_PID (the process serving the mount) and MOUNT_LOG (its stderr, foreground only). Fails
# the test if hoardfs exits with an error or does not mount in time.
hoardfs_mount() {
	local bg='' mp pid rc=0 conn
	if [ "$1" = --bg ]; then
		bg=1
		shift
	fi
	mp=$1
	shift
	MOUNT_LOG=$(mktemp "$TEST_TMP/mount-log.XXXXXX")
	if [ -n "$bg" ]; then
		with_timeout 60 "$HOARDFS_BIN" "$@" </dev/null >"$MOUNT_LOG" 2>&1 || rc=$?
		if [ "$rc" != 0 ]; then
			cat "$MOUNT_LOG" >&2
			fail "hoardfs $* exited $rc"
		fi
		mounted "$mp" || fail "hoardfs $* exited 0 but $mp is not mounted"
		pid=$(_mount_pid_of "$mp")
		[ -n "$pid" ] || fail "no hoardfs process serves $mp"
	else
		"$HOARDFS_BIN" --foreground "$@" </dev/null >"$MOUNT_LOG" 2>&1 &
		pid=$!
		# register now (pid known) so a mount that appears late is still undone
		echo "$mp $pid fg" >>"$_MNT_LIST"
		on_exit _mnt_cleanup "$mp" "$pid"
		if ! wait_for 30 _mounted_or_dead "$mp" "$pid" || ! mounted "$mp"; then
			cat "$MOUNT_LOG" >&2
			fail "hoardfs $* did not mount $mp"
		fi
	fi
	conn=$(fuse_conn "$mp")
	if [ -n "$bg" ]; then
		echo "$mp $pid bg" >>"$_MNT_LIST"
		on_exit _mnt_cleanup "$mp" "$pid"
	fi
	echo "$conn" >"$TEST_TMP/conn.$pid"
	wait_for 10 timeout 5 mountpoint -q "$mp" || fail "$mp is mounted but does not answer"
	MOUNT_PID=$pid
}

_mounted_or_dead() {
	mounted "$1" || ! alive "$2"
}

# pids_with_arg ARG: pids of processes with ARG as one of their arguments (one grep over every
# command line: a loop of subshells per process is slow on a busy machine).
pids_with_arg() {
	grep -lzxF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 || true
}

# _mount_pid_of MP: the hoardfs process whose command line names MP (the detached mount).
_mount_pid_of() {
	local p
	for p in $(pids_with_arg "$1"); do
		if _is_prog "$p" hoardfs && alive "$p"; then
			echo "$p"
			return 0
		fi
	done
}

# unmount MP: fusermount3 -u, bounded; fails the test if it does not work.
unmount() {
	with_timeout 15 fusermount3 -u "$1" || fail "fusermount3 -u $1 failed"
}

# _mnt_cleanup MP PID: undoes one mount whatever state it is in: fusermount3 -u, else the FUSE
# connection is aborted and the mount lazily detached; then its process is killed.
_mnt_cleanup() {
	local mp=$1 pid=$2 conn
	conn=$(cat "$TEST_TMP/conn.$pid" 2>/dev/null || true)
	[ -n "$conn" ] || conn=$(fuse_conn "$mp")
	if mounted "$mp"; then
		if ! timeout -k 2 10 fusermount3 -u -q "$mp" 2>/dev/null; then
			echo "cleanup: fusermount3 -u $mp failed; aborting the connection" >&2
			_abort_conn "$mp" "$conn"
			timeout -k 2 10 fusermount3 -uz -q "$mp" 2>/dev/null ||
				timeout -k 2 10 umount -l "$mp" ||
				echo "cleanup: could not unmount $mp" >&2
		fi
	fi
	_kill_prog "$pid" hoardfs || _abort_conn "$mp" "$conn"
	if mounted "$mp"; then
		_abort_conn "$mp" "$conn"
		timeout -k 2 10 umount -l "$mp" || echo "cleanup: $mp is still mounted" >&2
	fi
}

# _abort_conn MP CONN: aborts FUSE connection CONN if it is still MP's (minor numbers are reused,
# so only while MP is mounted on it, or while its process is stuck).
_abort_conn() {
	local mp=$1 conn=$2
	[ -n "$conn" ] && [ -e "/sys/fs/fuse/connections/$conn/abort" ] || return 0
	if [ "$(fuse_conn "$mp")" = "$conn" ] || ! mounted "$mp"; then
		echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
	fi
}

# not_stale MP: MP is no longer a mount point and not a dead one ('Transport endpoint is not
# connected').
not_stale() {
	local mp=$1 out
	! mounted "$mp" || fail "$mp is still mounted"
	out=$(timeout 5 stat "$mp" 2>&1) || fail "stat $mp: $out"
	! grep -q 'not connected' <<<"$out" || fail "$mp: $out"
	! timeout 5 mountpoint -q "$mp" || fail "mountpoint -q $mp still succeeds"
}

# wait_gone PID SECS: waits (bounded) for PID to exit.
wait_gone() {
	local pid=$1 secs=${2:-10}
	wait_for "$secs" bash -c "! [ -e /proc/$pid ] || grep -q '^[0-9]* (.*) [ZX]' /proc/$pid/stat"
}

# daemon_mounts [SOCKET]: how many mounts the daemon's status lists.
daemon_mounts() {
	ctl_get status 'j.mounts.length' "${1:-$SOCK}"
}

# ---- the end ------------------------------------------------------------------------------------

# san_check: fails the test if any process wrote a sanitizer report.
san_check() {
	local f bad=
	for f in "$SAN_DIR"/*; do
		[ -e "$f" ] || continue
		echo "==== sanitizer report $f" >&2
		cat "$f" >&2
		bad=1
	done
	[ -z "$bad" ] || fail "sanitizer reports (above)"
	if grep -lE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' \
		"$TEST_TMP"/mount-log.* "$TEST_TMP"/*.log 2>/dev/null; then
		fail "sanitizer report in a log (above)"
	fi
}

# _stuck_report PID: what a process that does not exit is doing (state and kernel stack of each
# thread), for the failure message.
_stuck_report() {
	local t
	for t in /proc/"$1"/task/*; do
		echo "thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)): state $(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "$t/stat" 2>/dev/null)" >&2
		sed 's/^/    /' "$t/stack" >&2 2>/dev/null || true
	done
}

# mnt_finish: unmounts every mount made here (each process must then exit by itself within
# 15 s), stops every daemon (TERM: it must exit within 15 s), and checks for sanitizer reports.
mnt_finish() {
	local mp pid how c dp rc live
	while read -r mp pid how; do
		[ -n "$mp" ] || continue
		live=
		mounted "$mp" && alive "$pid" && live=1
		if mounted "$mp"; then
			with_timeout 15 fusermount3 -u "$mp" || fail "fusermount3 -u $mp failed"
		fi
		if alive "$pid"; then
			wait_gone "$pid" 15 || {
				_stuck_report "$pid"
				fail "hoardfs $pid did not exit after its unmount"
			}
		fi
		if [ -n "$live" ] && [ "$how" = fg ]; then
			# our child: its exit status after a clean unmount must be 0
			rc=0
			wait "$pid" 2>/dev/null || rc=$?
			if [ "$rc" != 0 ]; then
				san_check
				fail "hoardfs $pid ($mp) exited $rc after fusermount3 -u"
			fi
		fi
		not_stale "$mp"
	done <"$_MNT_LIST"
	while read -r c; do
		dp=$(daemon_pid "$c")
		[ -n "$dp" ] || continue
		kill -TERM "$dp"
		wait_gone "$dp" 15 || fail "hoardfs-cached $dp did not exit on SIGTERM"
		# the daemon recounts its cached bytes at a clean exit and logs any mismatch
		if grep -qE 'accounting (error|check)' "$c/cached.log" 2>/dev/null; then
			grep -E 'accounting (error|check)' "$c/cached.log" | head -n 5 >&2
			fail "accounting error in $c/cached.log (above)"
		fi
	done <"$_MNT_CACHES"
	san_check
}
