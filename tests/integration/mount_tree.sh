#!/usr/bin/env bash
# mount_tree.sh: the tree a mount shows matches the bucket listing, on s3rver and on the GCS
# emulator. `find`, `ls -l` and `stat` through real mounts are compared with what the store's own
# listing says (tool_storecli, not hoardfs's mount path): every object appears once with its size
# and mtime, every implicit directory (a prefix with no object of its own, also several levels
# deep on GCS) appears as a directory, 0-byte files, names with spaces and UTF-8, listings of
# several store pages (HOARDFS_LIST_PAGE_SIZE=3 for the daemon); inode numbers stay stable; a
# missing name is ENOENT; a prefix mount (gs://b/models/x, s3://b/models/x) shows exactly that
# subtree (not models/xy, a sibling with the same leading characters); --uid/--gid/--file-mode/
# --dir-mode set the owner and modes; the default (background) mode mounts too.
#
# s3rver quirk: with a delimiter it reports a common prefix only when an object lies directly
# under it (its walk skips deeper directories), so the S3 tree has an object at every level; the
# GCS tree has prefixes whose objects all lie deeper (implicit-only directories).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

CLI=$(tool storecli)
D=$(tmpdir data)
export HOARDFS_LIST_PAGE_SIZE=3 # the autostarted daemon inherits it: listings take many pages

mkdata "$D/small" 4099
mkdata "$D/mid" $((2 * MiB + 3))
printf 'hello\n' >"$D/hello"
: >"$D/empty"
UTF8=$'dir with space/na\xc3\xafve \xe2\x9c\x93 \xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb.bin'

# keys common to both stores: NAME FILE
COMMON=(
	"top.txt hello"
	"empty.bin empty"
	"models/readme.md hello"
	"models/x/config.json small"
	"models/x/empty empty"
	"models/x/sub/w 1.bin mid"
	"models/x/sub/deep/d.bin hello"
	"models/xy/other.bin small"
	"many/f1 hello" "many/f2 hello" "many/f3 hello" "many/f4 hello" "many/f5 hello"
	"many/f6 hello" "many/f7 hello" "many/f8 hello"
)
# GCS only: directories with no object of their own, several levels deep
GCS_ONLY=(
	"a/b/c/only-deep.bin small"
	"models/x/implicit/one/two.bin hello"
)

# expected_tree LISTING PREFIX: from a tool_storecli listing (obj SIZE VERSION MTIME NAME), the
# lines `find -printf '%y\t%s\t%T@\t%P\n'` must print for a mount of PREFIX (files: f SIZE MTIME
# PATH; implicit directories: d PATH), sorted.
expected_tree() {
	python3 - "$1" "$2" <<'EOF'
import sys
prefix = sys.argv[2]
out = set()
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    kind, size, ver, mtime, name = line.rstrip("\n").split("\t", 4)
    if not name.startswith(prefix):
        continue
    rel = name[len(prefix):]
    out.add(f"f\t{size}\t{mtime}\t{rel}")
    parts = rel.split("/")
    for i in range(1, len(parts)):
        out.add(f"d\t\t\t{'/'.join(parts[:i])}")
for l in sorted(out):
    print(l)
EOF
}

# mounted_tree MP: what the mount shows, in expected_tree's format.
mounted_tree() {
	mt find "$1" -mindepth 1 -printf '%y\t%s\t%T@\t%P\n' >"$D/find.raw" ||
		fail "find $1 failed"
	awk -F'\t' 'BEGIN { OFS = "\t" }
		$1 == "d" { print "d", "", "", $4; next }
		{ split($3, t, "."); print $1, $2, t[1], $4 }' "$D/find.raw" | LC_ALL=C sort
}

# check_tree URL MP LISTING PREFIX: find, ls -l and stat of MP against the listing.
check_tree() {
	local url=$1 mp=$2 listing=$3 prefix=$4 line
	expected_tree "$listing" "$prefix" | LC_ALL=C sort >"$D/want"
	mounted_tree "$mp" >"$D/got"
	diff -u "$D/want" "$D/got" >&2 || fail "$url: find differs from the bucket listing"
	[ -s "$D/want" ] || fail "$url: empty expected tree"

	# ls -l of every directory: modes, sizes, mtimes and names of the direct children
	while IFS= read -r dir; do
		mt ls -lA --time-style=+%s "$mp/$dir" >"$D/ls" || fail "ls -l $mp/$dir"
		awk -v dir="$dir" -F'\t' '
			{ p = $4; if (dir != "") { if (index(p, dir "/") != 1) next; p = substr(p, length(dir) + 2) }
			  if (index(p, "/")) next
			  if ($1 == "d") print "drwxr-xr-x\t" p; else print "-rw-r--r--\t" $2 "\t" $3 "\t" p }' \
			"$D/want" | LC_ALL=C sort >"$D/ls-want"
		# mode links user group size mtime name (the name may hold spaces)
		awk 'NR > 1 {
			name = $0; for (i = 1; i <= 6; i++) sub(/^[^ ]+ +/, "", name)
			if (substr($1, 1, 1) == "d") print $1 "\t" name
			else print $1 "\t" $5 "\t" $6 "\t" name }' "$D/ls" | LC_ALL=C sort >"$D/ls-got"
		diff -u "$D/ls-want" "$D/ls-got" >&2 || fail "$url: ls -l of '$dir' differs"
	done < <(awk -F'\t' '$1 == "d" { print $4 }' "$D/want"; echo "")

	# stat of every file: type, size, mtime; inode numbers stable across two stats
	while IFS=$'\t' read -r kind size mtime path; do
		[ "$kind" = f ] || continue
		line=$(mt stat -c '%F|%s|%Y|%i' "$mp/$path") || fail "stat '$path'"
		IFS='|' read -r ftype fsize fmtime ino <<<"$line"
		case $size in
		0) [ "$ftype" = "regular empty file" ] || fail "$url: '$path' is a '$ftype'" ;;
		*) [ "$ftype" = "regular file" ] || fail "$url: '$path' is a '$ftype'" ;;
		esac
		[ "$fsize" = "$size" ] || fail "$url: stat size of '$path' $fsize, want $size"
		[ "$fmtime" = "$mtime" ] || fail "$url: stat mtime of '$path' $fmtime, want $mtime"
		[ "$(mt stat -c %i "$mp/$path")" = "$ino" ] || fail "$url: inode of '$path' changed"
	done <"$D/want"
	[ "$(mt stat -c %F "$mp")" = directory ] || fail "$url: the root is not a directory"
	local err
	err=$(mt stat "$mp/no such file" 2>&1) && fail "$url: stat of a missing name succeeded"
	grep -q 'No such file or directory' <<<"$err" || fail "$url: missing name: $err"
	err=$(mt stat "$mp/top.txt/x" 2>&1) && fail "$url: a file's child exists"
	grep -q 'Not a directory' <<<"$err" || [ -n "$prefix" ] || fail "$url: file child: $err"
	return 0
}

# ---- S3 -----------------------------------------------------------------------------------------
step "S3: uploading the tree"
B=$(uniq_bucket mtree)
s3_mkbucket "$B"
for kv in "${COMMON[@]}"; do
	k=${kv% *}
	s3_put "$B" "$k" "$D/${kv##* }"
done
s3_put "$B" "$UTF8" "$D/small"
s3_put "$B" "dir with space/second file" "$D/hello"
with_timeout 60 "$CLI" --endpoint "$HOARDFS_S3_ENDPOINT" list "s3://$B/" >"$D/s3.list" ||
	fail "storecli list"
[ "$(grep -c . "$D/s3.list")" = $((${#COMMON[@]} + 2)) ] || fail "the S3 listing is incomplete"

mnt_cache s3
MP=$(mnt_point s3)
step "S3: mount s3://$B (foreground), compare find / ls -l / stat with the listing"
hoardfs_mount "$MP" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$HOARDFS_S3_ENDPOINT" \
	--metadata-ttl 60 "s3://$B" "$MP"
check_tree "s3://$B" "$MP" "$D/s3.list" ""
[ "$(mt cat "$MP/$UTF8" | sha_of /dev/stdin)" = "$(sha_of "$D/small")" ] ||
	fail "content of the UTF-8 name differs"
[ "$(mt cat "$MP/empty.bin" | wc -c)" = 0 ] || fail "the 0-byte file is not empty"

step "S3: prefix mount s3://$B/models/x (options after the arguments, background mode)"
MPX=$(mnt_point s3x)
hoardfs_mount --bg "$MPX" "s3://$B/models/x" "$MPX" --cache-dir "$CACHE" --socket "$SOCK" \
	--endpoint "$HOARDFS_S3_ENDPOINT"
check_tree "s3://$B/models/x" "$MPX" "$D/s3.list" "models/x/"
mt ls "$MPX" | grep -q . || fail "prefix mount is empty"
! mt ls "$MPX" | grep -q other.bin || fail "the prefix mount shows models/xy"
[ "$(daemon_mounts)" = 2 ] || fail "the daemon does not list both mounts"

# ---- GCS ----------------------------------------------------------------------------------------
step "GCS: uploading the tree"
G=$(uniq_bucket mtree-gcs)
for kv in "${COMMON[@]}" "${GCS_ONLY[@]}"; do
	k=${kv% *}
	gcs_put "$G" "$k" "$D/${kv##* }"
done
gcs_put "$G" "$UTF8" "$D/small"
with_timeout 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous list "gs://$G/" \
	>"$D/gcs.list" || fail "storecli list"

mnt_cache gcs
MPG=$(mnt_point gcs)
step "GCS: mount gs://$G (anonymous), compare"
hoardfs_mount "$MPG" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$HOARDFS_GCS_ENDPOINT" \
	--anonymous "gs://$G" "$MPG"
check_tree "gs://$G" "$MPG" "$D/gcs.list" ""
[ "$(mt stat -c %F "$MPG/a/b")" = directory ] || fail "implicit directory a/b"

step "GCS: prefix mount gs://$G/models/x with --uid/--gid/--file-mode/--dir-mode"
MPGX=$(mnt_point gcsx)
hoardfs_mount "$MPGX" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$HOARDFS_GCS_ENDPOINT" \
	--anonymous --uid 1234 --gid 5678 --file-mode 0440 --dir-mode 0550 "gs://$G/models/x" "$MPGX"
expected_tree "$D/gcs.list" "models/x/" | LC_ALL=C sort >"$D/want"
mounted_tree "$MPGX" >"$D/got"
diff -u "$D/want" "$D/got" >&2 || fail "gs://$G/models/x: find differs"
grep -q 'implicit/one/two.bin' "$D/got" || fail "deep implicit path missing under the prefix"
! grep -q other.bin "$D/got" || fail "the prefix mount shows models/xy"
[ "$(mt stat -c '%u %g %a' "$MPGX/config.json")" = "1234 5678 440" ] ||
	fail "file owner/mode: $(mt stat -c '%u %g %a' "$MPGX/config.json")"
[ "$(mt stat -c '%u %g %a' "$MPGX/sub")" = "1234 5678 550" ] ||
	fail "dir owner/mode: $(mt stat -c '%u %g %a' "$MPGX/sub")"
[ "$(mt stat -c '%u %g %a' "$MPGX")" = "1234 5678 550" ] || fail "root owner/mode"
cmp -s <(mt cat "$MPGX/sub/w 1.bin") "$D/mid" || fail "content through the prefix mount"

mnt_finish
