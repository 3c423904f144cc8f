#!/usr/bin/env bash
# The test suite under a sanitizer, in a build folder of its own:
#
#   Tools/sanitize.sh address     AddressSanitizer: out-of-bounds, use-after-free, double free and the rest.
#                                 Leak checking (LSan) is off here: at exit it reports the Vulkan driver's and
#                                 layers' allocations from already unloaded modules, XCTest's and Foundation's, and
#                                 Swift values whose pointers hide in enum spare bits (see RELIABILITY.md); the fuzz
#                                 targets run with it on (Tools/fuzz.sh).
#   Tools/sanitize.sh thread      ThreadSanitizer, in release (with -enable-testing): in debug the CPU references run
#                                 so slowly under TSan that the suite takes hours on 2 cores
#
# Extra arguments go to `swift test` (for example --filter ModelsTests). Exit status: the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: Tools/sanitize.sh address|thread [swift test arguments]}
shift
configuration=(-c debug)
case "$kind" in
    address) build_env="ASAN_OPTIONS=detect_leaks=0"
             run_env=(ASAN_OPTIONS=detect_leaks=0:halt_on_error=1) ;;
    thread) build_env="TSAN_OPTIONS=report_bugs=0"
            run_env=("TSAN_OPTIONS=halt_on_error=1")
            configuration=(-c release -Xswiftc -enable-testing) ;;
    *) echo "sanitize: address or thread, not '$kind'" >&2; exit 2 ;;
esac
# The build's own tools (the shader embedder) run instrumented too: nothing is reported while building.
env "$build_env" swift build "${configuration[@]}" --build-tests --sanitize="$kind" --scratch-path ".build-$kind" \
    -Xswiftc -use-ld=lld 2>&1 | grep -E "error|Build" || true
env "${run_env[@]}" SWIFT_BACKTRACE=enable=no swift test "${configuration[@]}" --skip-build --sanitize="$kind" \
    --scratch-path ".build-$kind" -Xswiftc -use-ld=lld "$@"
