#!/usr/bin/env python3
"""Evaluate a saved run.py job again with other sampler options.

    /usr/bin/python3 bench/learning/reeval.py TASK METHOD JOB_DIR [--data DIR] [--n N] [--seed S]
                                              [--sampler KEY=VALUE,...] [--samples FILE]

JOB_DIR is a job's directory (OUT/runs/TASK/METHOD): its model.safetensors,
or model.pt for the autoregressive baseline (method `ar`). The task's
metrics are printed as one JSON line: exact match and token accuracy of
the first N test examples, or the metrics of N unconditional samples, as
run.py computes them; the sampler is the task's `sample` section with
--sampler's keys over it (run.py's option of that name). --samples writes
the generated lines as run.py's samples.txt does (PROMPT<TAB>ANSWER for a
conditional task).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('task')
    ap.add_argument('method')
    ap.add_argument('job_dir')
    ap.add_argument('--data', default=os.path.join(R.ROOT, 'bench', 'out', 'learning', 'data'))
    ap.add_argument('--n', type=int, default=1000, help='test examples or samples (default 1000)')
    ap.add_argument('--seed', type=int, default=1, help='sampler seed (default 1, as run.py)')
    ap.add_argument('--sampler', action='append', default=[], metavar='KEY=VALUE,...',
                    help="over the task's sample section (repeatable)")
    ap.add_argument('--samples', metavar='FILE', help='write the generated lines to FILE')
    a = ap.parse_args()
    try:
        cfg = R.job_config(a.task, a.method)
        data, vocab, tokenizer, conditional = R.load_data(a.task, a.data, cfg)
        opts = R.deep_merge(cfg.get('sample', {}), R.parse_sampler(a.sampler))
        trainer = R.load_trainer(cfg, vocab, tokenizer, a.job_dir, baseline=a.method == 'ar')
        trainer.check_sampler(opts)
        t0 = time.perf_counter()
        metrics, lines = R.evaluate(trainer, a.task, data, conditional, {'n_test': a.n, 'n_samples': a.n, 'seed': a.seed},
                                    opts)
        if a.samples:
            with open(a.samples, 'w', encoding='utf-8') as f:
                f.writelines(line + '\n' for line in lines)
    except (R.BenchError, OSError) as e:
        sys.exit(f'reeval.py: {e}')
    print(json.dumps(dict(task=a.task, method=a.method, sampler=opts, eval_s=round(time.perf_counter() - t0, 1),
                          **metrics)))


if __name__ == '__main__':
    main()
