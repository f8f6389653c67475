#!/usr/bin/python3
"""Prepare an English word list for `lflex train`.

Reads a word list (one word per line; by default Debian's wamerican package,
/usr/share/dict/american-english), keeps the words made only of the
lowercase letters a-z with a length in [--min-len, --max-word-len] (so proper
nouns, possessives and accented words go), removes duplicates, splits them
into training and validation sets with a seeded shuffle and writes
OUT/words.train.txt and OUT/words.valid.txt: one word per line,
character-level, unconditional. Prints the counts and the length distribution.

    /usr/bin/python3 prepare.py [OUT_DIR] [--input FILE] [--min-len 3]
                                [--max-word-len 12] [--valid-fraction F] [--seed S]
                                [--json FILE]
"""
import argparse
import json
import math
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# wamerican first, then the other Debian word lists that may be installed
DEFAULT_INPUTS = ['/usr/share/dict/american-english', '/usr/share/dict/british-english',
                  '/usr/share/dict/words']
LOWERCASE_WORD = re.compile(r'[a-z]+')


def read_words(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        return [line.strip() for line in f if line.strip()]


def select(words, min_len, max_len):
    """The kept words in input order, and the count of each reason to drop."""
    kept, seen = [], set()
    dropped = {'not lowercase a-z': 0, 'too short': 0, 'too long': 0, 'duplicate': 0}
    for w in words:
        if not LOWERCASE_WORD.fullmatch(w):
            dropped['not lowercase a-z'] += 1
        elif len(w) < min_len:
            dropped['too short'] += 1
        elif len(w) > max_len:
            dropped['too long'] += 1
        elif w in seen:
            dropped['duplicate'] += 1
        else:
            seen.add(w)
            kept.append(w)
    return kept, dropped


def split(items, valid_fraction, seed):
    """Seeded split; both parts keep the input order."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_valid = round(valid_fraction * len(items))
    in_valid = set(order[:n_valid])
    train = [x for i, x in enumerate(items) if i not in in_valid]
    valid = [x for i, x in enumerate(items) if i in in_valid]
    return train, valid


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', nargs='?', default=os.path.join(HERE, 'data'),
                    help='output directory (default: data/ next to this script)')
    ap.add_argument('--input', help='word list (default: /usr/share/dict/american-english)')
    ap.add_argument('--min-len', type=int, default=3)
    ap.add_argument('--max-word-len', type=int, default=12,
                    help='longest word kept; model.max_len must exceed it (default %(default)s)')
    ap.add_argument('--valid-fraction', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--json', help='also write the counts to this JSON file')
    args = ap.parse_args(argv)
    path = args.input or next((p for p in DEFAULT_INPUTS if os.path.isfile(p)), None)
    if not path:
        sys.exit('prepare.py: no word list in /usr/share/dict (apt-get install wamerican), give --input')
    if not 0 <= args.valid_fraction < 1 or not 1 <= args.min_len <= args.max_word_len:
        sys.exit('prepare.py: --valid-fraction must be in [0, 1) and 1 <= --min-len <= --max-word-len')

    words = read_words(path)
    kept, dropped = select(words, args.min_len, args.max_word_len)
    if not kept:
        sys.exit(f'prepare.py: {path}: no word kept')
    train, valid = split(kept, args.valid_fraction, args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name, items in (('words.train.txt', train), ('words.valid.txt', valid)):
        with open(os.path.join(args.out, name), 'w', encoding='utf-8') as f:
            f.writelines(x + '\n' for x in items)

    counts = {}
    for w in kept:
        counts[len(w)] = counts.get(len(w), 0) + 1
    n = len(kept)
    mean = sum(len(w) for w in kept) / n
    std = math.sqrt(sum((len(w) - mean) ** 2 for w in kept) / n)
    print(f'source       {path}')
    print(f'read         {len(words)} lines')
    for why, k in dropped.items():
        print(f'  dropped    {k} {why}')
    print(f'kept         {n}: train {len(train)}, valid {len(valid)}')
    print(f'vocabulary   {"".join(sorted(set("".join(train))))}')
    print(f'length       mean {mean:.2f}, std {std:.2f}, {min(counts)}-{max(counts)} letters '
          f'(model.max_len must be at least {max(counts) + 1}: the word and EOS)')
    print('  length   count  fraction')
    for k in sorted(counts):
        print(f'  {k:6d}  {counts[k]:6d}  {counts[k] / n:8.4f}')
    print(f'wrote        {os.path.join(args.out, "words.train.txt")}, words.valid.txt')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'source': path, 'read': len(words), 'dropped': dropped, 'kept': n,
                       'train': len(train), 'valid': len(valid), 'mean': mean, 'std': std,
                       'lengths': {str(k): v for k, v in sorted(counts.items())}}, f, indent=1)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
