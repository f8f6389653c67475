#!/usr/bin/env python3
"""The length a FlexMDM star model expects before anything is placed.

    /usr/bin/python3 bench/learning/star_length.py \
        RUN/model.safetensors bench/out/learning/data/star-medium.valid.txt [--n 300] [--t 0.001]

For the first N examples of a conditional file (PROMPT<TAB>TARGET), asks the
model for its insertion rates on `[prompt] BOS EOS` at time t
(`lflex.Model.rates`) and turns the rate of the gap before EOS into the
expected number of target tokens: rate / hazard, with the hazard
b_in / (1 - t) of the model's fixed Kumaraswamy schedule (a = 1). Prints how
often that count, rounded, is the reference length, and the table of
(reference length, rounded count). Only for fixed schedules: a learned
schedule has no single hazard.
"""
import argparse
import collections
import math
import sys

import yaml

from star_order import examples, load


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model', help='a FlexMDM checkpoint with a fixed Kumaraswamy schedule, a = 1')
    ap.add_argument('data', help='a conditional file, PROMPT<TAB>TARGET per line')
    ap.add_argument('--n', type=int, default=300, help='examples to read (default 300)')
    ap.add_argument('--t', type=float, default=1e-3, help='time of the query (default 0.001)')
    args = ap.parse_args()

    lflex, model = load(args.model)
    sched = yaml.safe_load(model.config)['schedule']
    if sched['family'] != 'kumaraswamy' or sched['learn_b_in'] or sched['a'] != 1.0:
        sys.exit(f'{args.model}: needs a fixed Kumaraswamy schedule with a = 1')
    hazard = sched['b_in'] / (1 - args.t)
    table, right = collections.Counter(), 0
    for prompt, target in examples(args.data, args.n):
        length = len(model.encode(target))
        _, _, insert = model.rates(model.encode(prompt) + [lflex.BOS, lflex.EOS], args.t, token_probs=False)
        count = math.floor(insert[-1] / hazard + 0.5)
        table[(length, count)] += 1
        right += count == length
    print(f'{args.model}: the expected count at t = {args.t} rounds to the reference length '
          f'for {right} of {sum(table.values())} examples')
    print('reference length, rounded count: examples')
    for (length, count), k in sorted(table.items()):
        print(f'  {length:3d} {count:3d}: {k}')


if __name__ == '__main__':
    main()
