#!/bin/bash
# Where lavapipe spends its time, instruction by instruction: samples a running `bossnet bench` with perf and
# disassembles the hottest JIT-compiled code with gdb, each instruction with its sample count.
#
#   Tools/lavapipe_hotspots.sh [BOSSNET] [BENCH ARGUMENTS...]
#
# BOSSNET defaults to .build/release/bossnet; the bench arguments to `--model bossnet_T0 --batch 8`. Needs perf and
# gdb (Debian: apt-get install linux-perf gdb) and permission to attach to a process (root, or
# kernel.yama.ptrace_scope=0 and kernel.perf_event_paranoid<=1).
#
# Mesa's release builds have no GALLIVM_DEBUG=asm, and llvmpipe writes no perf map for its JIT code, so perf sees
# only addresses; gdb reads the code at those addresses from the live process. The output names no shader: read the
# instructions (vpgatherdd and per-lane 16-byte loads are fetches, vpermd a subgroupShuffle, vmulps/vaddps with a
# (%rsp) operand and a store after them an accumulator kept in memory, a `ret` a generated texel-fetch function).
set -euo pipefail

bossnet=${1:-.build/release/bossnet}
shift || true
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--model bossnet_T0 --batch 8)
for tool in perf gdb python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 2; }
done
[ -x "$bossnet" ] || { echo "error: no bossnet at $bossnet (swift build -c release first)" >&2; exit 2; }

pid=""
work=$(mktemp -d)
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bossnet" bench "${args[@]}" --iterations 1000 --warmup 1 >/dev/null 2>&1 &
pid=$!
echo "sampling bossnet bench ${args[*]} (pid $pid) after 15 s of warm-up ..." >&2
sleep 15
kill -0 "$pid" 2>/dev/null || { echo "error: the bench ended early (run it alone to see why)" >&2; exit 1; }
# perf's own messages stay visible: a permission error says which sysctl to change.
perf record -F 4000 -p "$pid" -o "$work/perf.data" -- sleep 8 >/dev/null
perf script -i "$work/perf.data" -F ip 2>/dev/null >"$work/ips"
[ -s "$work/ips" ] || { echo "error: perf recorded no samples" >&2; exit 1; }

# The hottest 256-byte windows, then each disassembled with per-instruction counts.
python3 - "$work/ips" >"$work/windows" <<'EOF'
import collections, sys
counts = collections.Counter(int(line, 16) >> 8 for line in open(sys.argv[1]) if line.strip())
total = sum(counts.values())
for window, n in counts.most_common(6):
    print(f"{window << 8:#x} {n} {100 * n / total:.1f}")
EOF
commands=()
while read -r address _ _; do commands+=(-ex "echo ==== $address\n" -ex "x/80i $address"); done <"$work/windows"
gdb --readnever -nx -batch -p "$pid" "${commands[@]}" >"$work/code" 2>/dev/null || true

python3 - "$work/ips" "$work/windows" "$work/code" <<'EOF'
import collections, re, sys
counts = collections.Counter(int(line, 16) for line in open(sys.argv[1]) if line.strip())
total = sum(counts.values())
share = {int(a, 16): (int(n), float(p)) for a, n, p in (line.split() for line in open(sys.argv[2]))}
print(f"{total} samples; the six hottest 256-byte windows of code, each instruction with its samples")
for line in open(sys.argv[3]):
    if line.startswith("==== "):
        address = int(line.split()[1], 16)
        n, p = share.get(address, (0, 0.0))
        print(f"\n== {address:#x}: {n} samples ({p}%)")
        continue
    match = re.match(r"\s*(0x[0-9a-f]+):\s*(.*)", line)
    if match:
        print(f"{counts.get(int(match.group(1), 16), 0):6d}  {match.group(1)}  {match.group(2)[:100]}")
EOF
