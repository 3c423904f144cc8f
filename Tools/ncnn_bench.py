#!/usr/bin/env python3
"""Measures ncnn's Vulkan backend on the authors' BossNet, to set `bossnet bench` beside it in one run.

    python3 Tools/ncnn_bench.py --bossnas PATH                                   # ncnn alone, batch 1 and 8
    python3 Tools/ncnn_bench.py --bossnas PATH --bossnet .build/release/bossnet --json bench.json
                                  # also `bossnet bench` on the same model, batches and iterations: ours/ncnn
    python3 Tools/ncnn_bench.py --bossnas PATH --attention sdpa matmul --batch 1 --iterations 3 --rounds 1 --work DIR

PATH is a checkout of the authors' repository, changlin31/BossNAS (see Tools/make_fixtures.py): the network is their
own model code under the calibrated synthetic weights of make_fixtures.py (calibrated on its calibration image at the
input size, so activations stay in range; its inputs are the calibration image and rolled copies of it, smooth like
`bossnet bench`'s: on lavapipe random noise runs slower, through subnormal products). Needs torch 2.x, timm 0.9.x,
numpy, pillow and the ncnn and pnnx wheels:

    pip install torch "timm==0.9.16" numpy pillow ncnn pnnx

Conversion: the model (float32, eval) is traced with torch.jit.trace at [1, 3, S, S] and converted by the pnnx binary
that the pnnx wheel ships (fp16=0, so the weights stay float32) into DIR/MODEL_S_ATTENTION.ncnn.param and .bin (DIR is
--work, reused on the next run unless --reconvert; else a temporary folder). ncnn has no batch dimension: pnnx drops
it (at [8, 3, S, S] it writes byte-identical files), so batch B is B extractions of one image each, one after
another, and B images' time is the figure for the batch.

--attention picks how the attention is traced, both computing the same function:
    sdpa    (default) each Attention's softmax(qᵀk·scale) product with v written as
            F.scaled_dot_product_attention on the transposed q, k, v; pnnx turns it into ncnn's SDPA layer, which
            has a Vulkan kernel, so the whole network runs on the Vulkan device
    matmul  the authors' forward as it is: pnnx emits MatMul layers, which ncnn runs on its CPU path (it has no
            Vulkan MatMul), the rest on the device
The run lists any layers that ncnn keeps off the device.

Timing: ncnn runs with use_vulkan_compute on its default Vulkan device (it fails if ncnn sees none); float32 storage
and arithmetic unless --fp16 (ncnn's own default where the device supports fp16). One steptime is the wall time of a
batch: each image's input handed in (uploaded), the network run, the logits read back into NumPy, as `bossnet bench`
times it. The first run checks ncnn's logits against the authors' model in float64 on the same images (relative L2);
over --tolerance (1e-3, or 2e-2 with --fp16) the script stops with exit status 1 before timing anything. Then --warmup
runs less that first one (at least none). Then --rounds rounds (3): in each, --iterations timed runs of every batch on
ncnn, then (with --bossnet) `BOSSNET bench --model MODEL --input-size S --batch B... --iterations N --warmup W --json`.
The engines take turns so that both are timed in the same minutes: this machine's speed drifts by a quarter over a few
minutes (lavapipe shares the CPU with everything else), which timing one engine after the other puts into the ratio.
ncnn's figures are the median, min and max per batch and per image over all rounds' runs, and the effective
GFLOP/s = 2 · MAdds · batch / seconds, MAdds counted on the model (its convolutions, its classifier and each
attention's two products: 3,442,978,304 for BossNet-T0 at 224, as `bossnet bench` counts them). bossnet's are the
median of its rounds' medians. ours/ncnn, per batch and attention variant, is the median of the rounds' ratios (each
round's medians divided; under 1: ours is faster), printed with every round's.

Prints a table on stdout (progress on stderr); --json FILE writes every figure: versions, the device, each ncnn
row (ms per batch and per image, GFLOP/s, error against torch, CPU-side layers, each round's median), bossnet's rows
and the ratios with each round's.
"""
import argparse
import collections
import contextlib
import copy
import importlib.metadata
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no Tools/__pycache__ from the import below
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_fixtures  # noqa: E402  (Tools/ is not a package)

ATTENTIONS = ["sdpa", "matmul"]
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
INPUT, OUTPUT = "in0", "out0"  # the blob names pnnx gives a one-input, one-output model


# ------------------------------------------------------------------------------------------------------------ model
def attention_modules(model):
    return [m for m in model.modules() if type(m).__name__ == "Attention"]


def count_madds(model, size):
    """Multiply-adds of one image: convolutions, linear layers, and each attention's qᵀk and v·attnᵀ products."""
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, torch.nn.Linear):
            total[0] += output.numel() * module.in_features
        elif type(module).__name__ == "Attention":
            b, _, h, w = inputs[0].shape
            total[0] += 2 * b * module.heads * (h * w) ** 2 * module.dim_head

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size, dtype=next(model.parameters()).dtype))
    for h in hooks:
        h.remove()
    return total[0]


def sdpa_forward(self, x):
    """The authors' Attention.forward as one scaled dot-product attention over positions.

    Theirs: q, k, v are [b, heads, dim_head, n]; out = v · softmax(qᵀk · scale)ᵀ. Transposed to [b, heads, n, dim_head]
    that is softmax(q kᵀ · scale) · v, the standard form, transposed back.
    """
    b, _, h, w = x.shape
    qkv = self.to_qkv(x).view(b, 3 * self.heads, self.dim_head, h * w).transpose(-2, -1)
    q, k, v = qkv.chunk(3, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
    return out.transpose(-2, -1).reshape(b, -1, h, w)


@contextlib.contextmanager
def attention_as(model, kind):
    """Within the block, every Attention of `model` runs as `kind` ("matmul": the authors' own forward)."""
    patched = attention_modules(model) if kind == "sdpa" else []
    for module in patched:
        module.forward = types.MethodType(sdpa_forward, module)
    try:
        yield model
    finally:
        for module in patched:
            del module.forward


def test_images(count, size):
    """`count` distinct images: the calibration image, then copies of it rolled along its flat index."""
    base = make_fixtures.calibration_image(size).reshape(-1)
    return np.stack([np.roll(base, 7919 * i).reshape(3, size, size) for i in range(count)]).astype(np.float32)


# ------------------------------------------------------------------------------------------------------- conversion
def convert(model32, name, size, attention, folder, reconvert):
    """Traces `model32` at [1, 3, size, size] and runs pnnx on it: the .ncnn.param and .ncnn.bin paths, seconds."""
    import pnnx

    stem = f"{name}_{size}_{attention}"
    param, weights = folder / f"{stem}.ncnn.param", folder / f"{stem}.ncnn.bin"
    if param.exists() and weights.exists() and not reconvert:
        log(f"reusing {param} and {weights.name}")
        return param, weights, 0.0
    start = time.perf_counter()
    traced_path = folder / f"{stem}.pt"
    example = torch.from_numpy(test_images(1, size))
    with attention_as(model32, attention), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the shapes are fixed on purpose
        traced = torch.jit.trace(model32, example, check_trace=False)
    traced.save(str(traced_path))
    side = {"pnnxparam": folder / f"{stem}.pnnx.param", "pnnxbin": folder / f"{stem}.pnnx.bin",
            "pnnxpy": folder / f"{stem}_pnnx.py", "pnnxonnx": folder / f"{stem}.pnnx.onnx",
            "ncnnpy": folder / f"{stem}_ncnn.py"}
    command = [pnnx.EXEC_PATH, str(traced_path), f"inputshape=[1,3,{size},{size}]f32", "fp16=0", "device=cpu",
               f"ncnnparam={param}", f"ncnnbin={weights}"] + [f"{k}={v}" for k, v in side.items()]
    log(f"pnnx: {attention} attention at [1,3,{size},{size}] ...")
    run = subprocess.run(command, capture_output=True, text=True)
    for path in [traced_path, *side.values()]:  # only the ncnn pair is needed; the rest is ~450 MB
        path.unlink(missing_ok=True)
    if run.returncode != 0 or not param.exists() or not weights.exists():
        sys.exit(f"pnnx failed (status {run.returncode}): {' '.join(command)}\n{run.stdout[-4000:]}{run.stderr[-4000:]}")
    return param, weights, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------- running
def log(message):
    print(message, file=sys.stderr, flush=True)


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def load_net(ncnn, param, weights, fp16):
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    net.opt.use_fp16_packed = fp16
    net.opt.use_fp16_storage = fp16
    net.opt.use_fp16_arithmetic = fp16
    start = time.perf_counter()
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        sys.exit(f"ncnn could not load {param} / {weights}")
    return net, (time.perf_counter() - start) * 1e3


def run_batch(ncnn, net, mats):
    """One steptime: every image through its own extractor, logits back as NumPy. Returns (seconds, [B, classes])."""
    outputs = []
    start = time.perf_counter()
    for mat in mats:
        with net.create_extractor() as ex:
            ex.input(INPUT, mat)
            status, out = ex.extract(OUTPUT)
            if status != 0:
                sys.exit(f"ncnn extract({OUTPUT!r}) failed with status {status}")
            outputs.append(np.array(out, dtype=np.float32).reshape(-1))
    return time.perf_counter() - start, np.stack(outputs)


def relative_l2(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_ncnn(ncnn, net, images, reference, batch, args, tolerance):
    """The first run, checked against torch, then the warm-up runs: the batch's row, whether it passed, its inputs."""
    mats = [ncnn.Mat(np.ascontiguousarray(image)).clone() for image in images[:batch]]
    first, logits = run_batch(ncnn, net, mats)
    error = relative_l2(logits, reference[:batch]) if np.all(np.isfinite(logits)) else float("inf")
    row = {"batch": batch, "rel_error": error, "tolerance": tolerance, "first_run_ms": first * 1e3, "rounds": []}
    log(f"    relative L2 error against torch (float64): {error:.3e}")
    if not error <= tolerance:
        return row, False, mats
    for _ in range(max(args.warmup - 1, 0)):
        run_batch(ncnn, net, mats)
    return row, True, mats


def time_ncnn(ncnn, net, mats, batch, args, label):
    """--iterations timed runs of one batch: their seconds."""
    times = []
    for i in range(args.iterations):
        seconds, _ = run_batch(ncnn, net, mats)
        times.append(seconds)
        log(f"    {label} batch {batch} run {i + 1}/{args.iterations}: {seconds * 1e3:.1f} ms")
    return times


def finish_ncnn_row(row, madds):
    """Medians, minima and maxima over every round's timed runs, and each round's median."""
    times = [t for round_times in row["rounds"] for t in round_times]
    batch = row["batch"]
    row["ms_per_batch"] = summary([t * 1e3 for t in times])
    row["ms_per_image"] = summary([t * 1e3 / batch for t in times])
    gflops = [2 * madds * batch / t / 1e9 for t in times]
    row["gflops"] = {"median": statistics.median(gflops), "max": max(gflops), "min": min(gflops)}
    row["round_medians_ms"] = [statistics.median(r) * 1e3 for r in row.pop("rounds")]


# ---------------------------------------------------------------------------------------------------------- bossnet
def find_ms_per_batch(row):
    """A median ms per batch from one row of `bossnet bench --json`, whatever nesting it uses."""
    for key in ("ms_per_batch", "steptime_ms", "ms"):
        value = row.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dict):
            for inner in ("median", "p50", "value"):
                if isinstance(value.get(inner), (int, float)):
                    return float(value[inner])
    return None


def bench_bossnet(args):
    command = [args.bossnet, "bench", "--model", args.model, "--input-size", str(args.input_size), "--batch",
               *map(str, args.batch), "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--json"]
    log("running " + " ".join(command))
    run = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # its progress goes to our stderr
    try:
        report = json.loads(run.stdout) if run.returncode == 0 else None
    except json.JSONDecodeError:
        report = None
    if report is None:
        log(f"FAIL: bossnet bench exited with status {run.returncode}{'' if run.returncode else ', not JSON'}")
        return {"command": command, "error": f"status {run.returncode}", "rows": []}
    rows = report.get("rows", report if isinstance(report, list) else [])
    found = {}
    for row in rows:
        if not isinstance(row, dict) or row.get("model", args.model) != args.model:
            continue
        if row.get("input_size", args.input_size) != args.input_size:
            continue
        ms = find_ms_per_batch(row)
        if "batch" in row and ms is not None:
            found[int(row["batch"])] = {"batch": int(row["batch"]), "ms_per_batch_median": ms,
                                        "row": {k: v for k, v in row.items() if k != "published"}}
    device = report.get("device", {}) if isinstance(report, dict) else {}
    return {"command": command, "device": device.get("name") if isinstance(device, dict) else None,
            "rows": [found[b] for b in sorted(found)]}


def combine_bossnet_rounds(rounds):
    """One row per batch over the rounds: the median of the rounds' medians, the least minimum, each round's median."""
    first = rounds[0]
    if "error" in rounds[-1]:
        return rounds[-1]
    rows = []
    for row in first["rows"]:
        batch = row["batch"]
        medians = [r["ms_per_batch_median"] for rnd in rounds for r in rnd["rows"] if r["batch"] == batch]
        minima = [r["row"].get("ms_per_batch", {}).get("min") for rnd in rounds for r in rnd["rows"]
                  if r["batch"] == batch and isinstance(r["row"].get("ms_per_batch"), dict)]
        combined = dict(row["row"])
        combined["ms_per_batch"] = {"median": statistics.median(medians),
                                    "min": min((m for m in minima if m is not None), default=None)}
        rows.append({"batch": batch, "ms_per_batch_median": statistics.median(medians), "round_medians_ms": medians,
                     "row": combined})
    return {"command": first["command"], "device": first["device"], "rows": rows}


def ratios(ncnn_rows, bossnet_rounds):
    """ours/ncnn per attention and batch: each round's medians divided, and the median of those ratios."""
    result = []
    for row in ncnn_rows:
        if "round_medians_ms" not in row:
            continue
        ours = [next((r["ms_per_batch_median"] for r in rnd["rows"] if r["batch"] == row["batch"]), None)
                for rnd in bossnet_rounds]
        per_round = [o / n for o, n in zip(ours, row["round_medians_ms"]) if o is not None]
        if not per_round:
            continue
        result.append({"attention": row["attention"], "batch": row["batch"],
                       "ours_ms": statistics.median(o for o in ours if o is not None),
                       "ncnn_ms": row["ms_per_batch"]["median"], "per_round": per_round,
                       "ours_over_ncnn": statistics.median(per_round)})
    return result


# ------------------------------------------------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bossnas", type=pathlib.Path, required=True, help="checkout of changlin31/BossNAS")
    parser.add_argument("--model", default="bossnet_T0", choices=make_fixtures.MODELS)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    parser.add_argument("--iterations", type=int, default=5, help="timed runs per batch (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first, the checked one included")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of --iterations runs, the engines taking turns (default: 3)")
    parser.add_argument("--attention", nargs="+", default=["sdpa"], choices=ATTENTIONS,
                        help="how the attention is traced for pnnx (default: sdpa)")
    parser.add_argument("--fp16", action="store_true", help="let ncnn store and compute in fp16")
    parser.add_argument("--tolerance", type=float, help="largest relative L2 error against torch (1e-3; fp16 2e-2)")
    parser.add_argument("--work", type=pathlib.Path, help="keep the converted model here and reuse it")
    parser.add_argument("--reconvert", action="store_true", help="convert again even if --work has the files")
    parser.add_argument("--bossnet", help="our bossnet binary: also run its bench and print ours/ncnn")
    parser.add_argument("--json", type=pathlib.Path, help="write every figure here")
    args = parser.parse_args()
    if min(args.batch) < 1 or args.iterations < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("batches, --iterations and --rounds must be positive, --warmup not negative")
    precision = "fp16" if args.fp16 else "fp32"
    tolerance = args.tolerance if args.tolerance is not None else TOLERANCE[precision]

    import ncnn
    if ncnn.get_gpu_count() < 1:
        sys.exit("ncnn sees no Vulkan device (get_gpu_count() == 0)")
    gpu = ncnn.get_gpu_info(ncnn.get_default_gpu_index())
    device = {"name": gpu.device_name(), "api_version": gpu.api_version(), "driver_version": gpu.driver_version(),
              "vendor_id": gpu.vendor_id(), "device_id": gpu.device_id(), "type": gpu.type()}

    log(f"building the authors' {args.model} with calibrated synthetic weights at {args.input_size} ...")
    size = args.input_size
    model = make_fixtures.calibrated(make_fixtures.authors_model(args.bossnas, args.model),
                                     make_fixtures.calibration_image(size))  # float64
    madds = count_madds(model, size)
    images = test_images(max(args.batch), size)
    with torch.no_grad():
        reference = model(torch.from_numpy(images.astype(np.float64))).numpy()
    model32 = copy.deepcopy(model).float().eval()

    versions = {"ncnn": ncnn.__version__, "pnnx": importlib.metadata.version("pnnx"), "torch": torch.__version__,
                "timm": importlib.metadata.version("timm"), "numpy": np.__version__,
                "python": platform.python_version()}
    results = {"model": args.model, "input_size": size, "madds": madds, "precision": precision,
               "iterations": args.iterations, "rounds": args.rounds, "warmup": args.warmup, "versions": versions,
               "device": device,
               "ncnn": []}
    failed = False
    with contextlib.ExitStack() as stack:
        folder = args.work or pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        checked = []  # (attention, net, row, mats) of every batch that passed its check
        for attention in args.attention:
            param, weights, convert_s = convert(model32, args.model, size, attention, folder,
                                               args.reconvert)
            net, load_ms = load_net(ncnn, param, weights, args.fp16)
            stack.callback(net.clear)
            layers = net.layers()
            off_device = collections.Counter(layer.type for layer in layers if not layer.support_vulkan)
            log(f"ncnn {attention}: {len(layers)} layers, off the Vulkan device: {dict(off_device) or 'none'}")
            for batch in args.batch:
                log(f"  ncnn {attention} batch {batch}: first run, checked ...")
                row, ok, mats = check_ncnn(ncnn, net, images, reference, batch, args, tolerance)
                row.update({"attention": attention, "layers": len(layers), "cpu_layers": dict(off_device),
                            "convert_s": convert_s, "load_ms": load_ms, "num_threads": net.opt.num_threads})
                results["ncnn"].append(row)
                if not ok:
                    log(f"FAIL: ncnn's {attention} network is off by {row['rel_error']:.3e} > {tolerance:g}; "
                        "not timed")
                    failed = True
                    break
                checked.append((attention, net, row, mats))
            if failed:
                break

        # Rounds: each engine in turn, so that both see the machine as it is in those minutes.
        bossnet_rounds = []
        for round_index in range(args.rounds if not failed else 0):
            label = f"round {round_index + 1}/{args.rounds}"
            for attention, net, row, mats in checked:
                log(f"  {label}: ncnn {attention} batch {row['batch']} ...")
                row["rounds"].append(time_ncnn(ncnn, net, mats, row["batch"], args, label))
            if args.bossnet:
                log(f"  {label}: bossnet ...")
                bossnet_rounds.append(bench_bossnet(args))
                if "error" in bossnet_rounds[-1]:
                    failed = True
                    break
        for row in results["ncnn"]:
            if row.get("rounds"):
                finish_ncnn_row(row, madds)

    if args.bossnet and bossnet_rounds:
        results["bossnet"] = combine_bossnet_rounds(bossnet_rounds)
        failed = failed or "error" in results["bossnet"]
        results["ratios"] = ratios(results["ncnn"], bossnet_rounds)

    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


def print_table(results):
    print(f"{results['model']} at {results['input_size']}, ncnn {results['versions']['ncnn']} (pnnx "
          f"{results['versions']['pnnx']}, torch {results['versions']['torch']}) on {results['device']['name']}, "
          f"{results['precision']}, {results['madds'] / 1e9:.3f} GMAdds per image")
    print(f"{'engine':16} {'batch':>5} {'ms/batch med':>13} {'min':>9} {'ms/image med':>13} {'min':>9} "
          f"{'GFLOP/s':>8} {'rel err':>9}  off-device layers")
    for row in results["ncnn"]:
        name = f"ncnn {row['attention']}"
        if "ms_per_batch" not in row:
            print(f"{name:16} {row['batch']:5} {'not timed':>13} {'':>9} {'':>13} {'':>9} {'':>8} "
                  f"{row['rel_error']:9.2e}  FAIL (tolerance {row['tolerance']:g})")
            continue
        b, i = row["ms_per_batch"], row["ms_per_image"]
        off = ", ".join(f"{n} {t}" for t, n in row["cpu_layers"].items()) or "none"
        print(f"{name:16} {row['batch']:5} {b['median']:13.1f} {b['min']:9.1f} {i['median']:13.1f} {i['min']:9.1f} "
              f"{row['gflops']['median']:8.2f} {row['rel_error']:9.2e}  {off}")
    for row in results.get("bossnet", {}).get("rows", []):
        ms = row["ms_per_batch_median"]
        best = row["row"].get("ms_per_batch", {})
        best = best.get("min") if isinstance(best, dict) else None
        gflops = 2 * results["madds"] * row["batch"] / (ms / 1e3) / 1e9
        error = row["row"].get("check_rel_error")
        print(f"{'bossnet':16} {row['batch']:5} {ms:13.1f} {best if best is not None else float('nan'):9.1f} "
              f"{ms / row['batch']:13.1f} {(best or float('nan')) / row['batch']:9.1f} {gflops:8.2f} "
              f"{error if error is not None else float('nan'):9.2e}  (its own check)")
    for ratio in results.get("ratios", []):
        r = ratio["ours_over_ncnn"]
        verdict = f"ours {1 / r:.2f}x faster" if r < 1 else f"ncnn {r:.2f}x faster"
        rounds = ", ".join(f"{x:.3f}" for x in ratio["per_round"])
        print(f"ours/ncnn {ratio['attention']:6} batch {ratio['batch']}: {r:.3f}, the median of the rounds' ratios "
              f"({rounds}); medians {ratio['ours_ms']:.1f} / {ratio['ncnn_ms']:.1f} ms ({verdict})")


if __name__ == "__main__":
    sys.exit(main())
