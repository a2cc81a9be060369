# lib.sh: sourced by every integration test (tests/integration/<scenario>.sh).
#
# Gives a test: strict mode, the test servers' addresses (from $HOARDFS_TEST_ENV, written by
# tests/servers/start.sh), a cleanup registry run on any exit, bounded waits, a private
# fault-injecting proxy, object upload/delete helpers for s3rver and the GCS emulator, and a
# private temporary directory ($TEST_TMP, under $HOARDFS_BUILD/test-tmp, removed on exit).
#
# Environment (set by ctest; defaults let a test run by hand from the source tree once
# `tests/servers/start.sh build/test-servers` is up):
#   HOARDFS_SRC       source tree              [the tree this file is in]
#   HOARDFS_BUILD     build tree               [$HOARDFS_SRC/build]
#   HOARDFS_TEST_ENV  the servers' env file    [$HOARDFS_BUILD/test-servers/env]
#   HOARDFS_TESTDATA  tests/testdata           [$HOARDFS_SRC/tests/testdata]
# lib.sh owns the EXIT/INT/TERM traps: register cleanups with on_exit instead of `trap`. A signal
# is handled once the foreground program returns (bash's rule), so keep programs bounded.
# The environment is made hermetic: HOME points into $TEST_TMP, cloud credentials and endpoints of
# the user are unset, and AWS_* hold s3rver's credentials (S3RVER/S3RVER, us-east-1).

set -euo pipefail

HOARDFS_SRC=${HOARDFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HOARDFS_BUILD=${HOARDFS_BUILD:-$HOARDFS_SRC/build}
HOARDFS_TEST_ENV=${HOARDFS_TEST_ENV:-$HOARDFS_BUILD/test-servers/env}
HOARDFS_TESTDATA=${HOARDFS_TESTDATA:-$HOARDFS_SRC/tests/testdata}
HOARDFS_TOOLS=${HOARDFS_TOOLS:-$HOARDFS_BUILD/tests} # where tool_*.c programs are built
export HOARDFS_SRC HOARDFS_BUILD HOARDFS_TEST_ENV HOARDFS_TESTDATA HOARDFS_TOOLS
TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

# fail MSG...: prints "FAIL: <test>: MSG" and ends the test with status 1 (cleanups still run).
fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

# step MSG...: prints a progress line.
step() {
	echo "--- $TEST_NAME: $*" >&2
}

# ---- cleanup registry ---------------------------------------------------------------------------
# Commands are kept in a file, so on_exit also works from subshells such as $(start_proxy ...).
# They run in reverse order of registration on EXIT, INT and TERM, even after a failure; a
# failing cleanup is reported but does not stop the others or change the test's status.
_HOARDFS_CLEANUP=$(mktemp "${TMPDIR:-/tmp}/hoardfs-cleanup.XXXXXX")
_HOARDFS_MAINPID=$$

# on_exit CMD...: registers CMD (with its arguments, quoted as given) to run when the test ends.
on_exit() {
	local q
	printf -v q '%q ' "$@"
	echo "$q" >>"$_HOARDFS_CLEANUP"
}

_hoardfs_run_cleanups() {
	local rc=$? cmd
	trap - EXIT INT TERM
	set +e
	HOARDFS_TEST_STATUS=$rc # cleanups may report more when the test failed
	if [ "$BASHPID" = "$_HOARDFS_MAINPID" ] && [ -f "$_HOARDFS_CLEANUP" ]; then
		while IFS= read -r cmd; do
			[ -n "$cmd" ] || continue
			eval "$cmd" || echo "cleanup failed ($?): $cmd" >&2
		done < <(tac "$_HOARDFS_CLEANUP")
		rm -f "$_HOARDFS_CLEANUP"
	fi
	if [ "$rc" -eq 0 ]; then
		echo "PASS: $TEST_NAME" >&2
	else
		echo "test $TEST_NAME ended with status $rc" >&2
	fi
	exit "$rc"
}
trap _hoardfs_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- bounded waits ------------------------------------------------------------------------------

# with_timeout SECS CMD...: runs the program CMD, killing it (and its children) after SECS
# seconds (SIGTERM, then SIGKILL 5 s later). Returns CMD's status, or 124 on timeout. CMD must be a
# program, not a shell function (wrap functions in `bash -c`).
with_timeout() {
	local secs=$1
	shift
	timeout -k 5 "$secs" "$@"
}

# wait_for SECS CMD...: retries CMD (a program or a function) every 0.1 s until it succeeds.
# Returns 0 when it did, 1 (with a message) if SECS passed first. A program is itself bounded by
# the time left; a function must return promptly.
wait_for() {
	local secs=$1 start now left
	shift
	start=${EPOCHREALTIME/./}
	while :; do
		now=${EPOCHREALTIME/./}
		left=$((secs * 1000000 - (now - start)))
		if [ "$left" -le 0 ]; then
			echo "wait_for: '$*' still failing after ${secs}s" >&2
			return 1
		fi
		if [ "$(type -t "$1")" = file ]; then
			if timeout -k 1 "$((left / 1000000 + 1))" "$@" >/dev/null 2>&1; then
				return 0
			fi
		elif "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
}

# ---- temporary files ----------------------------------------------------------------------------
mkdir -p "$HOARDFS_BUILD/test-tmp"
TEST_TMP=$(mktemp -d "$HOARDFS_BUILD/test-tmp/$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_TMP"
export TEST_TMP

# tmpdir NAME: creates and prints a fresh directory inside $TEST_TMP.
tmpdir() {
	mktemp -d "$TEST_TMP/${1:-d}.XXXXXX"
}

# ---- hermetic environment and servers -----------------------------------------------------------
[ -f "$HOARDFS_TEST_ENV" ] ||
	fail "no servers env file $HOARDFS_TEST_ENV (run tests/servers/start.sh first)"
# shellcheck disable=SC1090
source "$HOARDFS_TEST_ENV"
[ -n "${HOARDFS_S3_ENDPOINT:-}" ] && [ -n "${HOARDFS_GCS_ENDPOINT:-}" ] ||
	fail "$HOARDFS_TEST_ENV lacks HOARDFS_S3_ENDPOINT or HOARDFS_GCS_ENDPOINT"

mkdir -p "$TEST_TMP/home"
export HOME="$TEST_TMP/home"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CONFIG_FILE \
	AWS_SHARED_CREDENTIALS_FILE AWS_DEFAULT_REGION GOOGLE_APPLICATION_CREDENTIALS \
	CLOUDSDK_CONFIG STORAGE_EMULATOR_HOST GCE_METADATA_HOST GCE_METADATA_IP HOARDFS_LIST_PAGE_SIZE
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
# Never probe a real cloud metadata server from a test.
export NO_GCE_CHECK=1
# In a sanitizer build a report must never pass for a tool's ordinary "exit 1" error.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"

command -v node >/dev/null || fail "node is not installed"
command -v curl >/dev/null || fail "curl is not installed"

# ---- the fault-injecting proxy (tests/servers/proxy.js) -----------------------------------------

# start_proxy UPSTREAM [CERT KEY]: starts a private proxy in front of UPSTREAM (e.g.
# $HOARDFS_S3_ENDPOINT) on a free port, registers its kill, and prints its URL. Use as
# P=$(start_proxy URL). With CERT and KEY (PEM files) it serves HTTPS: the URL is https://. The
# proxy also exits by itself when the test's shell is gone.
start_proxy() {
	local upstream=$1 d pid tls=() scheme=http
	if [ $# -ge 3 ]; then
		tls=(--tls-cert "$2" --tls-key "$3")
		scheme=https
	fi
	d=$(tmpdir proxy)
	node "$HOARDFS_SRC/tests/servers/proxy.js" --port 0 --port-file "$d/port" "${tls[@]}" \
		--upstream "$upstream" --watch-pid "$_HOARDFS_MAINPID" </dev/null >"$d/log" 2>&1 &
	pid=$!
	on_exit _hoardfs_kill "$pid"
	if ! wait_for 15 test -s "$d/port"; then
		cat "$d/log" >&2
		fail "proxy for $upstream did not start"
	fi
	echo "$scheme://127.0.0.1:$(cat "$d/port")"
}

# _hoardfs_kill PID: SIGTERM, up to 5 s for it to go, then SIGKILL.
_hoardfs_kill() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# proxy_stats URL: prints the proxy's counters as JSON (see proxy.js).
proxy_stats() {
	curl -sS --fail --max-time 10 "$1/__proxy/stats"
}

# proxy_faults URL JSON: replaces the proxy's fault rules (a JSON list; see proxy.js).
proxy_faults() {
	curl -sS --fail-with-body --max-time 10 -X POST -H 'Content-Type: application/json' \
		--data-binary "$2" "$1/__proxy/faults" >/dev/null
}

# proxy_reset URL: clears the proxy's counters, log and fault rules.
proxy_reset() {
	curl -sS --fail --max-time 10 -X POST "$1/__proxy/reset" >/dev/null
}

# proxy_tiling PATH SIZE: reads proxy_stats JSON on stdin and prints "ok" if the GETs of PATH
# (e.g. /bucket/key), sorted by offset, cover [0, SIZE) exactly once (no byte asked twice), else
# where they do not.
proxy_tiling() {
	json_get "(() => {
		const r = j.log.filter(e => e.path === \"$1\" && e.method === 'GET').map(e => {
			const m = /^bytes=(\\d+)-(\\d+)\$/.exec(e.range || '');
			return m ? [Number(m[1]), Number(m[2])] : [-1, -1];
		}).sort((a, b) => a[0] - b[0]);
		let next = 0;
		for (const [a, z] of r) {
			if (a !== next || z < a) return 'gap or overlap at ' + next + ': ' + a + '-' + z;
			next = z + 1;
		}
		return next === $2 ? 'ok' : 'ends at ' + next;
	})()"
}

# json_get EXPR: prints the value of a JavaScript expression over the JSON on stdin, bound to `j`
# (e.g. `proxy_stats $P | json_get j.gets`; objects are printed as JSON).
json_get() {
	node -e '
		let s = "";
		process.stdin.on("data", (c) => (s += c));
		process.stdin.on("end", () => {
			const j = JSON.parse(s);
			const v = eval(process.argv[1]);
			console.log(typeof v === "object" ? JSON.stringify(v) : String(v));
		});' "$1"
}

# ---- data and names -----------------------------------------------------------------------------

# uniq_bucket PREFIX: prints a bucket name no other test run uses (valid for S3 and GCS).
uniq_bucket() {
	local p
	p=$(echo "${1:-t}" | tr 'A-Z_' 'a-z-' | tr -cd 'a-z0-9-')
	while [[ $p == -* ]]; do
		p=${p#-}
	done
	p=${p:0:40}
	printf '%s-%x-%04x%04x\n' "${p:-t}" "$$" "$RANDOM" "$RANDOM"
}

# urlencode STRING [keep_slash]: percent-encodes every byte outside A-Z a-z 0-9 - . _ ~ (and
# '/' too unless a second argument is given).
urlencode() {
	local LC_ALL=C s=$1 keep=${2:-} i c out=
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[a-zA-Z0-9.~_-]) out+=$c ;;
		/) if [ -n "$keep" ]; then out+=/; else out+=%2F; fi ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	echo "$out"
}

# mkdata FILE SIZE: writes SIZE random bytes (SIZE as head -c takes it: 4096, 64K, 3M).
mkdata() {
	head -c "$2" /dev/urandom >"$1"
}

# sha_of FILE: prints FILE's SHA-256.
sha_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# ---- s3rver -------------------------------------------------------------------------------------
_s3_curl() {
	curl -sS --fail-with-body --max-time 120 --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# s3_mkbucket B: creates bucket B on s3rver; it is deleted at exit (after the objects s3_put put).
s3_mkbucket() {
	_s3_curl -X PUT -o /dev/null "$HOARDFS_S3_ENDPOINT/$1" || fail "s3_mkbucket $1"
	on_exit _s3_curl -X DELETE -o /dev/null "$HOARDFS_S3_ENDPOINT/$1"
}

# s3_put B KEY FILE: uploads FILE as object KEY (any bytes; it is percent-encoded here); the object
# is deleted at exit.
s3_put() {
	local url
	url="$HOARDFS_S3_ENDPOINT/$1/$(urlencode "$2" keep)"
	_s3_curl -X PUT -o /dev/null --data-binary "@$3" -H "Content-Type: application/octet-stream" \
		"$url" || fail "s3_put $1 $2"
	on_exit s3_rm "$1" "$2"
}

# s3_rm B KEY: deletes object KEY (s3rver answers 204 for a missing key too).
s3_rm() {
	_s3_curl -X DELETE -o /dev/null "$HOARDFS_S3_ENDPOINT/$1/$(urlencode "$2" keep)"
}

# ---- GCS emulator -------------------------------------------------------------------------------

# gcs_put B KEY FILE [CONTENT-ENCODING]: uploads FILE as object KEY (buckets exist on first use),
# stored as given with the Content-Encoding metadata when one is given (e.g. gzip: FILE must then
# hold gzip data). Prints nothing; the object is deleted at exit.
gcs_put() {
	local b=$1 key=$2 file=$3 enc=${4:-} url body meta
	url="$HOARDFS_GCS_ENDPOINT/upload/storage/v1/b/$b/o"
	if [ -z "$enc" ]; then
		curl -sS --fail-with-body --max-time 120 -o /dev/null -X POST \
			-H "Content-Type: application/octet-stream" --data-binary "@$file" \
			"$url?uploadType=media&name=$(urlencode "$key")" || fail "gcs_put $b $key"
	else
		meta=$(node -e 'console.log(JSON.stringify({name: process.argv[1],
			contentEncoding: process.argv[2], contentType: "application/octet-stream"}))' \
			"$key" "$enc")
		body=$(mktemp "$TEST_TMP/gcs-upload.XXXXXX")
		{
			printf -- '--hoardfs_boundary\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n'
			printf '%s\r\n' "$meta"
			printf -- '--hoardfs_boundary\r\nContent-Type: application/octet-stream\r\n\r\n'
			cat "$file"
			printf -- '\r\n--hoardfs_boundary--\r\n'
		} >"$body"
		curl -sS --fail-with-body --max-time 120 -o /dev/null -X POST \
			-H "Content-Type: multipart/related; boundary=hoardfs_boundary" \
			--data-binary "@$body" "$url?uploadType=multipart" || fail "gcs_put $b $key"
		rm -f "$body"
	fi
	on_exit gcs_rm "$b" "$key"
}

# gcs_rm B KEY: deletes object KEY (an object that is already gone is fine, as with S3).
gcs_rm() {
	local code
	code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -X DELETE \
		"$HOARDFS_GCS_ENDPOINT/storage/v1/b/$1/o/$(urlencode "$2")") || return 1
	case $code in
	2?? | 404) return 0 ;;
	*)
		echo "gcs_rm $1 $2: HTTP $code" >&2
		return 1
		;;
	esac
}

# ---- running tools ------------------------------------------------------------------------------

# tool NAME: prints the path of the helper program tests/integration/tool_NAME.c (built by cmake).
tool() {
	local t="$HOARDFS_TOOLS/tool_$1"
	[ -x "$t" ] || fail "tool_$1 is not built ($t)"
	echo "$t"
}

# expect_error ERRNAME SECS CMD...: runs the program CMD (bounded by SECS) and requires it to fail
# with status 1 and a stderr line "error=ERRNAME". CMD's stderr goes to $TEST_TMP/last.err.
expect_error() {
	local want=$1 secs=$2 rc=0
	shift 2
	timeout -k 5 "$secs" "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err" || rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "'$*' did not finish within ${secs}s (wanted error=$want)"
	fi
	if [ "$rc" != 1 ] || ! grep -qx "error=$want" "$TEST_TMP/last.err"; then
		cat "$TEST_TMP/last.err" >&2
		fail "'$*' exited $rc, wanted status 1 with error=$want"
	fi
	if grep -Eq 'Sanitizer|runtime error:' "$TEST_TMP/last.err"; then
		cat "$TEST_TMP/last.err" >&2
		fail "'$*': sanitizer report"
	fi
}

# ---- FUSE mount helpers -------------------------------------------------------------------------
# (reserved: the lead adds mount/unmount helpers for hoardfs and hoardfs-cached here)
