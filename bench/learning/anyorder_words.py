#!/usr/bin/env python3
"""An any-order autoregressive model on words: every letter a target of one causal pass.

    /usr/bin/python3 bench/learning/anyorder_words.py STEPS [--order random|l2r] [--n 1000]
                                                     [--samples FILE] [--data DIR]

The baseline's transformer (ar.py, the words task's configuration: size,
optimiser, EMA, batch 64), causal as the baseline, over the word's letters
in an order drawn per word (`random`) or left to right (`l2r`): the input
is a token naming the length, then the letters in that order; each input
row carries its own position and the position of the letter it predicts
(a second position embedding), so all n letters are targets of one pass,
each given the letters before it in the order. The unmasking half of an
insertion model with the length known, in the parametrisation of an
autoregressive one: a check of whether sharing the revealed letters'
computation across targets closes the gap to the baseline at equal steps
(doc/learning.md section 16). Prints the real-word rate of N samples at
temperature 1 (lengths drawn from the training words, letters generated in
a random order, or left to right for `l2r`); --samples writes them, one
per line.
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
from ar import ArTrainer  # noqa: E402
from ar_variants import length_token, pad_rows, train_words, vocab_with_lengths, words_line  # noqa: E402


def forward(net, ids, own, nxt):
    """Causal pass: ids, own and next positions [B, T] -> logits [B, T, V]."""
    T = ids.shape[1]
    x = net.tok(ids) + net.pos(own) + net.next_pos(nxt)
    for b in net.blocks:
        x = b(x, net.causal[:T, :T])
    return net.head(net.ln_f(x))


def rows(tr, ids, order):
    """Inputs and targets of one word in the given order (positions 1..n)."""
    n = len(ids)
    inp = [tr.index[length_token(n)]] + [ids[p] for p in order[:-1]]
    own = [0] + [p + 1 for p in order[:-1]]
    nxt = [p + 1 for p in order]
    return inp, own, nxt, [ids[p] for p in order]


def sample(tr, lens, n, l2r):
    """n words at temperature 1, their letters in a random order (or left to right)."""
    net, rng = tr.net, random.Random(7)
    torch.manual_seed(7)
    ns = [rng.choice(lens) for _ in range(n)]
    orders = [list(range(k)) if l2r else rng.sample(range(k), k) for k in ns]
    words = [[0] * k for k in ns]
    inp = [[tr.index[length_token(k)]] for k in ns]
    own = [[0] for _ in ns]
    with tr.eval_weights(), torch.no_grad():
        for step in range(max(ns)):
            live = [j for j in range(n) if step < ns[j]]
            x = torch.tensor([inp[j] for j in live])
            o = torch.tensor([own[j] for j in live])
            nx = torch.tensor([[p + 1 for p in orders[j][:step + 1]] for j in live])
            p = torch.softmax(forward(net, x, o, nx)[:, -1], -1)
            p[:, :4] = 0  # PAD, MASK, BOS, EOS
            p[:, tr.index[length_token(1)]:] = 0  # the length tokens
            got = torch.multinomial(p, 1)[:, 0].tolist()
            for j, c in zip(live, got):
                pos = orders[j][step]
                words[j][pos] = c
                inp[j].append(c)
                own[j].append(pos + 1)
    return [tr.decode(w) for w in words]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('steps', type=int)
    ap.add_argument('--order', choices=('random', 'l2r'), default='random')
    ap.add_argument('--n', type=int, default=1000, help='samples (default 1000)')
    ap.add_argument('--samples', metavar='FILE', help='write the samples here, one per line')
    ap.add_argument('--data', default=os.path.join(R.ROOT, 'bench', 'out', 'learning', 'data'))
    a = ap.parse_args()
    cfg = R.job_config('words', 'ar')
    data, vocab, tokenizer, _ = R.load_data('words', a.data, cfg)
    tr = ArTrainer(cfg, vocab_with_lengths(vocab, int(cfg['model']['max_len'])), tokenizer, 1)
    net = tr.net
    net.next_pos = nn.Embedding(net.pos.num_embeddings, net.pos.embedding_dim)
    nn.init.normal_(net.next_pos.weight, std=0.02)
    tr.add_parameter(net.next_pos.weight, 0.0)  # a position embedding: not decayed, as the baseline's
    train = [r[3] for r in data['train']]
    rng = random.Random(1)

    def loss_of(words):
        batch = []
        for w in words:
            ids = tr.encode(w)
            k = len(ids)
            batch.append(rows(tr, ids, list(range(k)) if a.order == 'l2r' else rng.sample(range(k), k)))
        x, o, nx = (pad_rows([b[i] for b in batch], 0) for i in range(3))
        y = pad_rows([b[3] for b in batch], -100)
        net.train()
        logits = forward(net, x, o, nx)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)

    train_words(tr, train, a.steps, rng, loss_of)
    samples = sample(tr, [len(tr.encode(w)) for w in train], a.n, a.order == 'l2r')
    if a.samples:
        with open(a.samples, 'w', encoding='utf-8') as f:
            f.writelines(w + '\n' for w in samples)
    print(f'{a.order} order, {a.steps} steps: {words_line(samples, data)}')

if __name__ == '__main__':
    main()
