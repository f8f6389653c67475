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
at the ends. A FlexMDM model gives one time for every token.

It also prints what the order means for the states the generator trains on.
Every schedule of the library has the hazard b_i g(t) with one g for all
tokens, so G(T_i) (G the integral of g) is exponential with rate b_i: the
arrival order is a race, token i before token j with probability
b_i / (b_i + b_j), whatever a and g. A node arrives with its first token
(rate: the sum of its tokens' b). For the node at +1 the script prints the
probability that it arrives after both of its neighbours (the junction and
+2) and the mean share of the path's other nodes already there when it
arrives, both exact for the race, with the values a uniform order gives
(every b equal; 1/3 and 1/2 when the three nodes weigh the same) and a
Monte-Carlo check of the first path. The paper's mechanism (the node after
the junction decided last, between written neighbours) needs both near 1.
A model with a learned unmasking order (loss.unmask_order: learned) is
read through its race log-weights (`lflex.Model.unmask_log_weights`):
the tables give the mean log weight
instead of E[T_in] (large: clean early), and the race is the one that
decides which present tokens are clean.
The library is build/'s unless LFLEX_LIBRARY names another.
"""
import math
import argparse
import collections
import itertools
import random
import statistics

import run
import tasks


def load(model_path):
    """The binding (liblflex of build/ unless LFLEX_LIBRARY names another) and the model."""
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


def after_all(l_x, others):
    """P(an exponential of log-rate l_x exceeds every one of log-rates others):
    inclusion-exclusion, each term w_x / (w_x + sum) = 1 / (1 + sum of e^(l - l_x))."""
    return sum((-1) ** r / (1 + sum(math.exp(min(l - l_x, 700.0)) for l in sub))
               for r in range(len(others) + 1) for sub in itertools.combinations(others, r))


def neighbours(values, x):
    """The values of the nodes next to node x (one at an end of the path)."""
    return [values[i] for i in (x - 1, x + 1) if 0 <= i < len(values)]


def sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def race(logw, x):
    """For the node x of a race with node log-weights: P(x after both
    neighbours), and the mean share of the other nodes arrived before x
    (w / (w + w_x) = sigmoid(l - l_x): sharp orders do not underflow)."""
    share = statistics.mean(sigmoid(l - logw[x]) for i, l in enumerate(logw) if i != x)
    return after_all(logw[x], neighbours(logw, x)), share


def race_monte_carlo(logw, x, draws=20000, seed=1):
    """The two numbers of race() from sampled exponential arrival times,
    compared as their logs, log E - l (E a unit exponential)."""
    rng = random.Random(seed)
    last = share = 0
    for _ in range(draws):
        t = [math.log(rng.expovariate(1.0)) - l for l in logw]
        last += all(t[x] > u for u in neighbours(t, x))
        share += sum(u < t[x] for i, u in enumerate(t) if i != x) / (len(t) - 1)
    return last / draws, share / draws


def token_order(lflex, model, z, fixed):
    """Per token of z: (the race's log-weight, the value the tables average)
    and the name of that value: E[T_in] of a learned schedule (whose race
    weight is b_in), or the log weight of a learned unmasking order."""
    try:
        lw = model.unmask_log_weights(z, fixed)
        return lw, [0.0 if f else x for x, f in zip(lw, fixed)], 'log w (unmasking race)'
    except lflex.InvalidArgument:
        b_in, _, times = model.order(z, fixed)
        return [math.log(b) if b > 0 else -math.inf for b in b_in], times, 'E[T_in]'


def log_add(a, b):
    """log(e^a + e^b)."""
    if a == -math.inf:
        return b
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model', help='a checkpoint (model.safetensors of a run)')
    ap.add_argument('data', help='a star file, PROMPT<TAB>TARGET per line')
    ap.add_argument('--n', type=int, default=100, help='examples to read (default 100)')
    args = ap.parse_args()

    lflex, model = load(args.model)
    by_junction, by_end = collections.defaultdict(list), collections.defaultdict(list)
    races, uniform, check, what = [], [], None, 'E[T_in]'
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
        logw, times, what = token_order(lflex, model, z, fixed)
        first = len(pid) + 1
        # a node's log-weight: the log of its tokens' summed weights
        weights, ones = [-math.inf] * len(nodes), [-math.inf] * len(nodes)
        for k, time in enumerate(times[first:first + len(tid)]):
            node = k // 2 + k % 2
            by_junction[node - j].append(time)
            by_end[min(node, len(nodes) - 1 - node)].append(time)
            weights[node] = log_add(weights[node], logw[first + k])
            ones[node] = log_add(ones[node], 0.0)
        if j + 1 < len(nodes):
            races.append(race(weights, j + 1))
            uniform.append(race(ones, j + 1))
            if check is None:
                check = (race(weights, j + 1), race_monte_carlo(weights, j + 1))
        used += 1
    print(f'{args.model}: {used} paths of {args.data}')
    for title, table in (('signed distance from the junction', by_junction), ('distance from the nearer end', by_end)):
        print(f'mean {what} by {title} (nodes):')
        for d in sorted(table):
            print(f'  {d:3d}  {statistics.mean(table[d]):.4f}  ({len(table[d])} tokens)')
    if races:
        print(f'the node at +1 as a race of the nodes\' first arrivals ({len(races)} paths):')
        for title, rows in (('this model', races), ('uniform', uniform)):
            print(f'  {title}: after both neighbours {statistics.mean(r[0] for r in rows):.3f}, '
                  f'share of the other nodes before it {statistics.mean(r[1] for r in rows):.3f}')
        (p_last, p_share), (m_last, m_share) = check
        print(f'  first path, exact {p_last:.4f} / {p_share:.4f}, Monte Carlo {m_last:.4f} / {m_share:.4f}')


if __name__ == '__main__':
    main()
