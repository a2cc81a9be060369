#!/usr/bin/env bash
# daemon_cli.sh: hoardfs-cached's command line and life cycle. Bad input gives one clear line on
# stderr (two for getopt's own complaints: its message and "Try --help") and a non-zero status,
# never a hang (every run is bounded):
#   a cache dir owned by another user, one writable by others (777, and group-writable 775), a
#   file instead of a directory, a second daemon on the same cache dir (the lock: the message
#   names the running daemon's pid, which keeps serving), bad --cache-size/--chunk-size/
#   --fetch-threads/--log-level values, unknown options and arguments, config files with a bad
#   line, a bad value, an unknown key, or that do not exist.
# And the good paths: --help/--version, a config file's settings (the command line wins),
# SIGTERM and SIGINT end it with status 0 and remove its socket, --idle-exit waits while a
# mount is registered and exits (status 0, socket removed) once none is, and without
# --foreground the starting process returns once the daemon answers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
ERR="$TEST_TMP/err"
OK_DIR=$(mktemp -d "$TEST_TMP/okdir.XXXXXX") # 0700, ours

# refused LINES PATTERN ARGS...: hoardfs-cached ARGS must fail within 10 s with exactly LINES
# lines on stderr, the first matching the extended regex PATTERN.
refused() {
	local lines=$1 pat=$2 rc=0
	shift 2
	timeout -k 2 10 "$CACHED" "$@" >"$TEST_TMP/out" 2>"$ERR" || rc=$?
	case $rc in
	0) fail "'$*' was accepted" ;;
	124 | 137) fail "'$*' hung (no answer within 10 s)" ;;
	esac
	daemon_check_log "$ERR"
	[ "$(wc -l <"$ERR")" = "$lines" ] || {
		cat "$ERR" >&2
		fail "'$*': $(wc -l <"$ERR") lines on stderr, want $lines"
	}
	head -n 1 "$ERR" | grep -Eq -- "$pat" || {
		cat "$ERR" >&2
		fail "'$*': stderr does not say /$pat/"
	}
	echo "refused (exit $rc): $* -> $(head -n 1 "$ERR")"
}

# run_fg DIR ARGS: hoardfs-cached in the foreground on DIR with a private socket (refusal tests).
run_fg() {
	local dir=$1
	shift
	refused "$@" --foreground --cache-dir "$dir" --socket "$TEST_TMP/refused.sock"
}

step "--help and --version"
timeout 10 "$CACHED" --help >"$TEST_TMP/out" || fail "--help failed"
grep -q -- '--cache-size' "$TEST_TMP/out" || fail "--help does not list --cache-size"
timeout 10 "$CACHED" --version >"$TEST_TMP/out" || fail "--version failed"
grep -Eq '^hoardfs-cached [0-9]' "$TEST_TMP/out" || fail "--version: $(cat "$TEST_TMP/out")"

step "cache dirs that must be refused"
d=$(mktemp -d "$TEST_TMP/other.XXXXXX")
chown nobody "$d"
refused 1 "belongs to uid $(id -u nobody)" --foreground --cache-dir "$d" --socket "$TEST_TMP/r.sock"
d=$(mktemp -d "$TEST_TMP/open.XXXXXX")
chmod 777 "$d"
refused 1 'writable by other users.*777' --foreground --cache-dir "$d" --socket "$TEST_TMP/r.sock"
chmod 775 "$d"
refused 1 'writable by other users.*775' --foreground --cache-dir "$d" --socket "$TEST_TMP/r.sock"
: >"$TEST_TMP/afile"
refused 1 'not a directory' --foreground --cache-dir "$TEST_TMP/afile" --socket "$TEST_TMP/r.sock"
[ ! -e "$TEST_TMP/r.sock" ] || fail "a refused daemon left a socket"

step "bad option values, unknown options"
for a in "--cache-size abc" "--cache-size 0" "--cache-size -5" "--cache-size 12Q"; do
	# shellcheck disable=SC2086
	refused 1 "cache-size.*not a size" --foreground --cache-dir "$OK_DIR" $a
done
refused 1 'chunk-size must be a multiple of 1M' --foreground --cache-dir "$OK_DIR" --chunk-size 3500K
refused 1 'chunk-size must be a multiple of 1M, at most 256M' --foreground --cache-dir "$OK_DIR" \
	--chunk-size 1G
refused 1 'chunk-size.*not a size' --foreground --cache-dir "$OK_DIR" --chunk-size xyz
refused 1 'fetch-threads.*not a number' --foreground --cache-dir "$OK_DIR" --fetch-threads 0
refused 1 'max-inflight.*not a number' --foreground --cache-dir "$OK_DIR" --max-inflight many
refused 1 'log-level' --foreground --cache-dir "$OK_DIR" --log-level loud
refused 2 "unrecognized option '--bogus'" --foreground --cache-dir "$OK_DIR" --bogus
refused 2 "unexpected argument 'extra'" --foreground --cache-dir "$OK_DIR" extra
refused 2 "requires an argument" --foreground --cache-dir "$OK_DIR" --cache-size

step "config files"
printf 'cache-size = 1G\nnonsense line\n' >"$TEST_TMP/bad1.conf"
refused 1 'bad1.conf:2: expected "key = value"' --foreground --cache-dir "$OK_DIR" \
	--config "$TEST_TMP/bad1.conf"
printf '# comment\ncache-size = lots\n' >"$TEST_TMP/bad2.conf"
refused 1 "cache-size.*'lots' is not a size" --foreground --cache-dir "$OK_DIR" \
	--config "$TEST_TMP/bad2.conf"
printf 'colour = blue\n' >"$TEST_TMP/bad3.conf"
refused 1 "unknown setting 'colour'" --foreground --cache-dir "$OK_DIR" --config "$TEST_TMP/bad3.conf"
printf ' = 5\n' >"$TEST_TMP/bad4.conf"
refused 1 'bad4.conf:1: missing key' --foreground --cache-dir "$OK_DIR" --config "$TEST_TMP/bad4.conf"
refused 1 'config file .*/nonexistent.conf: No such file' --foreground --cache-dir "$OK_DIR" \
	--config "$TEST_TMP/nonexistent.conf"
[ -z "$(find "$OK_DIR" -mindepth 1)" ] || fail "a refused daemon wrote into the cache dir: $(ls "$OK_DIR")"

step "a good config file; the command line wins"
printf '# hoardfs-cached\ncache-size = 48M\nidle-exit = "0"\nmax-inflight = 4\n' >"$TEST_TMP/good.conf"
daemon_start "$TEST_TMP/conf1" --config "$TEST_TMP/good.conf"
[ "$(daemon_status | json_get j.bytes_limit)" = $((48 * MiB)) ] ||
	fail "the config's cache-size was not applied"
daemon_stop
daemon_start "$TEST_TMP/conf2" --config "$TEST_TMP/good.conf" --cache-size 64M
[ "$(daemon_status | json_get j.bytes_limit)" = $((64 * MiB)) ] ||
	fail "--cache-size on the command line did not win over the config file"

step "a second daemon on the same cache dir"
FIRST=$DAEMON_PID
refused 1 "another hoardfs-cached \\(pid $FIRST\\) is already running" --foreground \
	--cache-dir "$TEST_TMP/conf2" --socket "$TEST_TMP/second.sock"
refused 1 "another hoardfs-cached \\(pid $FIRST\\)" --cache-dir "$TEST_TMP/conf2" \
	--socket "$TEST_TMP/second.sock"
daemon_ping "$DAEMON_SOCK" || fail "the first daemon stopped answering"
[ ! -e "$TEST_TMP/second.sock" ] || fail "the refused second daemon created its socket"

step "SIGTERM and SIGINT: exit 0, socket removed"
daemon_stop
[ ! -e "$DAEMON_SOCK" ] || fail "the socket is still there after SIGTERM"
daemon_start "$TEST_TMP/sigint"
kill -INT "$DAEMON_PID"
rc=0
with_timeout 30 tail --pid="$DAEMON_PID" -f /dev/null || fail "no exit within 30 s of SIGINT"
wait "$DAEMON_PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGINT"
[ ! -e "$DAEMON_SOCK" ] || fail "the socket is still there after SIGINT"
daemon_check_log

step "--idle-exit: waits while a mount is registered, exits once none is"
b=$(uniq_bucket cli)
s3_mkbucket "$b"
mkdata "$TEST_TMP/small" 100K
s3_put "$b" small "$TEST_TMP/small"
daemon_start "$TEST_TMP/idle" --idle-exit 2
t0=$SECONDS
client --endpoint "$HOARDFS_S3_ENDPOINT" "s3://$b" hold small 4000 >"$TEST_TMP/hold.out" ||
	fail "the hold client failed"
grep -qx closed "$TEST_TMP/hold.out" || fail "the hold client did not close"
daemon_alive || fail "--idle-exit 2 ended the daemon while a mount was registered"
rc=0
with_timeout 10 tail --pid="$DAEMON_PID" -f /dev/null ||
	fail "--idle-exit 2: still running 10 s after the last mount left"
wait "$DAEMON_PID" || rc=$?
echo "idle exit $((SECONDS - t0)) s after the start (the mount stayed 4 s)"
[ "$rc" = 0 ] || fail "exit status $rc after --idle-exit"
[ ! -e "$DAEMON_SOCK" ] || fail "the socket is still there after --idle-exit"
daemon_check_log
grep -q 'exiting (--idle-exit)' "$DAEMON_LOG" || fail "the daemon did not say why it exited"

step "without --foreground: returns once the daemon answers"
dir="$TEST_TMP/bg"
mkdir -m 0700 "$dir"
with_timeout 30 "$CACHED" --cache-dir "$dir" --socket "$TEST_TMP/bg.sock" --idle-exit 60 \
	>"$TEST_TMP/bg.out" 2>&1 || fail "the detaching start failed: $(cat "$TEST_TMP/bg.out")"
pid=$(head -n 1 "$dir/cached.lock")
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
	fail "no daemon running after the detaching start"
fi
on_exit _hoardfs_kill "$pid"
daemon_ping "$TEST_TMP/bg.sock" || fail "the detached daemon did not answer right after the start"
# Until it is ready the daemon logs to the caller's stderr: only its "ready" line may be there.
if grep -v 'info: hoardfs-cached .* ready on' "$TEST_TMP/bg.out" | grep -q .; then
	fail "the detaching start printed: $(cat "$TEST_TMP/bg.out")"
fi
kill -TERM "$pid"
with_timeout 30 tail --pid="$pid" -f /dev/null || fail "the detached daemon ignored SIGTERM"
[ ! -e "$TEST_TMP/bg.sock" ] || fail "the detached daemon left its socket"
grep -q 'stopped' "$dir/cached.log" || fail "the detached daemon's log ($dir/cached.log) lacks its end"
daemon_check_log "$dir/cached.log"
