#!/usr/bin/env bash
# demo.sh: hoardfs end to end with no cloud account. Starts a local S3 server (s3rver) on
# 127.0.0.1, uploads a small sample model (safetensors shards, config, tokenizer), mounts it with
# hoardfs (which starts its own cache daemon), reads it twice (cold, then from the cache), shows
# what the cache holds with hoardfs-inspect, and cleans everything up, also on failure or Ctrl-C.
#
#   scripts/demo.sh [--size-mb N]      (run scripts/setup.sh first; N = size of each shard [64])
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/build
size_mb=64
[ "${1:-}" = --size-mb ] && size_mb=${2:?--size-mb needs a number}
for b in "$bin/mountd/hoardfs" "$bin/cached/hoardfs-cached" "$bin/tools/hoardfs-inspect"; do
	[ -x "$b" ] || { echo "demo.sh: $b is missing: run scripts/setup.sh first" >&2; exit 1; }
done
bash "$root/tests/servers/install.sh" >/dev/null

work=$(mktemp -d /tmp/hoardfs-demo.XXXXXX)
chmod 700 "$work"
mnt=$work/mnt
cache=$work/cache
s3pid=
cleanup() {
	set +e
	if mountpoint -q "$mnt" 2>/dev/null; then
		timeout 10 fusermount3 -u "$mnt" || umount -l "$mnt"
	fi
	if [ -f "$cache/cached.lock" ]; then
		pid=$(head -n1 "$cache/cached.lock")
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	fi
	[ -n "$s3pid" ] && kill "$s3pid" 2>/dev/null
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "starting a local S3 server (s3rver) on 127.0.0.1:$port"
mkdir -p "$work/s3"
NODE_OPTIONS=--openssl-legacy-provider node "$root/tests/servers/node_modules/s3rver/bin/s3rver.js" \
	-d "$work/s3" -a 127.0.0.1 -p "$port" -s >"$work/s3rver.log" 2>&1 &
s3pid=$!
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
s3() { curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
for _ in $(seq 50); do s3 -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
s3 -X PUT "http://127.0.0.1:$port/demo-models" -o /dev/null

say "uploading a sample model: 4 shards of $size_mb MiB, config.json, tokenizer.json"
mkdir -p "$work/src"
python3 - "$work/src" "$size_mb" <<'EOF'
import json, os, struct, sys
out, mb = sys.argv[1], int(sys.argv[2])
for i in range(1, 5):
    n = mb << 20
    body = os.urandom(n - 1024)
    header = {"model.layers.%d.weight" % i: {"dtype": "F16", "shape": [len(body) // 2],
               "data_offsets": [0, len(body)]}}
    h = json.dumps(header).encode()
    h += b" " * (1024 - 8 - len(h))
    with open(os.path.join(out, "model-%05d-of-00004.safetensors" % i), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)
json.dump({"architectures": ["DemoForCausalLM"], "hidden_size": 4096}, open(os.path.join(out, "config.json"), "w"))
json.dump({"version": "1.0", "model": {"type": "BPE"}}, open(os.path.join(out, "tokenizer.json"), "w"))
EOF
for f in "$work/src"/*; do
	s3 -X PUT -T "$f" "http://127.0.0.1:$port/demo-models/llama-demo/$(basename "$f")" -o /dev/null
done

say "mounting s3://demo-models/llama-demo at $mnt (the mount starts hoardfs-cached itself)"
mkdir -p "$mnt"
"$bin/mountd/hoardfs" s3://demo-models/llama-demo "$mnt" --endpoint "http://127.0.0.1:$port" \
	--cache-dir "$cache" --metadata-ttl -1
ls -l "$mnt"

say "cold read (bytes come from the store once, through the daemon)"
start=$(date +%s.%N)
(cd "$mnt" && sha256sum -- *) >"$work/mounted.sha"
echo "read $(du -sb "$work/src" | cut -f1) bytes in $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s"
(cd "$work/src" && sha256sum -- *) | diff - "$work/mounted.sha" && echo "every byte matches the source"

say "what the cache holds"
"$bin/tools/hoardfs-inspect" --cache-dir "$cache" status
"$bin/tools/hoardfs-inspect" --cache-dir "$cache" ls

say "warm read after dropping the page cache (served from the cache directory)"
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(not root: page cache not dropped)"
start=$(date +%s.%N)
(cd "$mnt" && cat -- * >/dev/null)
echo "read again in $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s"
"$bin/tools/hoardfs-inspect" --cache-dir "$cache" stats | head -n 12

say "done: unmounting and cleaning up"
