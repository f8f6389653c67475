#!/usr/bin/python3
"""Evaluate generated words (one per line) against the training words.

    /usr/bin/python3 evaluate.py SAMPLES.txt TRAIN.txt [--words FILE]... [--name NAME]
                                 [--json OUT.json]
    /usr/bin/python3 evaluate.py --compare A.json B.json ...

Metrics (every line of SAMPLES.txt is a sample, empty lines included):
  length      the length distribution (in characters) of the samples against
              the training words': a table of frequencies per length, mean,
              standard deviation and the total-variation distance
              0.5 * sum_l |p_samples(l) - p_train(l)|
  words       samples that are words of the list (the training words plus
              every --words file) / samples
  in train    samples that are training words / samples (memorised)
  novelty     samples that are not training words / samples
  new words   samples that are words of the list but not training words
              / samples (generalisation to held-out words)
  uniqueness  distinct samples / samples
"""
import argparse
import json
import math
import os
import sys


def read_lines(path):
    """Every line, blank ones included (an empty generation is a sample)."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    return [x.rstrip('\r') for x in lines]


def length_distribution(lengths):
    n = len(lengths)
    p = {}
    for x in lengths:
        p[x] = p.get(x, 0) + 1
    return {k: v / n for k, v in p.items()} if n else {}


def total_variation(p, q):
    """0.5 * sum over all lengths of |p - q|."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def mean_std(values):
    """Mean and population standard deviation (None for no value)."""
    n = len(values)
    if n == 0:
        return None, None
    m = sum(values) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in values) / n)


def ratio(a, b):
    return a / b if b else None


def evaluate(samples, train, extra_words=(), name='samples'):
    train = [w for w in train if w]
    train_set = set(train)
    words = train_set | {w for w in extra_words if w}
    n = len(samples)
    n_word = sum(1 for s in samples if s in words)
    n_train = sum(1 for s in samples if s in train_set)
    n_new_word = sum(1 for s in samples if s in words and s not in train_set)
    ps = length_distribution([len(s) for s in samples])
    pt = length_distribution([len(w) for w in train])
    ms, ss = mean_std([len(s) for s in samples])
    mt, st = mean_std([len(w) for w in train])
    return {'name': name, 'samples': n, 'empty': sum(1 for s in samples if not s),
            'distinct': len(set(samples)), 'words': n_word, 'in_train': n_train,
            'novel': n - n_train, 'new_words': n_new_word,
            'uniqueness': ratio(len(set(samples)), n), 'word_rate': ratio(n_word, n),
            'in_train_rate': ratio(n_train, n), 'novelty': ratio(n - n_train, n),
            'new_word_rate': ratio(n_new_word, n),
            'length': {'mean': ms, 'std': ss, 'train_mean': mt, 'train_std': st,
                       'tv': total_variation(ps, pt),
                       'table': [[k, ps.get(k, 0.0), pt.get(k, 0.0)] for k in sorted(set(ps) | set(pt))]}}


def fmt(x, spec='.4f'):
    return '-' if x is None else format(x, spec)


def print_report(r):
    print(f'{r["name"]}: {r["samples"]} samples ({r["empty"]} empty, {r["distinct"]} distinct)')
    print(f'  words       {fmt(r["word_rate"])}  ({r["words"]} in the word list)')
    print(f'  in train    {fmt(r["in_train_rate"])}  ({r["in_train"]} training words)')
    print(f'  novelty     {fmt(r["novelty"])}  ({r["novel"]} not training words)')
    print(f'  new words   {fmt(r["new_word_rate"])}  ({r["new_words"]} listed words not in training)')
    print(f'  uniqueness  {fmt(r["uniqueness"])}')
    L = r['length']
    print(f'  length      mean {fmt(L["mean"], ".2f")} std {fmt(L["std"], ".2f")}  (train: mean '
          f'{fmt(L["train_mean"], ".2f")} std {fmt(L["train_std"], ".2f")});  total variation {L["tv"]:.4f}')
    print('    length  samples    train')
    for k, ps, pt in L['table']:
        print(f'    {k:6d}  {ps:7.4f}  {pt:7.4f}')


def print_comparison(reports):
    names = [r['name'] for r in reports]
    w = max(10, *(len(x) for x in names))
    print(f'{"":14s}' + ''.join(f'{x:>{w + 2}s}' for x in names))
    for key, label, spec in (('samples', 'samples', 'd'), ('word_rate', 'words', '.4f'),
                             ('in_train_rate', 'in train', '.4f'), ('novelty', 'novelty', '.4f'),
                             ('new_word_rate', 'new words', '.4f'), ('uniqueness', 'uniqueness', '.4f')):
        print(f'{label:14s}' + ''.join(f'{fmt(r.get(key), spec):>{w + 2}s}' for r in reports))
    for key, label in (('mean', 'length mean'), ('std', 'length std'), ('tv', 'length TV')):
        print(f'{label:14s}' + ''.join(f'{fmt(r["length"][key], ".3f"):>{w + 2}s}' for r in reports))
    lengths = sorted({row[0] for r in reports for row in r['length']['table']})
    print(f'{"":14s}' + ''.join(f'{x:>{w + 2}s}' for x in names) + f'{"train":>{w + 2}s}')
    for k in lengths:
        cells = [next((row[1] for row in r['length']['table'] if row[0] == k), 0.0) for r in reports]
        pt = next((row[2] for row in reports[0]['length']['table'] if row[0] == k), 0.0)
        print(f'{"length " + str(k):14s}' + ''.join(f'{c:>{w + 2}.4f}' for c in cells) + f'{pt:>{w + 2}.4f}')


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('samples', nargs='?', help='generated words, one per line')
    ap.add_argument('train', nargs='?', help='training words, one per line')
    ap.add_argument('--words', action='append', default=[],
                    help='more real words (e.g. the validation file); may repeat')
    ap.add_argument('--name', help='label of the samples (default: the file name)')
    ap.add_argument('--json', help="write the metrics to this file ('-': standard output)")
    ap.add_argument('--compare', nargs='+', metavar='JSON', help='print a table of earlier --json outputs')
    args = ap.parse_args(argv)
    if args.compare:
        reports = []
        for path in args.compare:
            with open(path, encoding='utf-8') as f:
                reports.append(json.load(f))
        print_comparison(reports)
        return 0
    if not args.samples or not args.train:
        ap.error('SAMPLES and TRAIN are required (or --compare)')
    extra = [w for path in args.words for w in read_lines(path)]
    r = evaluate(read_lines(args.samples), read_lines(args.train), extra,
                 name=args.name or os.path.basename(args.samples))
    if args.json == '-':
        json.dump(r, sys.stdout, indent=1)
        print()
        return 0
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(r, f, indent=1)
            f.write('\n')
    print_report(r)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
