#!/usr/bin/env python3
"""liblflex against the PyTorch reference, in one run, on the same machine.

    /usr/bin/python3 bench/compare.py [--build BUILD_DIR] [--steps N] [--only small|medium]

For each configuration it runs the library's train step (bench/bench_lflex.c,
on all cores) and the PyTorch reference's (bench/bench_torch.py, with 1 and
with 2 threads), each in its own process, and prints each side's median step
time and the ratio PyTorch (best thread count) / liblflex: above 1 means the
library is faster. Peak resident memory of each process is printed too.
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


def run(cmd):
    """Run one benchmark process; return the JSON line it prints (each
    process reports its own peak resident memory from getrusage)."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement (after 2 warm-up steps)")
    ap.add_argument("--only", choices=sorted(CONFIGS) + ["generate"], help="one measurement")
    ap.add_argument("--reps", type=int, default=5, help="timed generation runs (after one warm-up)")
    args = ap.parse_args()
    exe = os.path.join(args.build, "bench", "lflex-bench")
    if not os.path.exists(exe):
        sys.exit(f"compare.py: {exe} not found: build first (ninja -C {args.build})")
    print(f"{'config':8} {'impl':14} {'median s':>9} {'min s':>8} {'max s':>8} {'peak MiB':>9}")
    for name, (cfg, n_seq, seq_len) in CONFIGS.items():
        if args.only and name != args.only:
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(to_yaml(cfg))
            cfg_path = f.name
        try:
            lib = run([exe, "train", cfg_path, str(n_seq), str(seq_len), str(args.steps)])
            peers = [run([PYTHON, os.path.join(HERE, "bench_torch.py"), "train", json.dumps(cfg),
                          str(n_seq), str(seq_len), str(args.steps), str(t)]) for t in (1, 2)]
        finally:
            os.unlink(cfg_path)
        for r in [lib] + peers:
            label = f"{r['impl']} x{r['threads']}"
            rss = f"{r['peak_rss_kib'] / 1024:9.0f}"
            print(f"{name:8} {label:14} {r['median_s']:9.4f} {r['min_s']:8.4f} {r['max_s']:8.4f} {rss}")
        best = min(peers, key=lambda r: r["median_s"])
        print(f"{name:8} train step: PyTorch (best, {best['threads']} threads) / liblflex = "
              f"{best['median_s'] / lib['median_s']:.2f}x")
    if not args.only or args.only == "generate":
        generation(exe, args)
    return 0


def generation(exe, args):
    """Generation on the small configuration: 32 sequences from [EOS], 64
    steps, at most 64 tokens (freshly initialised models: both sides insert
    at the same initial rates, so the sequences grow alike)."""
    cfg, n_seq, steps = CONFIGS["small"][0], 32, 64
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(to_yaml(cfg))
        cfg_path = f.name
    try:
        lib = run([exe, "generate", cfg_path, str(n_seq), str(steps), str(args.reps)])
        peers = [run([PYTHON, os.path.join(HERE, "bench_torch.py"), "generate", json.dumps(cfg), str(n_seq),
                      str(steps), str(args.reps), str(t)]) for t in (1, 2)]
    finally:
        os.unlink(cfg_path)
    for r in [lib] + peers:
        label = f"{r['impl']} x{r['threads']}"
        print(f"{'generate':8} {label:14} {r['median_s']:9.4f} {r['min_s']:8.4f} {r['max_s']:8.4f} "
              f"{r['peak_rss_kib'] / 1024:9.0f}   mean length {r['mean_len']:.1f}")
    best = min(peers, key=lambda r: r["median_s"])
    print(f"{'generate':8} 32 x 64 steps: PyTorch (best, {best['threads']} threads) / liblflex = "
          f"{best['median_s'] / lib['median_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
