#!/usr/bin/env python3
"""A fixed-length masked diffusion model on words, with or without self-conditioning.

    /usr/bin/python3 bench/learning/mdm_words.py STEPS [--states S] [--self-cond]
                                                [--n 1000] [--data DIR]

The baseline's transformer (ar.py, the words task's configuration: size,
optimiser, EMA, batch 64) without its causal mask, trained for STEPS steps
as a plain masked diffusion model that knows the word's length (`BOS
letters EOS`; S noised states per word, each letter masked with
probability t, t stratified over the states; cross-entropy of the masked
letters, their mean over the batch). The insertion model's unmasking half
with the length given, in PyTorch, to try changes to the objective or the
sampler quickly. Prints the real-word rate of N samples at temperature 1
(lengths drawn from the training words, one letter unmasked per step in a
random order), as run.py measures the library's models.

`--self-cond`: on half of the steps a first pass without gradient predicts
the masked letters and its probabilities enter the second pass through a
zero-initialised linear map added to the input embeddings; the sampler
feeds each step the previous step's probabilities of the letters still
masked.
"""
import argparse
import os
import random
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402
from ar import BOS, EOS, PAD, ArTrainer  # noqa: E402
from ar_variants import MASK, pad_rows, train_words, words_line  # noqa: E402


def forward(net, ids, probs=None):
    """The bidirectional network, with probs [B, T, V] self-conditioning it."""
    T = ids.shape[1]
    x = net.tok(ids) + net.pos.weight[:T]
    if probs is not None:
        x = x + net.sc(probs)
    for b in net.blocks:
        x = b(x, net.causal[:T, :T])
    return net.head(net.ln_f(x))


def batch_states(tr, words, states, rng):
    """(ids, targets) of S masked states per word; -100 where nothing is scored."""
    seqs, tgts = [], []
    for w in words:
        ids = tr.encode(w)
        n = len(ids)
        for i in range(states):
            t = (i + rng.random()) / states
            m = [rng.random() < t for _ in ids]
            if not any(m):
                m[rng.randrange(n)] = True
            seqs.append([BOS] + [MASK if mm else c for c, mm in zip(ids, m)] + [EOS])
            tgts.append([-100] + [c if mm else -100 for c, mm in zip(ids, m)] + [-100])
    return pad_rows(seqs, PAD), pad_rows(tgts, -100)


def sample(tr, lens, n, self_cond):
    """n words at temperature 1, one letter per step in a random order."""
    net, rng = tr.net, random.Random(7)
    torch.manual_seed(7)
    ns = [rng.choice(lens) for _ in range(n)]
    x = torch.full((n, max(ns) + 2), PAD, dtype=torch.long)
    for j, k in enumerate(ns):
        x[j, 0], x[j, 1:k + 1], x[j, k + 1] = BOS, MASK, EOS
    orders = [rng.sample(range(1, k + 1), k) for k in ns]
    probs = torch.zeros(n, x.shape[1], net.head.out_features) if self_cond else None
    with tr.eval_weights(), torch.no_grad():
        for step in range(max(ns)):
            p = torch.softmax(forward(net, x, probs), -1)
            if self_cond:
                probs = p * (x == MASK).unsqueeze(-1)
            for j in range(n):
                if step < ns[j]:
                    pos = orders[j][step]
                    pr = p[j, pos].clone()
                    pr[:4] = 0  # PAD, MASK, BOS, EOS
                    x[j, pos] = torch.multinomial(pr, 1).item()
    return [tr.decode([int(c) for c in x[j, 1:ns[j] + 1]]) for j in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('steps', type=int)
    ap.add_argument('--states', type=int, default=4, help='noised states per word (default 4)')
    ap.add_argument('--self-cond', action='store_true', help='self-conditioning (above)')
    ap.add_argument('--n', type=int, default=1000, help='samples (default 1000)')
    ap.add_argument('--data', default=os.path.join(R.ROOT, 'bench', 'out', 'learning', 'data'))
    a = ap.parse_args()
    cfg = R.job_config('words', 'ar')
    data, vocab, tokenizer, _ = R.load_data('words', a.data, cfg)
    tr = ArTrainer(cfg, list(vocab), tokenizer, 1)
    net = tr.net
    net.causal.zero_()
    if a.self_cond:
        net.sc = nn.Linear(net.head.out_features, net.tok.embedding_dim, bias=False)
        nn.init.zeros_(net.sc.weight)
        tr.add_parameter(net.sc.weight, 0.01)  # a matrix: decayed as the baseline's are
    train = [r[3] for r in data['train']]
    rng = random.Random(1)

    def loss_of(words):
        x, y = batch_states(tr, words, a.states, rng)
        net.train()
        probs = None
        if a.self_cond and rng.random() < 0.5:
            with torch.no_grad():
                probs = torch.softmax(forward(net, x), -1) * (x == MASK).unsqueeze(-1)
        logits = forward(net, x, probs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)

    train_words(tr, train, a.steps, rng, loss_of)
    samples = sample(tr, [len(tr.encode(w)) for w in train], a.n, a.self_cond)
    kind = 'self-conditioned' if a.self_cond else 'plain'
    print(f'{kind}, {a.states} states, {a.steps} steps: {words_line(samples, data)}')

if __name__ == '__main__':
    main()
