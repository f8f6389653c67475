#!/usr/bin/env python3
"""liblflex against the PyTorch reference, in one run, on the same machine.

    /usr/bin/python3 bench/compare.py [--build BUILD_DIR] [--steps N] [--only small|medium|generate]
                                      [--scaling] [--openblas-core NAME]

For each configuration it runs the library's train step (bench/bench_lflex.c,
on all cores) and the PyTorch reference's (bench/bench_torch.py, with 1 and
with 2 threads), each in its own process, and prints each side's median step
time and the ratio PyTorch (best thread count) / liblflex: above 1 means the
library is faster. Peak resident memory of each process is printed too,
and for the train step the FLOPs of its matrix products and attention per
second, against what cblas_sgemm reaches on 1024 x 1024 x 1024 on all cores
in the same run, and against what the library's own products reach there
(bench_products.c). Where the library runs its products on its AVX-512
kernels (CPUs with AVX-512), each library measurement is repeated with the
products on cblas (LFLEX_GEMM=blas; rows "lflex-blas"). --scaling times the
library's step for batches of 8 to 64 and lengths of 32 to 256.
--openblas-core sets OPENBLAS_CORETYPE for every process (library and PyTorch alike): OpenBLAS releases older than the CPU
fall back to older kernels (Debian 12's 0.3.21 runs AMD Zen 5 with its
Haswell kernels); SkylakeX selects the AVX-512 ones.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"  # the interpreter with Debian's python3-torch

# The benchmark configurations of the issues: vocabulary of 64 ids (60 user
# tokens), default schedule (learned order: auxiliary network + two states).
CONFIGS = {
    "small": ({"model": {"d_model": 128, "n_layers": 4, "n_heads": 4, "max_len": 64},
               "vocab": {"size": 60}, "train": {"warmup": 10}}, 32, 64),
    "medium": ({"model": {"d_model": 256, "n_layers": 6, "n_heads": 8, "max_len": 128},
                "vocab": {"size": 60}, "train": {"warmup": 10}}, 32, 128),
}


def to_yaml(d):
    lines = []
    for section, values in d.items():
        lines.append(f"{section}:")
        for k, v in values.items():
            lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


def run(cmd, blas_products=False):
    """Run one benchmark process; return the JSON line it prints (each
    process reports its own peak resident memory from getrusage).
    blas_products: the library's products on cblas (LFLEX_GEMM=blas)."""
    env = dict(os.environ, LFLEX_GEMM="blas") if blas_products else None
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_lib(cmd, args):
    """The library's measurement, and where its products are its own
    AVX-512 ones (args.both) the same again with them on cblas."""
    libs = [run(cmd)]
    if args.both:
        libs.append(run(cmd, True))
        libs[-1]["impl"] = "lflex-blas"
    return libs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement (after 2 warm-up steps)")
    ap.add_argument("--only", choices=sorted(CONFIGS) + ["generate"], help="one measurement")
    ap.add_argument("--reps", type=int, default=5, help="timed generation runs (after one warm-up)")
    ap.add_argument("--scaling", action="store_true", help="time per step against batch size and length")
    ap.add_argument("--openblas-core", help="OPENBLAS_CORETYPE for every process (e.g. SkylakeX)")
    args = ap.parse_args()
    if args.openblas_core:
        os.environ["OPENBLAS_CORETYPE"] = args.openblas_core
    exe = os.path.join(args.build, "bench", "lflex-bench")
    if not os.path.exists(exe):
        sys.exit(f"compare.py: {exe} not found: build first (ninja -C {args.build})")
    gemm = run([exe, "gemm", "1024"])
    print(f"cblas_sgemm 1024^3 on {gemm['threads']} threads: {gemm['gflops']:.1f} GFLOP/s "
          f"(OpenBLAS core: {gemm['core']})")
    if gemm["core"] in ("Haswell", "Zen") and "avx512f" in open("/proc/cpuinfo").read() \
            and not args.openblas_core:
        print("note: this CPU has AVX-512 but OpenBLAS runs its AVX2 kernels; "
              "try --openblas-core SkylakeX")
    own = run([exe + "-products", "1024"])
    print(f"liblflex products 1024^3 on {own['threads']} threads: {own['gflops']:.1f} GFLOP/s "
          f"(kernels: {own['kernels']})")
    # where the library runs its own AVX-512 products, also time it with
    # them on cblas (rows "lflex-blas"): what the same code gets from BLAS
    args.both = own["kernels"] != "cblas"
    if args.scaling:
        scaling(exe, args)
        return 0
    print(f"{'config':8} {'impl':14} {'median s':>9} {'min s':>8} {'max s':>8} {'peak MiB':>9}")
    for name, (cfg, n_seq, seq_len) in CONFIGS.items():
        if args.only and name != args.only:
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(to_yaml(cfg))
            cfg_path = f.name
        try:
            libs = run_lib([exe, "train", cfg_path, str(n_seq), str(seq_len), str(args.steps)], args)
            peers = [run([PYTHON, os.path.join(HERE, "bench_torch.py"), "train", json.dumps(cfg),
                          str(n_seq), str(seq_len), str(args.steps), str(t)]) for t in (1, 2)]
        finally:
            os.unlink(cfg_path)
        for r in libs + peers:
            label = f"{r['impl']} x{r['threads']}"
            rss = f"{r['peak_rss_kib'] / 1024:9.0f}"
            print(f"{name:8} {label:14} {r['median_s']:9.4f} {r['min_s']:8.4f} {r['max_s']:8.4f} {rss}")
        best = min(peers, key=lambda r: r["median_s"])
        for r in libs:
            print(f"{name:8} train step: PyTorch (best, {best['threads']} threads) / {r['impl']} = "
                  f"{best['median_s'] / r['median_s']:.2f}x")
        for r in libs:
            gflops = r["flops_per_step"] / r["median_s"] / 1e9
            print(f"{name:8} {r['impl']}: {r['flops_per_step'] / 1e9:.1f} GFLOP per step, {gflops:.1f} GFLOP/s = "
                  f"{100 * gflops / gemm['gflops']:.0f}% of cblas_sgemm 1024^3, "
                  f"{100 * gflops / own['gflops']:.0f}% of the library's products 1024^3")
    if not args.only or args.only == "generate":
        generation(exe, args)
    return 0


def scaling(exe, args):
    """Time per train step of the small model against batch size (length 64)
    and sequence length (batch 32)."""
    cfg = json.loads(json.dumps(CONFIGS["small"][0]))
    cfg["model"]["max_len"] = 256
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(to_yaml(cfg))
        cfg_path = f.name
    try:
        print("batch  length  median s  s per 1k tokens")
        rows = [(b, 64) for b in (8, 16, 32, 64)] + [(32, n) for n in (32, 128, 256)]
        for b, n in rows:
            r = run([exe, "train", cfg_path, str(b), str(n), str(args.steps)])
            print(f"{b:5d}  {n:6d}  {r['median_s']:8.4f}  {1000 * r['median_s'] / (b * n):8.4f}")
    finally:
        os.unlink(cfg_path)


def generation(exe, args):
    """Generation on the small configuration: 32 sequences from [EOS], 64
    steps, at most 64 tokens (freshly initialised models: both sides insert
    at the same initial rates, so the sequences grow alike)."""
    cfg, n_seq, steps = CONFIGS["small"][0], 32, 64
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(to_yaml(cfg))
        cfg_path = f.name
    try:
        libs = run_lib([exe, "generate", cfg_path, str(n_seq), str(steps), str(args.reps)], args)
        peers = [run([PYTHON, os.path.join(HERE, "bench_torch.py"), "generate", json.dumps(cfg), str(n_seq),
                      str(steps), str(args.reps), str(t)]) for t in (1, 2)]
    finally:
        os.unlink(cfg_path)
    for r in libs + peers:
        label = f"{r['impl']} x{r['threads']}"
        print(f"{'generate':8} {label:14} {r['median_s']:9.4f} {r['min_s']:8.4f} {r['max_s']:8.4f} "
              f"{r['peak_rss_kib'] / 1024:9.0f}   mean length {r['mean_len']:.1f}")
    best = min(peers, key=lambda r: r["median_s"])
    for r in libs:
        print(f"{'generate':8} 32 x 64 steps: PyTorch (best, {best['threads']} threads) / {r['impl']} = "
              f"{best['median_s'] / r['median_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
