#!/usr/bin/env bash
# The prepared check for a machine with a real GPU: lists the Vulkan devices, validates every kernel family the
# device can run against the CPU reference, and benchmarks BossNet-T0 and T1 at batch 1, 8 and 64 in each family
# (and the planner's own choice), then once more under the Vulkan spec's minimum limits. Everything lands in one
# JSON file; each step's exit status is recorded beside its output, and a failing step does not stop the others.
#
#   Tools/gpu-check.sh [--quick] [--binary PATH] [--out FILE]
#
#   --binary PATH  the bossnet to run (default: .build/release/bossnet). On a machine without a Swift toolchain, build
#                  here with `swift build -c release --static-swift-stdlib` and copy .build/release/bossnet over; the
#                  machine needs only a Vulkan loader (libvulkan1) and its GPU driver.
#   --out FILE     where the JSON goes (default: gpu-check.json).
#   --quick        batch 1 and 8 only, 3 timed iterations: about a third of the time.
#
# Synthetic weights and smooth synthetic images throughout (as fast as real ones), numerics checked against the CPU.
# Interrupted (Ctrl-C, SIGTERM), it runs no further step and writes what it has (steps not run are null); exit 130.
set -u -o pipefail

binary=.build/release/bossnet
out=gpu-check.json
batches=(1 8 64)
iterations=10
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --quick) batches=(1 8); iterations=3; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ ! -x "$binary" ]; then
    echo "gpu-check: no bossnet at $binary; build it first (swift build -c release --static-swift-stdlib)" >&2
    exit 2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# bossnet exits 130 on Ctrl-C rather than dying of the signal, so the shell would go on to the next step: stop here.
interrupted=0
trap 'interrupted=1' INT TERM
batch_args=()
for b in "${batches[@]}"; do batch_args+=(--batch "$b"); done

# step NAME COMMAND...: runs one step, its JSON to $scratch/NAME.json, its exit status to $scratch/NAME.status.
step() {
    local name="$1"; shift
    [ $interrupted = 0 ] || return 0
    echo "gpu-check: $name: $*" >&2
    local start=$SECONDS
    "$@" >"$scratch/$name.json" 2>"$scratch/$name.log"
    local status=$?
    echo $status >"$scratch/$name.status"
    [ $status != 130 ] || interrupted=1
    echo "gpu-check: $name: exit $status after $((SECONDS - start)) s" >&2
    tail -n 5 "$scratch/$name.log" >&2
}

step devices "$binary" devices --json
step validate "$binary" validate --kernels all --model bossnet_T0 bossnet_T1 --arch hytra:0-1-11101-000100000 \
    --input-size 224 --batch 1 --seed 1 --json
step bench "$binary" bench --model bossnet_T0 --model bossnet_T1 "${batch_args[@]}" --kernels auto all \
    --iterations "$iterations" --warmup 2 --json
step minimum env BOSSNET_LIMITS=minimum "$binary" bench --model bossnet_T0 --model bossnet_T1 --batch 1 --batch 8 \
    --kernels auto tiled --iterations 3 --warmup 1 --check-size 224 --check-batch 8 --json

# One JSON object: {"devices": {...}, "devices_status": 0, ...}; a step that printed nothing valid is null.
{
    echo "{"
    first=1
    for name in devices validate bench minimum; do
        [ $first = 1 ] || echo ","
        first=0
        printf '"%s": ' "$name"
        if [ -s "$scratch/$name.json" ]; then cat "$scratch/$name.json"; else printf 'null'; fi
        printf ',\n"%s_status": %s' "$name" "$(cat "$scratch/$name.status" 2>/dev/null || echo null)"
    done
    echo "}"
} >"$out"
if [ $interrupted = 1 ]; then
    echo "gpu-check: interrupted; wrote the steps it finished to $out" >&2
    exit 130
fi
echo "gpu-check: wrote $out" >&2
failed=0
for name in devices validate bench minimum; do [ "$(cat "$scratch/$name.status")" = 0 ] || failed=1; done
exit $failed
