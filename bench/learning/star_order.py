#!/usr/bin/env python3
"""The learned insertion order of a star-graph model, against the path's shape.

    /usr/bin/python3 bench/learning/star_order.py \
        RUN/model.safetensors bench/out/learning/data/star-hard.test.txt [--n 100]

For the first N examples of a star file (PROMPT<TAB>TARGET), asks the model
for the expected insertion time E[T_in] of every target token
(`lflex.Model.order`, prompt, BOS and EOS fixed) and prints its mean by the
signed distance of the token's node from the junction (the path node with
more than one outgoing edge: the centre the arms share; negative before it,
on the source's side, positive after it, where the node at +1 is the one
only look-ahead finds) and by the distance from the nearer end of the
path. A token of the edge (p_i, p_i+1) belongs to node i if it is the edge's
first token, to node i+1 if the second. The paper's claim for learned order
is a time that falls with the distance from the junction: generation starts
at the ends. A FlexMDM model gives one time for every token. The library is build/'s
unless LFLEX_LIBRARY names another.
"""
import argparse
import collections
import os
import statistics

import run
import tasks


def load(model_path):
    """The binding (liblflex of build/ unless LFLEX_LIBRARY names another) and the model."""
    os.environ.setdefault('LFLEX_LIBRARY', run.DEFAULT_LIBRARY)
    lflex = run.import_lflex()
    model = lflex.Model.load(model_path)
    model.set_threads(1)
    return lflex, model


def examples(path, n):
    """(prompt, target) of the first n examples of a conditional file."""
    return [(prompt, target) for _, prompt, target in tasks.read_examples(path)[:n]]


def junction(prompt_tokens, nodes):
    """Index in nodes of the first node with two or more outgoing edges, or None."""
    edges = prompt_tokens[:-2]  # the last two are the source and the goal
    out_degree = collections.Counter(edges[0::2])
    return next((i for i, v in enumerate(nodes) if out_degree[v] >= 2), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model', help='a checkpoint (model.safetensors of a run)')
    ap.add_argument('data', help='a star file, PROMPT<TAB>TARGET per line')
    ap.add_argument('--n', type=int, default=100, help='examples to read (default 100)')
    args = ap.parse_args()

    lflex, model = load(args.model)
    by_junction, by_end = collections.defaultdict(list), collections.defaultdict(list)
    used = 0
    for prompt, target in examples(args.data, args.n):
        ttoks = target.split()
        nodes = [ttoks[0]] + ttoks[1::2]
        j = junction(prompt.split(), nodes)
        if j is None:
            continue
        pid, tid = model.encode(prompt), model.encode(target)
        z = pid + [lflex.BOS] + tid + [lflex.EOS]
        fixed = [True] * (len(pid) + 1) + [False] * len(tid) + [True]
        _, _, times = model.order(z, fixed)
        for k, time in enumerate(times[len(pid) + 1:len(pid) + 1 + len(tid)]):
            node = k // 2 + k % 2
            by_junction[node - j].append(time)
            by_end[min(node, len(nodes) - 1 - node)].append(time)
        used += 1
    print(f'{args.model}: {used} paths of {args.data}')
    for title, table in (('signed distance from the junction', by_junction), ('distance from the nearer end', by_end)):
        print(f'mean E[T_in] by {title} (nodes):')
        for d in sorted(table):
            print(f'  {d:3d}  {statistics.mean(table[d]):.4f}  ({len(table[d])} tokens)')


if __name__ == '__main__':
    main()
