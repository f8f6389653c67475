#!/usr/bin/python3
"""Evaluate generated molecules (one SMILES per line) against the training set.

    /usr/bin/python3 evaluate.py SAMPLES.txt TRAIN.txt [--name NAME] [--json OUT.json]
    /usr/bin/python3 evaluate.py --compare A.json B.json ...

Metrics (every line of SAMPLES.txt is a sample, empty lines included):
  validity    valid / samples; valid: RDKit parses it into a molecule with at
              least one atom
  uniqueness  distinct canonical SMILES / valid
  novelty     distinct canonical SMILES not in the (canonicalised) training
              set / distinct canonical SMILES
  quality     samples that are valid, the first occurrence of their molecule,
              drug-like (QED >= 0.6) and easy to synthesise (SA score <= 4),
              / samples (only when RDKit's SA_Score contribution is installed)
  length      the character-length distribution of the samples against the
              training data's: mean, standard deviation, total-variation
              distance between the two empirical distributions of exact
              lengths, and a table of frequencies in bins
"""
import argparse
import importlib.util
import json
import math
import os
import sys

QED_MIN = 0.6
SA_MAX = 4.0
SA_DIRS = ['/usr/share/RDKit/Contrib/SA_Score', '/usr/share/rdkit/Contrib/SA_Score']


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
    """Mean and population standard deviation (nan for no value)."""
    n = len(values)
    if n == 0:
        return float('nan'), float('nan')
    m = sum(values) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in values) / n)


def length_report(sample_lengths, ref_lengths, width):
    ps, pr = length_distribution(sample_lengths), length_distribution(ref_lengths)
    ms, ss = mean_std(sample_lengths)
    mr, sr = mean_std(ref_lengths)
    bins = sorted({k // width for k in ps} | {k // width for k in pr})
    table = []
    for b in bins:
        lo, hi = b * width, b * width + width - 1
        table.append([lo, hi, sum(v for k, v in ps.items() if lo <= k <= hi),
                      sum(v for k, v in pr.items() if lo <= k <= hi)])
    return {'mean': ms, 'std': ss, 'train_mean': mr, 'train_std': sr,
            'tv': total_variation(ps, pr), 'table': table}


def load_sascorer():
    for d in SA_DIRS:
        if os.path.isfile(os.path.join(d, 'sascorer.py')):
            sys.path.insert(0, d)
            try:
                import sascorer
                return sascorer
            except ImportError:
                return None
            finally:
                sys.path.pop(0)
    return None


def evaluate(samples, train, name='samples', bin_width=10, with_quality=True):
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog('rdApp.*')
    train = [s for s in train if s]

    def canonical(s):
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is None or mol.GetNumAtoms() == 0:
            return None, None
        return Chem.MolToSmiles(mol), mol

    train_canon = set()
    for s in train:
        c, _ = canonical(s)
        train_canon.add(c if c is not None else s)
    n = len(samples)
    first = {}  # canonical SMILES -> molecule, in order of first occurrence
    n_valid = 0
    for s in samples:
        c, mol = canonical(s)
        if c is None:
            continue
        n_valid += 1
        first.setdefault(c, mol)
    n_unique = len(first)
    n_novel = sum(1 for c in first if c not in train_canon)
    r = {'name': name, 'samples': n, 'empty': sum(1 for s in samples if not s),
         'valid': n_valid, 'unique': n_unique, 'novel': n_novel,
         'validity': n_valid / n if n else float('nan'),
         'uniqueness': n_unique / n_valid if n_valid else float('nan'),
         'novelty': n_novel / n_unique if n_unique else float('nan'),
         'quality': None, 'quality_count': None, 'qed_mean': None, 'sa_mean': None,
         'length': length_report([len(s) for s in samples], [len(s) for s in train], bin_width)}
    sascorer = load_sascorer() if with_quality else None
    if sascorer is not None:
        from rdkit.Chem import QED
        qed = {c: QED.qed(m) for c, m in first.items()}
        sa = {c: sascorer.calculateScore(m) for c, m in first.items()}
        good = sum(1 for c in first if qed[c] >= QED_MIN and sa[c] <= SA_MAX)
        r.update({'quality_count': good, 'quality': good / n if n else float('nan'),
                  'qed_mean': mean_std(list(qed.values()))[0], 'sa_mean': mean_std(list(sa.values()))[0]})
    return no_nan(r)


def no_nan(x):
    """JSON has no NaN: an undefined ratio (nothing to divide by) is null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [no_nan(v) for v in x]
    return x


def fmt(x, spec='.4f'):
    if x is None:
        return '-'
    return format(x, spec)


def print_report(r):
    print(f'{r["name"]}: {r["samples"]} samples ({r["empty"]} empty)')
    print(f'  validity    {fmt(r["validity"])}  ({r["valid"]} valid)')
    print(f'  uniqueness  {fmt(r["uniqueness"])}  ({r["unique"]} distinct molecules)')
    print(f'  novelty     {fmt(r["novelty"])}  ({r["novel"]} not in the training set)')
    if r['quality'] is not None:
        print(f'  quality     {fmt(r["quality"])}  ({r["quality_count"]} valid, unique, '
              f'QED >= {QED_MIN}, SA <= {SA_MAX}; mean QED {fmt(r["qed_mean"], ".3f")}, '
              f'mean SA {fmt(r["sa_mean"], ".2f")})')
    L = r['length']
    print(f'  length      mean {fmt(L["mean"], ".2f")} std {fmt(L["std"], ".2f")}  '
          f'(train: mean {L["train_mean"]:.2f} std {L["train_std"]:.2f});  total variation {L["tv"]:.4f}')
    print('    length    samples    train')
    for lo, hi, ps, pr in L['table']:
        print(f'    {lo:3d}-{hi:<3d}  {ps:8.4f} {pr:8.4f}')


def print_comparison(reports):
    rows = [('samples', 'samples', 'd'), ('validity', 'validity', '.4f'),
            ('uniqueness', 'uniqueness', '.4f'), ('novelty', 'novelty', '.4f'),
            ('quality', 'quality', '.4f'), ('qed_mean', 'mean QED', '.3f'), ('sa_mean', 'mean SA', '.2f')]
    names = [r['name'] for r in reports]
    w = max(10, *(len(x) for x in names))
    print(f'{"":14s}' + ''.join(f'{x:>{w + 2}s}' for x in names))
    for key, label, spec in rows:
        print(f'{label:14s}' + ''.join(f'{fmt(r.get(key), spec):>{w + 2}s}' for r in reports))
    for key, label in (('mean', 'length mean'), ('std', 'length std'), ('tv', 'length TV')):
        print(f'{label:14s}' + ''.join(f'{fmt(r["length"][key], ".3f"):>{w + 2}s}' for r in reports))
    r0 = reports[0]['length']
    print(f'(training data: length mean {r0["train_mean"]:.3f}, std {r0["train_std"]:.3f})')


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('samples', nargs='?', help='generated SMILES, one per line')
    ap.add_argument('train', nargs='?', help='training SMILES, one per line')
    ap.add_argument('--name', help='label of the samples (default: the file name)')
    ap.add_argument('--json', help="write the metrics to this file ('-': standard output)")
    ap.add_argument('--bin', type=int, default=10, help='width of the length table bins (default 10)')
    ap.add_argument('--no-quality', action='store_true', help='skip QED and SA scores')
    ap.add_argument('--compare', nargs='+', metavar='JSON', help='print a table of earlier --json outputs')
    args = ap.parse_args(argv)
    if args.compare:
        reports = []
        for path in args.compare:
            with open(path, encoding='utf-8') as f:
                reports.append(json.load(f))
        print_comparison(reports)
        return 0
    if not args.samples or not args.train or args.bin < 1:
        ap.error('SAMPLES and TRAIN are required (or --compare), and --bin must be positive')
    if importlib.util.find_spec('rdkit') is None:
        sys.exit('evaluate.py: RDKit is missing (apt-get install python3-rdkit rdkit-data)')
    r = evaluate(read_lines(args.samples), read_lines(args.train),
                 name=args.name or os.path.basename(args.samples), bin_width=args.bin,
                 with_quality=not args.no_quality)
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
