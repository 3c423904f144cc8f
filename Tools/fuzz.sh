#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads bytes from strangers (libFuzzer + AddressSanitizer, Swift's
# -sanitize=fuzzer,address). Targets live in Tools/Fuzz/FuzzTargets.swift, seed corpora in Tools/Fuzz/Corpus/TARGET.
#
#   Tools/fuzz.sh list                 the targets
#   Tools/fuzz.sh TARGET SECONDS       fuzz one target for SECONDS (its growing corpus is kept in .build-fuzz/corpus)
#   Tools/fuzz.sh TARGET runs=N        fuzz one target for N executions
#   Tools/fuzz.sh all SECONDS          every target in turn (what CI runs, briefly)
#
# A crash, leak or timeout stops the run with libFuzzer's report and the input that caused it (crash-*, leak-*,
# timeout-* in .build-fuzz/artifacts); exit status non-zero. Each run ends with a line
#   fuzz TARGET: N executions, cov C, ft F, corpus K, E exec/s: no crash
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(arch jpeg npy pickle png pth safetensors)
if [ "${1:-}" = "list" ] || [ $# -eq 0 ]; then
    printf '%s\n' "${targets[@]}"
    [ $# -eq 0 ] && echo "usage: Tools/fuzz.sh TARGET|all SECONDS|runs=N" >&2
    exit 0
fi
target=$1
budget=${2:-60}

# The build: release with libFuzzer and ASan, the project's C decoders instrumented too (-Xcc; the system's libpng and
# libjpeg-turbo are not: OSS-Fuzz fuzzes those). lld, because gold fails on the sanitizer runtime; leak detection off while
# building, since the build's own tools (the shader embedder) run instrumented too.
ASAN_OPTIONS=detect_leaks=0 swift build -c release --product bossnet-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -E "error|warning: .*Tools/Fuzz|Compiling|Build" >&2 || true
binary=.build-fuzz/release/bossnet-fuzz
[ -x "$binary" ] || { echo "fuzz: the fuzzing build failed" >&2; exit 1; }

run_one() {
    local name=$1
    local work=.build-fuzz/corpus/$name artifacts=.build-fuzz/artifacts/$name
    mkdir -p "$work" "$artifacts"
    local limit
    if [[ $budget == runs=* ]]; then limit="-runs=${budget#runs=}"; else limit="-max_total_time=$budget"; fi
    local log=.build-fuzz/$name.log
    # New inputs go to the work corpus; the committed seeds are read only.
    # SWIFT_BACKTRACE off: a Swift trap is then libFuzzer's "deadly signal", reported with its input.
    # Leaks outside the project are suppressed by name (Tools/Fuzz/lsan.supp, explained in RELIABILITY.md).
    if ! LSAN_OPTIONS=suppressions=Tools/Fuzz/lsan.supp SWIFT_BACKTRACE=enable=no BOSSNET_FUZZ_TARGET=$name "$binary" "$limit" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$work" "Tools/Fuzz/Corpus/$name" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz $name: FAILED (log: $log, inputs: $artifacts)" >&2
        return 1
    fi
    local runs cov ft corpus speed
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    speed=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    read -r cov ft corpus < <(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 |
        sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/')
    echo "fuzz $name: $runs executions, cov $cov, ft $ft, corpus $corpus, $speed exec/s: no crash"
}

if [ "$target" = "all" ]; then
    for name in "${targets[@]}"; do run_one "$name"; done
else
    [[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz: no target '$target' (Tools/fuzz.sh list)" >&2; exit 2; }
    run_one "$target"
fi
