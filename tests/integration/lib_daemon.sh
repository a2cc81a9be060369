# shellcheck shell=bash
# lib_daemon.sh: helpers for tests of hoardfs-cached, sourced after lib.sh.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"
#
# A test starts private daemons (its own cache dir and socket under $TEST_TMP, --foreground, in the
# background of the test's shell), talks to them with tool_client (a mount without FUSE), and
# reads their counters. Every daemon started here is killed by pid when the test ends; call
# daemon_stop to end one cleanly and check that it exited 0 without a sanitizer report.
#
# After daemon_start these describe the daemon started last:
#   DAEMON_PID  its pid            DAEMON_SOCK  its socket
#   DAEMON_DIR  its cache dir      DAEMON_LOG   its stderr (appended to across restarts)

CACHED="$HOARDFS_BUILD/cached/hoardfs-cached"
[ -x "$CACHED" ] || fail "hoardfs-cached is not built ($CACHED)"
TOOL_CLIENT=$(tool client)
DAEMON_START_TIMEOUT=${DAEMON_START_TIMEOUT:-20} # seconds until the socket must answer

# _daemon_kill PID: SIGKILL now (cleanup: a test that got here failed or forgot daemon_stop).
_daemon_kill() {
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# _daemon_keep_log LOG: at exit, copies a daemon's log to $HOARDFS_BUILD/test-logs/ (TEST_TMP is
# removed), and when the test failed prints its last lines. (Cleanups run inside lib.sh's exit
# handler, where $rc is the test's status.)
_daemon_keep_log() {
	local keep
	keep="$HOARDFS_BUILD/test-logs/$TEST_NAME-$(basename "$1")"
	mkdir -p "$HOARDFS_BUILD/test-logs"
	cp "$1" "$keep" 2>/dev/null || return 0
	if [ "${rc:-0}" != 0 ]; then
		echo "--- last lines of $keep:" >&2
		tail -n 40 "$keep" >&2
	fi
}

# daemon_ping SOCK: succeeds when a daemon answers a control request on SOCK.
daemon_ping() {
	timeout -k 1 5 "$TOOL_CLIENT" --socket "$1" --timeout-ms 3000 s3://ping ctl \
		'{"cmd":"status"}' >/dev/null 2>&1
}

# _daemon_answers PID SOCK: the ping, but fails the test at once if PID died meanwhile.
_daemon_answers() {
	if ! kill -0 "$1" 2>/dev/null; then
		return 2
	fi
	daemon_ping "$2"
}

# daemon_start DIR [ARGS...]: starts hoardfs-cached on cache dir DIR (created 0700 if missing)
# in the foreground in the background, with its socket at $TEST_TMP/daemon-NAME.sock and its
# stderr appended to $TEST_TMP/daemon-NAME.log (NAME = DIR's last component: keep it unique per
# test), and waits (bounded) until the socket answers. Extra ARGS go to the daemon. Sets DAEMON_*;
# registers a kill -9 by pid for the end of the test.
daemon_start() {
	local dir=$1 start now
	shift
	[ -d "$dir" ] || { mkdir -p "$dir" && chmod 0700 "$dir"; }
	DAEMON_DIR=$dir
	DAEMON_SOCK="$TEST_TMP/daemon-$(basename "$dir").sock"
	DAEMON_LOG="$TEST_TMP/daemon-$(basename "$dir").log"
	echo "=== daemon_start $* ($(date +%T.%N))" >>"$DAEMON_LOG"
	"$CACHED" --foreground --cache-dir "$dir" --socket "$DAEMON_SOCK" "$@" </dev/null \
		>>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	on_exit _daemon_kill "$DAEMON_PID"
	on_exit _daemon_keep_log "$DAEMON_LOG"
	start=$SECONDS
	while :; do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			tail -n 20 "$DAEMON_LOG" >&2
			fail "hoardfs-cached on $dir exited during start-up"
		fi
		daemon_ping "$DAEMON_SOCK" && break
		now=$SECONDS
		if [ $((now - start)) -ge "$DAEMON_START_TIMEOUT" ]; then
			tail -n 20 "$DAEMON_LOG" >&2
			fail "hoardfs-cached on $dir did not answer within ${DAEMON_START_TIMEOUT}s"
		fi
		sleep 0.1
	done
}

# daemon_check_log [LOG]: fails the test if the daemon's log holds a sanitizer report or an
# accounting error (a wrapped count of cached bytes, or a recount that disagreed with it, at any
# time or at a clean exit).
daemon_check_log() {
	local log=${1:-$DAEMON_LOG}
	if grep -Eq 'Sanitizer|runtime error:' "$log"; then
		grep -E -A30 'Sanitizer|runtime error:' "$log" | head -n 60 >&2
		fail "sanitizer report in $log"
	fi
	if grep -Eq 'accounting (error|check)' "$log"; then
		grep -E 'accounting (error|check)' "$log" | head -n 10 >&2
		fail "accounting error in $log"
	fi
}

# daemon_stop [PID [LOG]]: SIGTERM, then waits up to 30 s; fails unless it exited 0 and its log
# has no sanitizer report. Defaults to the daemon started last.
daemon_stop() {
	local pid=${1:-$DAEMON_PID} log=${2:-$DAEMON_LOG} i rc=0
	kill -TERM "$pid" 2>/dev/null || fail "daemon $pid is not running"
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		fail "daemon $pid did not exit within 30 s of SIGTERM"
	fi
	wait "$pid" || rc=$?
	daemon_check_log "$log"
	[ "$rc" = 0 ] || {
		tail -n 20 "$log" >&2
		fail "daemon $pid exited with status $rc after SIGTERM"
	}
}

# daemon_kill9 [PID]: kill -9 and reap.
daemon_kill9() {
	local pid=${1:-$DAEMON_PID}
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# daemon_alive [PID]: succeeds while the daemon process exists.
daemon_alive() {
	kill -0 "${1:-$DAEMON_PID}" 2>/dev/null
}

# client [--socket S] ARGS...: runs tool_client against the daemon (DAEMON_SOCK unless --socket
# comes first), bounded by CLIENT_TIMEOUT seconds [120].
client() {
	local sock=$DAEMON_SOCK
	if [ "${1:-}" = --socket ]; then
		sock=$2
		shift 2
	fi
	timeout -k 5 "${CLIENT_TIMEOUT:-120}" "$TOOL_CLIENT" --socket "$sock" "$@"
}

# daemon_stats [SOCK]: prints the daemon's stats JSON (tool_client ctl '{"cmd":"stats"}').
daemon_stats() {
	timeout -k 1 10 "$TOOL_CLIENT" --socket "${1:-$DAEMON_SOCK}" --timeout-ms 5000 s3://stats \
		ctl '{"cmd":"stats"}' || fail "stats request to ${1:-$DAEMON_SOCK} failed"
}

# daemon_stat KEY [SOCK]: prints one counter of the stats JSON.
daemon_stat() {
	daemon_stats "${2:-}" | json_get "j[\"$1\"]"
}

# daemon_status [SOCK]: prints the daemon's status JSON.
daemon_status() {
	timeout -k 1 10 "$TOOL_CLIENT" --socket "${1:-$DAEMON_SOCK}" --timeout-ms 5000 s3://status \
		ctl '{"cmd":"status"}' || fail "status request to ${1:-$DAEMON_SOCK} failed"
}

# vm_hwm [PID]: the process's peak resident set size in KiB (VmHWM).
vm_hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/${1:-$DAEMON_PID}/status"
}

# proxy_path_bytes PROXY PATH: body bytes the proxy sent for requests of PATH (no query).
proxy_path_bytes() {
	proxy_stats "$1" | json_get "(j.paths[\"$2\"] || {bytes_out: 0}).bytes_out"
}

# proxy_path_gets PROXY PATH: requests the proxy saw for PATH.
proxy_path_gets() {
	proxy_stats "$1" | json_get "(j.paths[\"$2\"] || {requests: 0}).requests"
}

# objects_disk_bytes DIR: bytes allocated on disk by the files in cache dir DIR's objects/.
objects_disk_bytes() {
	find "$1/objects" -type f -printf '%b\n' 2>/dev/null | awk '{ s += $1 * 512 } END { print s + 0 }'
}

# metadump DIR: what LMDB marks present in cache dir DIR (tool_metadump; no daemon may run on
# DIR): "object ID SIZE PRESENT NBLOCKS NAME" per object, then "block ID B CRC32C" per block.
metadump() {
	timeout -k 5 60 "$(tool metadump)" "$1/meta" || fail "tool_metadump $1/meta failed"
}

# check_cache DIR KEY SRC [KEY SRC...]: every block that LMDB marks present for the objects named
# KEY in cache dir DIR must equal the same block of file SRC and have the recorded crc32c
# (tool_metadump --check; no daemon may run on DIR). Prints a summary per object.
check_cache() {
	local dir=$1
	shift
	timeout -k 5 300 "$(tool metadump)" --check "$dir/meta" "$dir/objects" "$@" ||
		fail "a block marked present in $dir is wrong, or the check failed (see above)"
}

# s3_put_large B KEY FILE: s3_put for files of any size (streams the upload with -T; s3_put's
# --data-binary holds the whole file in memory). The object is deleted at exit.
s3_put_large() {
	local url
	url="$HOARDFS_S3_ENDPOINT/$1/$(urlencode "$2" keep)"
	_s3_curl --max-time 300 -T "$3" -o /dev/null -H "Content-Type: application/octet-stream" \
		"$url" || fail "s3_put_large $1 $2"
	on_exit s3_rm "$1" "$2"
}

# sha256 [FILE]: the SHA-256 of FILE or stdin, with OpenSSL (uses the CPU's SHA extensions:
# about 4x faster than coreutils' sha256sum here, which matters for GiBs of test reads).
sha256() {
	openssl dgst -sha256 -r "$@" | cut -d' ' -f1
}

# mkdata_fast FILE SIZE: SIZE (as head -c takes it) pseudo-random bytes, different on every call:
# AES-CTR over zeros, several times faster than /dev/urandom for the GiBs these tests use.
mkdata_fast() {
	openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$$.$RANDOM.$RANDOM.$SECONDS" \
		-in /dev/zero 2>/dev/null | head -c "$2" >"$1" || true
	[ "$(stat -c %s "$1")" = "$(numfmt --from=iec "$2")" ] || fail "mkdata_fast $1 $2"
}

# daemon_check_accounting [SOCK]: asks the daemon to check its count of cached bytes against the
# sum over every object's present blocks (after the pending commits); fails the test unless they
# agree. Prints the answer.
daemon_check_accounting() {
	local out
	out=$(timeout -k 1 30 "$TOOL_CLIENT" --socket "${1:-$DAEMON_SOCK}" --timeout-ms 25000 \
		s3://check ctl '{"cmd":"check"}') || fail "check request to ${1:-$DAEMON_SOCK} failed"
	echo "check: $out"
	[ "$(json_get j.ok <<<"$out")" = true ] || fail "the daemon's accounting is inconsistent: $out"
}
