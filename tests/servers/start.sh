#!/usr/bin/env bash
# start.sh DIR: starts the integration tests' object-store servers on 127.0.0.1 and leaves them
# running in the background (ctest's "servers" fixture; stop.sh DIR stops them).
#
# Installs the npm packages in tests/servers/package.json into tests/servers/node_modules when
# they are missing (install.sh), then starts on free ports: s3rver (data under DIR/s3), the GCS
# JSON API emulator (gcs_emulator.js, blobs under DIR/gcs-tmp) and, when fake_gcp_auth.js exists,
# the fake Google token/metadata server. Waits (bounded) until each answers HTTP, then writes
#   DIR/env   a sourceable file: HOARDFS_S3_ENDPOINT HOARDFS_S3_PORT HOARDFS_GCS_ENDPOINT
#             HOARDFS_GCS_PORT [HOARDFS_GCP_AUTH_ENDPOINT HOARDFS_GCP_AUTH_PORT] HOARDFS_SERVERS_DIR
#   DIR/pids  the servers' pids, one per line
# and logs to DIR/*.log. Exits 0 only when every server is up; otherwise stops what it started.
# Servers from an earlier start.sh with the same DIR are stopped first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)

START_TIMEOUT=${HOARDFS_SERVER_START_TIMEOUT:-60} # seconds for one server to answer

die() {
	echo "start.sh: $*" >&2
	exit 1
}

command -v node >/dev/null || die "node is not installed (run scripts/setup.sh)"
command -v curl >/dev/null || die "curl is not installed (run scripts/setup.sh)"

# Servers left over from an earlier run with this DIR.
if [ -s "$dir/pids" ]; then
	bash "$here/stop.sh" "$dir" || true
fi
rm -f "$dir/env" "$dir/pids"

# --- npm packages -------------------------------------------------------------------------------
bash "$here/install.sh" "$dir/npm.log"

# --- launching ----------------------------------------------------------------------------------
started_ok=0
cleanup_on_failure() {
	if [ "$started_ok" != 1 ] && [ -s "$dir/pids" ]; then
		bash "$here/stop.sh" "$dir" || true
	fi
}
trap cleanup_on_failure EXIT

free_port() {
	node -e 'const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# launch NAME CMD...: starts CMD in its own session, detached from our stdio, and sets LAUNCHED_PID.
# The process writes its own pid before exec'ing, so the pid is right even if setsid forks.
launch() {
	local name=$1 pidfile="$dir/$1.pid"
	shift
	rm -f "$pidfile"
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >"$dir/$name.log" 2>&1 &
	local i
	for i in $(seq 1 50); do
		[ -s "$pidfile" ] && break
		sleep 0.1
	done
	[ -s "$pidfile" ] || die "$name did not start"
	LAUNCHED_PID=$(cat "$pidfile")
	rm -f "$pidfile"
	echo "$LAUNCHED_PID" >>"$dir/pids"
}

# wait_up NAME PID URL: waits until URL answers any HTTP status. Returns 1 if PID died or the wait
# timed out.
wait_up() {
	local name=$1 pid=$2 url=$3 deadline code
	deadline=$((SECONDS + START_TIMEOUT))
	while [ $SECONDS -lt $deadline ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "start.sh: $name exited early; last lines of $dir/$name.log:" >&2
			tail -n 20 "$dir/$name.log" >&2 || true
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		if [ -n "$code" ] && [ "$code" != 000 ]; then
			return 0
		fi
		sleep 0.2
	done
	echo "start.sh: $name did not answer $url within ${START_TIMEOUT}s" >&2
	return 1
}

# start_server NAME PATH-TO-PROBE CMD-WITH-@PORT@...: picks a port, starts, waits; retries with a
# new port if the server died (another process may have taken the port meanwhile). Sets PORT.
start_server() {
	local name=$1 probe=$2 attempt args a
	shift 2
	for attempt in 1 2 3; do
		PORT=$(free_port)
		args=()
		for a in "$@"; do
			args+=("${a//@PORT@/$PORT}")
		done
		launch "$name" "${args[@]}"
		if wait_up "$name" "$LAUNCHED_PID" "http://127.0.0.1:$PORT$probe"; then
			return 0
		fi
		kill -KILL "$LAUNCHED_PID" 2>/dev/null || true
		if [ $attempt -lt 3 ]; then
			echo "start.sh: retrying $name on another port" >&2
		fi
	done
	die "could not start $name"
}

rm -rf "$dir/s3" "$dir/gcs-tmp"
mkdir -p "$dir/s3" "$dir/gcs-tmp"
modules="$here/node_modules"

start_server s3rver / env NODE_OPTIONS=--openssl-legacy-provider \
	node "$modules/s3rver/bin/s3rver.js" -d "$dir/s3" -a 127.0.0.1 -p @PORT@ -s
s3_port=$PORT

start_server gcs / env TMPDIR="$dir/gcs-tmp" NODE_PATH="$modules" \
	node "$here/gcs_emulator.js" --port @PORT@
gcs_port=$PORT

auth_port=
if [ -f "$here/fake_gcp_auth.js" ]; then
	# --upstream: its GCS pass-through (for checking bearer tokens) forwards to the emulator.
	start_server gcp_auth / env NODE_PATH="$modules" node "$here/fake_gcp_auth.js" --port @PORT@ \
		--upstream "http://127.0.0.1:$gcs_port"
	auth_port=$PORT
fi

{
	echo "# written by tests/servers/start.sh; source it"
	echo "export HOARDFS_S3_ENDPOINT=http://127.0.0.1:$s3_port"
	echo "export HOARDFS_S3_PORT=$s3_port"
	echo "export HOARDFS_GCS_ENDPOINT=http://127.0.0.1:$gcs_port"
	echo "export HOARDFS_GCS_PORT=$gcs_port"
	if [ -n "$auth_port" ]; then
		echo "export HOARDFS_GCP_AUTH_ENDPOINT=http://127.0.0.1:$auth_port"
		echo "export HOARDFS_GCP_AUTH_PORT=$auth_port"
	fi
	printf 'export HOARDFS_SERVERS_DIR=%q\n' "$dir"
} >"$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"
started_ok=1
msg="s3rver on $s3_port, GCS emulator on $gcs_port"
echo "start.sh: $msg${auth_port:+, fake GCP auth on $auth_port}"
