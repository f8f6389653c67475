#!/usr/bin/env python3
"""How far a star model traces a path in one pass, with the rest of the answer given.

    /usr/bin/python3 bench/learning/star_lookup.py \
        RUN/model.safetensors bench/out/learning/data/star-hard.test.txt [--n 60] [--span K] [--t T]

For the first N examples of a star file (PROMPT<TAB>TARGET), masks K
consecutive inner nodes of the reference path (both tokens of each: a node
p_i is written twice, at answer positions 2i - 1 and 2i), leaves every
other token of the answer clean, and asks the model for its token
distributions at time T (`lflex.Model.rates`). A masked token is right when
its most probable label is the reference's. Prints the accuracy by hops, the
number of lookups from the nearest clean node of the answer to the masked
one (1: its parent or child is given), and separately for the node that
follows the junction (the one lookup a forward trace cannot make). With K 1
every masked node is one lookup away: whether the edge lookup is learned;
larger K shows how many lookups the network chains in one pass, which is
what a length decided in the first sampler steps needs. The library is
build/'s unless LFLEX_LIBRARY names another.
"""
import argparse
import collections

import star_order


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model', help='a checkpoint (model.safetensors of a run)')
    ap.add_argument('data', help='a star file, PROMPT<TAB>TARGET per line')
    ap.add_argument('--n', type=int, default=60, help='examples to read (default 60)')
    ap.add_argument('--span', type=int, default=1, help='consecutive nodes masked (default 1)')
    ap.add_argument('--t', type=float, default=0.9, help='the time asked at (default 0.9)')
    args = ap.parse_args()
    if args.span < 1 or not 0 <= args.t < 1:
        ap.error('--span must be at least 1 and --t in [0, 1)')

    lflex, model = star_order.load(args.model)
    by_hops = collections.defaultdict(lambda: [0, 0])
    after_junction = [0, 0]
    for prompt, target in star_order.examples(args.data, args.n):
        ttoks = target.split()
        nodes = [ttoks[0]] + ttoks[1::2]
        j = star_order.junction(prompt.split(), nodes)
        pid, tid = model.encode(prompt), model.encode(target)
        base = len(pid) + 1  # the answer's first position (after BOS)
        for first in range(1, len(nodes) - args.span):  # the source and the goal stay clean
            masked = range(first, first + args.span)
            x = pid + [lflex.BOS] + tid + [lflex.EOS]
            for i in masked:
                x[base + 2 * i - 1] = x[base + 2 * i] = lflex.MASK
            probs, _, _ = model.rates(x, args.t)
            for i in masked:
                hops = min(i - first + 1, first + args.span - i)
                for pos in (base + 2 * i - 1, base + 2 * i):
                    row = probs[pos]
                    ok = max(range(len(row)), key=row.__getitem__) == tid[2 * i]
                    by_hops[hops][0] += ok
                    by_hops[hops][1] += 1
                    if j is not None and i == j + 1:
                        after_junction[0] += ok
                        after_junction[1] += 1
    print(f'{args.model}: span {args.span}, t {args.t}, {args.n} examples of {args.data}')
    for h in sorted(by_hops):
        right, total = by_hops[h]
        print(f'  {h} lookup(s) from a given node: {100 * right / total:5.1f} % of {total} masked tokens')
    if after_junction[1]:
        print(f'  the node after the junction: {100 * after_junction[0] / after_junction[1]:5.1f} % '
              f'of {after_junction[1]} masked tokens')


if __name__ == '__main__':
    main()
