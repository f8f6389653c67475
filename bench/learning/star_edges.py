#!/usr/bin/env python3
"""How many of a star model's sampled pairs are edges of their prompt.

    /usr/bin/python3 bench/learning/star_edges.py [--ref TEST.txt] SAMPLES.txt...

SAMPLES.txt is a star job's samples file (run.py writes OUT/runs/TASK/
METHOD/samples.txt at every evaluation: `PROMPT<TAB>GENERATED` per test
prompt). Prints, per file, the share of generated pairs (`u v`, the target
read two tokens at a time) that are directed edges of the prompt, and the
share of consecutive pairs that chain (the second node of one is the first
of the next): whether the edge lookup has been learned, before any path is
right. With --ref (the task's test file, whose first lines the samples
answer, in order) also the share of answers of the reference's length and
their mean signed length error in tokens: with the lookup learned, a wrong
length is what is left.
"""
import sys

import tasks


def edge_stats(path):
    """(prompts, share of pairs that are prompt edges, share of neighbouring pairs that chain)."""
    n = pairs = edges = links = chained = 0
    with open(path, encoding='utf-8') as f:
        for line in f:
            prompt, tab, target = line.rstrip('\n').partition('\t')
            if not tab:
                continue
            p, t = prompt.split(), target.split()
            known = {(p[i], p[i + 1]) for i in range(0, len(p) - 2, 2)}  # the last two are source and goal
            pr = [(t[i], t[i + 1]) for i in range(0, len(t) - 1, 2)]
            n += 1
            pairs += len(pr)
            edges += sum(e in known for e in pr)
            links += max(len(pr) - 1, 0)
            chained += sum(pr[i][1] == pr[i + 1][0] for i in range(len(pr) - 1))
    return n, edges / max(pairs, 1), chained / max(links, 1)


def length_stats(path, ref_path):
    """(share of answers as long as the reference, mean answer length minus the reference's)."""
    ref = tasks.read_examples(ref_path)
    same = total = n = 0
    with open(path, encoding='utf-8') as f:
        for line, (_, r_prompt, r_target) in zip(f, ref):
            prompt, _, target = line.rstrip('\n').partition('\t')
            if prompt != r_prompt:
                raise ValueError(f'{path}: line {n + 1} answers another prompt than line {n + 1} of {ref_path}')
            d = len(target.split()) - len(r_target.split())
            same += d == 0
            total += d
            n += 1
    return same / max(n, 1), total / max(n, 1)


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip())
        return 0 if argv else 2
    ref = None
    if argv[0] == '--ref':
        if len(argv) < 3:
            print('star_edges.py: --ref needs the test file and at least one samples file', file=sys.stderr)
            return 2
        ref, argv = argv[1], argv[2:]
    for path in argv:
        try:
            n, e, c = edge_stats(path)
            lengths = length_stats(path, ref) if ref else None
        except OSError as err:
            print(f'star_edges.py: {err.filename}: {err.strerror}', file=sys.stderr)
            return 1
        except (ValueError, tasks.TaskError) as err:
            print(f'star_edges.py: {err}', file=sys.stderr)
            return 1
        line = f'{path}: {n} prompts, {100 * e:.1f} % of pairs are prompt edges, {100 * c:.1f} % of neighbours chain'
        if lengths:
            line += f', {100 * lengths[0]:.1f} % of the reference length (mean error {lengths[1]:+.2f} tokens)'
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
