#!/usr/bin/env bash
# stop.sh DIR: stops the servers start.sh DIR started (the pids listed in DIR/pids, and nothing
# else): SIGTERM, a bounded wait, then SIGKILL for any that are still alive. Removes DIR/pids and
# DIR/env. Exits 0 when none of them is left running.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
pidfile="$dir/pids"
TERM_WAIT=${HOARDFS_STOP_TIMEOUT:-10} # seconds to wait after SIGTERM

[ -f "$pidfile" ] || exit 0

# Only pids that still run a node process: a pid that was reused by something else is left alone.
ours() {
	local pid=$1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q node
}

# signal SIG PID: the server's whole process group when it leads one (start.sh runs each in its
# own session), else just the pid.
signal() {
	local sig=$1 pid=$2 pgid
	pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
	if [ "$pgid" = "$pid" ]; then
		kill "-$sig" -- "-$pid" 2>/dev/null || true
	else
		kill "-$sig" "$pid" 2>/dev/null || true
	fi
}

pids=()
while read -r pid; do
	if ours "$pid"; then
		pids+=("$pid")
	fi
done <"$pidfile"

for pid in "${pids[@]}"; do
	signal TERM "$pid"
done

alive() {
	local pid left=()
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			left+=("$pid")
		fi
	done
	pids=("${left[@]}")
	[ ${#pids[@]} -gt 0 ]
}

deadline=$((SECONDS + TERM_WAIT))
while alive && [ $SECONDS -lt $deadline ]; do
	sleep 0.1
done
if alive; then
	echo "stop.sh: SIGKILL to ${pids[*]}" >&2
	for pid in "${pids[@]}"; do
		signal KILL "$pid"
	done
	deadline=$((SECONDS + 5))
	while alive && [ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
fi
rm -f "$pidfile" "$dir/env"
if alive; then
	echo "stop.sh: still running: ${pids[*]}" >&2
	exit 1
fi
exit 0
