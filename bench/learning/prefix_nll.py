#!/usr/bin/env python3
"""Next-token log-loss of an insertion model and of the baseline on the same targets.

    /usr/bin/python3 bench/learning/prefix_nll.py TASK JOB_DIR [--ar AR_JOB_DIR] [--n 200] [--split valid]

For the first N targets of an unconditional task's split, scores every target
token k given the clean tokens before it, under a left-to-right
decomposition:

* the library model (JOB_DIR/model.safetensors, EMA weights):
  `tokens[:k] MASK*(n - k) EOS` at time (k + 1/2)/n (`lflex.Model.rates`),
  the probability of token k at position k. The model sees the target's
  length n, which the baseline does not; the same with n + 1 and n - 1
  positions shows how much it leans on that length;
* the autoregressive baseline (AR_JOB_DIR/model.pt, EMA weights): log p of
  token k given the tokens before it, and separately of EOS after the last.

Prints nats per token (EOS not counted) as one JSON line. The two models'
numbers compare the conditionals they learned, without a sampler between:
a gap here is a gap in what was learned.
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402


def library_nll(model, L, targets, shift):
    """Nats per token of the library model with n + shift positions (None
    when no target is long enough)."""
    total, count = 0.0, 0
    for ids in targets:
        n = len(ids) + shift
        for k in range(min(len(ids), n)):
            probs, _, _ = model.rates(ids[:k] + [L.MASK] * (n - k) + [L.EOS], (k + 0.5) / n)
            total -= math.log(max(probs[k][ids[k]], 1e-30))
            count += 1
    return total / count if count else None


def baseline_nll(trainer, targets):
    """(nats per token, nats of EOS per target) of the autoregressive baseline."""
    import torch
    import ar
    total = eos = 0.0
    count = 0
    with trainer.t.eval_weights() as net:
        for ids in targets:
            s = [ar.BOS] + ids + [ar.EOS]
            lp = torch.log_softmax(net(torch.tensor([s]))[0], -1)
            total -= sum(lp[k, s[k + 1]].item() for k in range(len(ids)))
            eos -= lp[len(ids), ar.EOS].item()
            count += len(ids)
    return total / count, eos / len(targets)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('task', help='an unconditional task (words, molecules)')
    ap.add_argument('job_dir', help="a library job's directory (OUT/runs/TASK/METHOD)")
    ap.add_argument('--ar', metavar='AR_JOB_DIR', help="the baseline's job directory (OUT/runs/TASK/ar)")
    ap.add_argument('--data', default=os.path.join(R.ROOT, 'bench', 'out', 'learning', 'data'))
    ap.add_argument('--split', default='valid', choices=('train', 'valid', 'test'))
    ap.add_argument('--n', type=int, default=200, help='targets to score (default 200)')
    a = ap.parse_args()
    try:
        cfg = R.job_config(a.task, 'ar')
        data, vocab, tokenizer, conditional = R.load_data(a.task, a.data, cfg)
        if conditional:
            raise R.BenchError(f'{a.task}: prefix_nll.py scores unconditional tasks only')
        texts = [r[3] for r in data[a.split]][:a.n]
        lib = R.load_trainer(cfg, vocab, tokenizer, a.job_dir)
        targets = [lib.encode(t) for t in texts]
        out = dict(task=a.task, job=a.job_dir, split=a.split, n=len(targets))
        for shift, key in ((0, 'library'), (1, 'library_len_plus_1'), (-1, 'library_len_minus_1')):
            v = library_nll(lib.model, lib.lflex, targets, shift)
            out[key] = None if v is None else round(v, 4)
        if a.ar:
            base = R.load_trainer(cfg, vocab, tokenizer, a.ar, baseline=True)
            tok, eos = baseline_nll(base, [base.encode(t) for t in texts])
            out.update(baseline=round(tok, 4), baseline_eos=round(eos, 4))
    except (R.BenchError, OSError) as e:
        sys.exit(f'prefix_nll.py: {e}')
    print(json.dumps(out))


if __name__ == '__main__':
    main()
