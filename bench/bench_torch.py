#!/usr/bin/env python3
"""The PyTorch peer of bench/bench_lflex.c: times the reference train step
(bench/reference/lflex_ref.py) on the same configuration and data
distribution, and prints one JSON line like the C program.

    bench_torch.py train CONFIG_JSON N_SEQ SEQ_LEN STEPS THREADS
    bench_torch.py generate CONFIG_JSON N_SEQ STEPS REPS THREADS
"""
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))

import torch  # noqa: E402

import lflex_ref as R  # noqa: E402
import sampler_ref as S  # noqa: E402


def bench_train(cfg_json: str, n_seq: int, seq_len: int, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = R.Config.from_dict(json.loads(cfg_json))
    model = R.LFlexModel(cfg)
    trainer = R.Trainer(model, seed=0)
    gen = torch.Generator().manual_seed(12345)
    times, tokens = [], []
    for s in range(steps + 2):
        body = torch.randint(R.N_SPECIAL, cfg.n_ids, (n_seq, seq_len - 1), generator=gen, dtype=torch.int32)
        eos = torch.full((n_seq, 1), R.EOS, dtype=torch.int32)
        toks = torch.cat([body, eos], 1).reshape(-1)
        fixed = torch.zeros(n_seq, seq_len, dtype=torch.uint8)
        fixed[:, -1] = 1
        offsets = torch.arange(0, n_seq * seq_len + 1, seq_len, dtype=torch.int64)
        t0 = time.perf_counter()
        stats = trainer.train_step(toks, fixed.reshape(-1), offsets)
        dt = time.perf_counter() - t0
        if s >= 2:
            times.append(dt)
            tokens.append(stats["tokens"])
    n_params = sum(p.numel() for p in model.parameters())
    return {"what": "train", "impl": "torch", "threads": threads, "n_seq": n_seq, "len": seq_len,
            "params": n_params, "steps": steps, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "tokens_per_step": sum(tokens) / len(tokens),
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def bench_generate(cfg_json: str, n_seq: int, steps: int, reps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = R.Config.from_dict(json.loads(cfg_json))
    model = R.LFlexModel(cfg)
    sc = S.SamplerConfig(steps=steps, seed=1)
    times, lengths = [], []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        out = S.generate(model, [[R.EOS]] * n_seq, [[True]] * n_seq, sc)
        dt = time.perf_counter() - t0
        if r > 0:  # the first run is warm-up
            times.append(dt)
            lengths.append(sum(len(o) for o in out) / n_seq)
    return {"what": "generate", "impl": "torch", "threads": threads, "n_seq": n_seq, "steps": steps,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "mean_len": sum(lengths) / len(lengths),
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main(argv):
    if len(argv) == 7 and argv[1] == "generate":
        print(json.dumps(bench_generate(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]))))
        return 0
    if len(argv) == 7 and argv[1] == "train":
        print(json.dumps(bench_train(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
