#!/usr/bin/env bash
# test.sh: the whole check, as CI runs it (.ci/run) on a fresh clone.
#
#   1. installs what is missing: the Debian packages of scripts/packages.txt (via
#      scripts/setup.sh --deps-only) and the npm test servers (tests/servers/install.sh);
#   2. checks that every tracked .c/.h file is clang-formatted (fails the run if not);
#   3. builds the sanitizer tree build-asan/ (ASan+UBSan, leaks and UB fatal) and the normal tree
#      build/, then runs both trees' tests side by side; ctest starts and stops the test servers
#      itself (the "servers" fixture, one per tree).
#
# The normal tree's log is printed last, so its ctest summary ("100% tests passed, 0 tests failed
# out of N") is the last one printed. Every step runs even after an earlier one failed; the exit status is
# non-zero if any step failed. HOARDFS_CTEST_ARGS adds arguments to both ctest runs (e.g. -R unit);
# HOARDFS_TEST_BUILD and HOARDFS_TEST_ASAN_BUILD move the two trees elsewhere.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
failed=()
JOBS=$(nproc 2>/dev/null || echo 2)

note() {
	echo "=== test.sh: $*"
}

# ---- dependencies -------------------------------------------------------------------------------
if ! bash scripts/setup.sh --deps-only; then
	echo "test.sh: installing dependencies failed" >&2
	exit 1
fi
if ! bash tests/servers/install.sh; then
	echo "test.sh: installing the npm test servers failed" >&2
	exit 1
fi

# ---- formatting ---------------------------------------------------------------------------------
note "clang-format check"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files, plus new ones not yet added (a fresh clone has none of those).
	mapfile -t sources < <(git -C "$root" ls-files --cached --others --exclude-standard \
		-- '*.c' '*.h' | sort -u)
else
	mapfile -t sources < <(find common cached mountd tools tests bench \
		-name node_modules -prune -o \( -name '*.c' -o -name '*.h' \) -print 2>/dev/null)
fi
existing=()
for f in "${sources[@]}"; do
	[ -f "$f" ] && existing+=("$f")
done
if [ ${#existing[@]} -eq 0 ]; then
	echo "test.sh: no C sources found" >&2
	failed+=("clang-format (no sources)")
else
	unformatted=()
	for f in "${existing[@]}"; do
		clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
	done
	if [ ${#unformatted[@]} -gt 0 ]; then
		printf 'not clang-formatted: %s\n' "${unformatted[@]}" >&2
		echo "test.sh: fix with: clang-format -i FILE (see: clang-format --dry-run FILE)" >&2
		failed+=("clang-format")
	else
		echo "${#existing[@]} files clang-formatted"
	fi
fi

# ---- build and test -----------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:print_stacktrace=1:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-print_suppressions=0}

# build_tree NAME DIR CMAKE-ARGS...: configures and builds DIR.
build_tree() {
	local name=$1 dir=$2
	shift 2
	note "$name: configure and build ($dir)"
	# A fresh tree gets the given type, else Release (like scripts/setup.sh's build/); an
	# existing tree keeps its own.
	if [ ! -f "$dir/CMakeCache.txt" ] && [[ " $* " != *" -DCMAKE_BUILD_TYPE="* ]]; then
		set -- "$@" -DCMAKE_BUILD_TYPE=Release
	fi
	if ! cmake -S "$root" -B "$dir" "$@"; then
		failed+=("$name configure")
		return
	fi
	# Keep going past a failed target, and test what did build: one run shows every problem.
	local keep=(-k)
	grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt" 2>/dev/null && keep=(-k 0)
	if ! cmake --build "$dir" -j "$JOBS" -- "${keep[@]}"; then
		failed+=("$name build")
	fi
}

# test_tree NAME DIR [CTEST-ARGS...]: runs ctest in DIR; its status is ctest's.
test_tree() {
	local name=$1 dir=$2
	shift 2
	note "$name: ctest"
	# shellcheck disable=SC2086
	ctest --test-dir "$dir" --output-on-failure --timeout 900 "$@" ${HOARDFS_CTEST_ARGS:-}
}

asan_dir=${HOARDFS_TEST_ASAN_BUILD:-$root/build-asan}
normal_dir=${HOARDFS_TEST_BUILD:-$root/build}
build_tree sanitizer "$asan_dir" -DHOARDFS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
build_tree normal "$normal_dir"

# The two trees' tests run side by side: each alone leaves the cores half idle (many tests wait
# on servers, timeouts and deadlines), and every test has its own buckets, daemons, sockets,
# mounts and server fixture (free ports), so together they take ~10 minutes instead of ~14. Each
# writes a log, printed whole afterwards: the sanitizer tree's first, the normal tree's last (its
# ctest summary is the run's closing line). The benchmark's smoke test checks Python plumbing
# around the same binaries: it runs in the normal tree only (it is the longest test, ~70 s, and
# the daemon paths it drives run under the sanitizers in the other tests).
logs=$(mktemp -d)
test_tree sanitizer "$asan_dir" -E '^integ\.bench_smoke$' >"$logs/sanitizer" 2>&1 &
asan_pid=$!
test_tree normal "$normal_dir" >"$logs/normal" 2>&1 &
normal_pid=$!
wait "$asan_pid" || failed+=("sanitizer tests")
wait "$normal_pid" || failed+=("normal tests")
cat "$logs/sanitizer" "$logs/normal"
rm -rf "$logs"

if [ ${#failed[@]} -gt 0 ]; then
	echo "test.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
exit 0
