#!/usr/bin/env python3
"""Real-word rate of word samples by length, and at the data's lengths.

    /usr/bin/python3 bench/learning/words_by_length.py SAMPLES.txt... [--data DIR]

SAMPLES.txt: one sample per line (run.py's OUT/runs/words/METHOD/samples.txt,
or anyorder_words.py --samples). A sample is a real word when it is in the
words task's train, valid or test list, as run.py counts it. Prints each
file's rate, mean length, the rate at every length (real / samples), and
the rate reweighted to the training words' length distribution: models
whose samples are shorter or longer than the data's compared at the same
lengths (short words are real more often).
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('samples', nargs='+')
    ap.add_argument('--data', default=tasks.DEFAULT_DATA)
    a = ap.parse_args()
    words = {s: [t for _, _, t in tasks.read_examples(p)] for s, p in tasks.paths('words', a.data).items()}
    real = set(words['train']) | set(words['valid']) | set(words['test'])
    lengths = collections.Counter(len(w) for w in words['train'])
    total = sum(lengths.values())
    for path in a.samples:
        try:
            with open(path, encoding='utf-8') as f:
                samples = [line.rstrip('\n') for line in f]
        except OSError as e:
            sys.exit(f'words_by_length.py: {path}: {e.strerror}')
        if not samples:
            sys.exit(f'words_by_length.py: {path}: no samples')
        by = collections.defaultdict(lambda: [0, 0])  # length -> [real, samples]
        for w in samples:
            by[len(w)][0] += w in real
            by[len(w)][1] += 1
        rate = sum(r for r, _ in by.values()) / len(samples)
        at_data = sum(lengths[k] / total * by[k][0] / by[k][1] for k in lengths if by[k][1])
        covered = sum(lengths[k] / total for k in lengths if by[k][1])
        print(f'{path}: {len(samples)} samples, {100 * rate:.1f} % real words, mean length '
              f'{sum(map(len, samples)) / len(samples):.2f}; at the training lengths {100 * at_data:.1f} % '
              f'({100 * covered:.1f} % of them sampled)')
        print('  by length: ' + ' '.join(f'{k}: {by[k][0]}/{by[k][1]}' for k in sorted(by)))


if __name__ == '__main__':
    main()
