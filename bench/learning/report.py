#!/usr/bin/python3
"""Markdown tables of the learning benchmark, for doc/results.md.

    /usr/bin/python3 bench/learning/report.py OUT_DIR [--png-dir doc] [--summary]

Reads OUT_DIR/results.csv (run.py) and prints, per task, one row per method
at every evaluation point: training seconds, steps, steps per second and the
task's metrics in percent, with the figure of the curves when --png-dir
holds learning-TASK.png. The numbers are those of the CSV, unrounded beyond
one decimal.
"""
import argparse
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import metrics_of  # noqa: E402

PERCENT = {'exact_match', 'token_acc', 'word_rate', 'new_word_rate', 'uniqueness', 'validity', 'novelty'}


def cell(metric, value):
    if value in ('', None):
        return '—'
    v = float(value)
    return f'{100 * v:.1f} %' if metric in PERCENT else f'{v:.2f}'


def summary(rows):
    tasks = list(dict.fromkeys(r['task'] for r in rows))
    methods = list(dict.fromkeys(r['method'] for r in rows))
    last = {}
    for r in rows:  # rows come in time order within a job
        last[(r['task'], r['method'])] = r
    print('| method | ' + ' | '.join(f'{t} ({metrics_of(t)[0]})' for t in tasks) + ' |')
    print('|---|' + '---:|' * len(tasks))
    for m in methods:
        cells = []
        for t in tasks:
            r = last.get((t, m))
            cells.append(f"{cell(metrics_of(t)[0], r.get(metrics_of(t)[0]))} ({r['steps']} steps)" if r else '—')
        print(f'| {m} | ' + ' | '.join(cells) + ' |')


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out_dir')
    ap.add_argument('--png-dir', default=None)
    ap.add_argument('--summary', action='store_true',
                    help='one table: the first metric of every task for each method, at its last evaluation point')
    args = ap.parse_args(argv)
    path = os.path.join(args.out_dir, 'results.csv')
    try:
        with open(path, newline='', encoding='utf-8') as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f'report.py: {path}: {e.strerror}')
    if args.summary:
        summary(rows)
        return
    for task in dict.fromkeys(r['task'] for r in rows):
        trows = [r for r in rows if r['task'] == task]
        metrics = [m for m in metrics_of(task) if any(r.get(m) for r in trows)]
        print(f'### {task}\n')
        print('| method | budget point | seconds | steps | steps/s | ' + ' | '.join(metrics) + ' |')
        print('|---|---:|---:|---:|---:|' + '---:|' * len(metrics))
        for r in trows:
            vals = ' | '.join(cell(m, r.get(m)) for m in metrics)
            print(f"| {r['method']} | {float(r['budget_s']):.0f} s | {float(r['seconds']):.0f} | {r['steps']} "
                  f"| {float(r['steps_per_s']):.1f} | {vals} |")
        png = os.path.join(args.png_dir, f'learning-{task}.png') if args.png_dir else None
        if png and os.path.exists(png):
            print(f'\n![{task}: metric against training seconds]({os.path.basename(png)})')
        print()


if __name__ == '__main__':
    main(sys.argv[1:])
