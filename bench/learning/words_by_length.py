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
import run as R  # noqa: E402
import tasks  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('samples', nargs='+')
    ap.add_argument('--data', default=tasks.DEFAULT_DATA)
    a = ap.parse_args()
    data = R.load_data('words', a.data, R.job_config('words', 'ar'))[0]
    lengths = collections.Counter(len(t) for _, _, _, t in data['train'])
    total = sum(lengths.values())
    for path in a.samples:
        try:
            with open(path, encoding='utf-8') as f:
                samples = [line.rstrip('\n') for line in f]
        except OSError as e:
            sys.exit(f'words_by_length.py: {path}: {e.strerror}')
        if not samples:
            sys.exit(f'words_by_length.py: {path}: no samples')
        groups = collections.defaultdict(list)
        for w in samples:
            groups[len(w)].append(w)
        # length -> [real, samples]; a real word as run.py counts it
        by = collections.defaultdict(lambda: [0, 0], {k: [R.word_report(g, data)['words'], len(g)]
                                                      for k, g in groups.items()})
        rate = sum(r for r, _ in by.values()) / len(samples)
        at_data = sum(lengths[k] / total * by[k][0] / by[k][1] for k in lengths if by[k][1])
        covered = sum(lengths[k] / total for k in lengths if by[k][1])
        print(f'{path}: {len(samples)} samples, {100 * rate:.1f} % real words, mean length '
              f'{sum(map(len, samples)) / len(samples):.2f}; at the training lengths {100 * at_data:.1f} % '
              f'({100 * covered:.1f} % of them sampled)')
        print('  by length: ' + ' '.join(f'{k}: {by[k][0]}/{by[k][1]}' for k in sorted(by)))


if __name__ == '__main__':
    main()
