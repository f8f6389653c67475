#!/usr/bin/python3
"""Prepare the NCI molecule set for `lflex train`.

Reads a SMILES file (the first whitespace-separated field of every line),
canonicalises each molecule with RDKit, drops the unparsable ones and the
duplicates, drops molecules longer than the model allows, splits the rest
into training and validation sets with a seeded shuffle and writes
OUT/molecules.train.txt and OUT/molecules.valid.txt: one canonical SMILES per
line, character-level, unconditional. Prints the counts and the length
distribution.

    /usr/bin/python3 prepare.py [OUT_DIR] [--input FILE] [--max-len N]
                                [--valid-fraction F] [--seed S] [--json FILE]
"""
import argparse
import json
import math
import os
import random
import sys

# model.max_len of flexmdm.yaml and lflexmdm.yaml. A sequence is the
# target followed by EOS, so the longest usable SMILES is one shorter.
DEFAULT_MAX_LEN = 88
HERE = os.path.dirname(os.path.abspath(__file__))


def default_input():
    """The 5 000 NCI compounds of Debian's rdkit-data package."""
    dirs = []
    try:
        from rdkit import RDConfig
        dirs.append(RDConfig.RDDataDir)
    except ImportError:
        pass
    dirs += ['/usr/share/RDKit/Data', '/usr/share/rdkit/Data']
    for d in dirs:
        for name in ('first_5K.smi', 'first_5k.smi'):
            path = os.path.join(d, 'NCI', name)
            if os.path.isfile(path):
                return path
    return None


def read_smiles(path):
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            fields = line.split()
            if fields:
                out.append(fields[0])
    return out


def canonical(smiles, chem):
    """Canonical SMILES, or None when RDKit cannot parse it (or it has no atom)."""
    mol = chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return chem.MolToSmiles(mol)


def percentile(sorted_values, q):
    """Smallest value v with at least a fraction q of the values <= v."""
    k = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[k - 1]


def length_summary(lengths):
    s = sorted(lengths)
    n = len(s)
    mean = sum(s) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / n)
    return {'n': n, 'mean': mean, 'std': std, 'min': s[0], 'max': s[-1],
            'p50': percentile(s, 0.5), 'p90': percentile(s, 0.9),
            'p95': percentile(s, 0.95), 'p99': percentile(s, 0.99)}


def split(items, valid_fraction, seed):
    """Seeded split; both parts keep the input order."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_valid = round(valid_fraction * len(items))
    in_valid = set(order[:n_valid])
    train = [x for i, x in enumerate(items) if i not in in_valid]
    valid = [x for i, x in enumerate(items) if i in in_valid]
    return train, valid


def move_unseen(train, valid):
    """The vocabulary is built from the training file, so a validation line
    with a character the training file lacks could not be encoded; such
    lines join the training set."""
    chars = set(''.join(train))
    keep = [x for x in valid if set(x) <= chars]
    moved = [x for x in valid if not set(x) <= chars]
    return train + moved, keep, len(moved)


def print_histogram(lengths, width, limit):
    counts = {}
    for x in lengths:
        counts[x // width] = counts.get(x // width, 0) + 1
    n = len(lengths)
    print('  length      count  fraction')
    for b in sorted(counts):
        lo, hi = b * width, b * width + width - 1
        mark = '  (over the limit)' if lo > limit else ''
        print(f'  {lo:3d}-{hi:<3d}  {counts[b]:8d}  {counts[b] / n:8.4f}{mark}')


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', nargs='?', default=os.path.join(HERE, 'data'),
                    help='output directory (default: data/ next to this script)')
    ap.add_argument('--input', help="SMILES file (default: RDKit's Data/NCI/first_5K.smi)")
    ap.add_argument('--max-len', type=int, default=DEFAULT_MAX_LEN,
                    help='model.max_len; longer molecules are dropped (default %(default)s)')
    ap.add_argument('--valid-fraction', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--json', help='also write the counts to this JSON file')
    args = ap.parse_args(argv)
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        sys.exit('prepare.py: RDKit is missing (apt-get install python3-rdkit rdkit-data)')
    RDLogger.DisableLog('rdApp.*')
    path = args.input or default_input()
    if not path:
        sys.exit('prepare.py: no NCI/first_5K.smi found (apt-get install rdkit-data), give --input')
    if not 0 <= args.valid_fraction < 1 or args.max_len < 2:
        sys.exit('prepare.py: --valid-fraction must be in [0, 1) and --max-len at least 2')

    raw = read_smiles(path)
    canon, seen = [], set()
    n_bad = n_dup = 0
    for s in raw:
        c = canonical(s, Chem)
        if c is None:
            n_bad += 1
        elif c in seen:
            n_dup += 1
        else:
            seen.add(c)
            canon.append(c)
    if not canon:
        sys.exit(f'prepare.py: {path}: no molecule RDKit can parse')
    limit = args.max_len - 1
    lengths = [len(c) for c in canon]
    kept = [c for c in canon if len(c) <= limit]
    n_long = len(canon) - len(kept)
    train, valid = split(kept, args.valid_fraction, args.seed)
    train, valid, n_moved = move_unseen(train, valid)

    os.makedirs(args.out, exist_ok=True)
    for name, items in (('molecules.train.txt', train), ('molecules.valid.txt', valid)):
        with open(os.path.join(args.out, name), 'w', encoding='utf-8') as f:
            f.writelines(x + '\n' for x in items)

    summary = length_summary(lengths)
    s = sorted(lengths)
    need99 = percentile(s, 0.99) + 1
    vocab = ''.join(sorted(set(''.join(train))))
    print(f'source       {path}')
    print(f'read         {len(raw)} SMILES')
    print(f'unparsable   {n_bad} (dropped)')
    print(f'duplicates   {n_dup} (the same canonical SMILES; dropped)')
    print(f'too long     {n_long} longer than {limit} characters (model.max_len {args.max_len}; dropped)')
    print(f'kept         {len(kept)}: train {len(train)}, valid {len(valid)}'
          f' ({n_moved} validation molecules with a character unseen in training moved to train)')
    print(f'vocabulary   {len(vocab)} characters: {vocab}')
    print(f'length       mean {summary["mean"]:.1f}, std {summary["std"]:.1f}, min {summary["min"]}, '
          f'median {summary["p50"]}, 90% {summary["p90"]}, 95% {summary["p95"]}, '
          f'99% {summary["p99"]}, max {summary["max"]} characters')
    print(f'max_len {args.max_len} covers {len(kept) / len(canon):.2%} of the unique molecules '
          f'(99% needs max_len {need99})')
    print_histogram(lengths, 10, limit)
    print(f'wrote        {os.path.join(args.out, "molecules.train.txt")}, molecules.valid.txt')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'source': path, 'read': len(raw), 'unparsable': n_bad, 'duplicates': n_dup,
                       'too_long': n_long, 'kept': len(kept), 'train': len(train), 'valid': len(valid),
                       'moved_to_train': n_moved, 'max_len': args.max_len, 'max_len_99': need99,
                       'vocabulary': vocab, 'length': summary}, f, indent=1)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
