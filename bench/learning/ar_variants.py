#!/usr/bin/env python3
"""The baseline's network trained three ways on words, scored letter by letter.

    /usr/bin/python3 bench/learning/ar_variants.py STEPS [--length] [--keep K]
                                                  [--masked S [--hide-masks]] [--n 500]

Trains the autoregressive baseline's transformer (ar.py, the words task's
configuration: size, optimiser, EMA, batch 64) for STEPS steps and prints
the next-letter log-loss of the first N validation words, in nats per
letter, as `prefix_nll.py` measures a library model:

* default: the baseline as run.py trains it (causal, every letter and EOS a
  target);
* `--length`: the word's length given as a one-token prompt, as an
  insertion model sees it once its MASKs are placed;
* `--keep K`: only K letters of each word, drawn at random, are targets;
* `--masked S`: the network without its causal mask, trained on S
  left-to-right masked states per word (`BOS prefix MASK… EOS`, positions
  drawn stratified), the letter after the prefix the only target: the
  conditionals a left-to-right insertion model learns, with the length,
  learned through a bidirectional pass over masked states;
* `--hide-masks` (with --masked): MASK and padding are no attention keys
  (a row still sees itself), so the prefix's letters are computed from the
  prefix alone.

With --length, --keep 4 and --masked 4 at 1 400 steps this separates the
gap between the library's and the baseline's conditionals on words
(doc/learning.md section 15).
"""
import argparse
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402
from ar import BOS, EOS, PAD, ArTrainer  # noqa: E402

MASK = 1  # the library's id; unused by the baseline otherwise


def length_token(n):
    """A character outside the words' alphabet that names the length n."""
    return chr(ord('A') + n)


def vocab_with_lengths(vocab, max_len):
    """The task's vocabulary and a token for every length below max_len."""
    return list(vocab) + [length_token(n) for n in range(1, max_len)]


def word_batches(words, rng, size=64):
    """Endless batches of `size` words, from shuffled passes over `words`."""
    order = []
    while True:
        if len(order) < size:
            order = words[:]
            rng.shuffle(order)
        yield [order.pop() for _ in range(size)]


def pad_rows(rows, fill):
    """Rows of unequal length as one tensor [len(rows), longest], `fill` after each row."""
    x = torch.full((len(rows), max(len(r) for r in rows)), fill, dtype=torch.long)
    for j, r in enumerate(rows):
        x[j, :len(r)] = torch.tensor(r)
    return x


def train_words(tr, words, steps, rng, loss_of):
    """STEPS optimiser steps of the baseline's trainer on batches of `words`
    (word_batches); loss_of(batch) gives each step's loss tensor."""
    t0 = time.time()
    for s, batch in zip(range(steps), word_batches(words, rng)):
        loss = tr.optimise(loss_of(batch))
        if s % 500 == 0:
            print(f'step {s}: loss {loss:.3f} ({time.time() - t0:.0f} s)', flush=True)


def words_line(samples, data):
    """The real-word rate (run.word_report) of word samples as one line's text."""
    r = R.word_report(samples, data)
    return (f'{100 * r["word_rate"]:.1f} % real words ({100 * r["new_word_rate"]:.1f} % new), uniqueness '
            f'{100 * r["uniqueness"]:.1f} %, mean length {r["length"]["mean"]:.2f}, {len(samples)} samples')


def masked_row(ids, k):
    """`BOS ids[:k] MASK… EOS`: the left-to-right masked state before token k."""
    return [BOS] + ids[:k] + [MASK] * (len(ids) - k) + [EOS]


def batch_rows(tr, words, a, rng):
    """(ids [rows, T], positions whose logits are scored, their targets)."""
    seqs, pos, tgt = [], [], []
    for w in words:
        ids = tr.encode(w)
        n = len(ids)
        if a.masked:
            for i in range(a.masked):
                k = min(n - 1, int((i + rng.random()) * n / a.masked))
                seqs.append(masked_row(ids, k))
                pos.append([1 + k])  # BOS comes first
                tgt.append([ids[k]])
            continue
        p = [tr.index[length_token(n)]] if a.length else []
        s = p + [BOS] + ids + [EOS]
        b = len(p)
        ks = sorted(rng.sample(range(n), min(a.keep, n))) if a.keep else range(n + 1)
        seqs.append(s)
        pos.append([b + k for k in ks])
        tgt.append([s[b + k + 1] for k in ks])
    return pad_rows(seqs, PAD), pos, tgt


def hidden_keys(x, a):
    """--hide-masks: the rows no other row attends to."""
    return (x == MASK) | (x == PAD) if a.hide_masks else None


def step_loss(tr, x, pos, tgt, a):
    """The cross-entropy of one step's scored positions."""
    tr.net.train()
    logits = tr.net(x, hidden_keys(x, a))
    rows = torch.tensor([j for j, p in enumerate(pos) for _ in p])
    cols = torch.tensor([k for p in pos for k in p])
    return F.cross_entropy(logits[rows, cols], torch.tensor([y for t in tgt for y in t]))


def score(tr, words, a):
    """Nats per letter of the words, each letter given the ones before it."""
    total, count = 0.0, 0
    with tr.eval_weights() as net:
        for w in words:
            ids = tr.encode(w)
            n = len(ids)
            if a.masked:
                x = torch.tensor([masked_row(ids, k) for k in range(n)])
                lp = torch.log_softmax(net(x, hidden_keys(x, a)), -1)
                total -= sum(lp[k, 1 + k, ids[k]].item() for k in range(n))
            else:
                p = [tr.index[length_token(n)]] if a.length else []
                s = p + [BOS] + ids + [EOS]
                lp = torch.log_softmax(net(torch.tensor([s]))[0], -1)
                total -= sum(lp[len(p) + k, s[len(p) + k + 1]].item() for k in range(n))
            count += n
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('steps', type=int)
    ap.add_argument('--length', action='store_true', help="the word's length as a prompt")
    ap.add_argument('--keep', type=int, default=0, metavar='K', help='only K random letters per word are targets')
    ap.add_argument('--masked', type=int, default=0, metavar='S',
                    help='bidirectional, S left-to-right masked states per word')
    ap.add_argument('--hide-masks', action='store_true', help='with --masked: MASK tokens are no attention keys')
    ap.add_argument('--n', type=int, default=500, help='validation words scored (default 500)')
    ap.add_argument('--data', default=os.path.join(R.ROOT, 'bench', 'out', 'learning', 'data'))
    a = ap.parse_args()
    if a.masked and (a.length or a.keep):
        sys.exit('ar_variants.py: --masked sees the length already and has one target per state')
    if a.hide_masks and not a.masked:
        sys.exit('ar_variants.py: --hide-masks needs --masked')
    cfg = R.job_config('words', 'ar')
    data, vocab, tokenizer, _ = R.load_data('words', a.data, cfg)
    max_len = int(cfg['model']['max_len'])
    tr = ArTrainer(cfg, vocab_with_lengths(vocab, max_len), tokenizer, 1)
    if a.masked:
        tr.net.causal.zero_()
    train = [r[3] for r in data['train']]
    valid = [r[3] for r in data['valid']][:a.n]
    rng = random.Random(1)
    train_words(tr, train, a.steps, rng, lambda words: step_loss(tr, *batch_rows(tr, words, a, rng), a))
    kind = (f'masked, {a.masked} states' if a.masked else 'causal') + (', MASK hidden' if a.hide_masks else '') + \
        (', length given' if a.length else '') + (f', {a.keep} targets per word' if a.keep else '')
    print(f'{kind}, {a.steps} steps: {score(tr, valid, a):.3f} nats per letter ({len(valid)} validation words)')


if __name__ == '__main__':
    main()
