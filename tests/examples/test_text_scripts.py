#!/usr/bin/python3
"""examples/text: prepare.py and evaluate.py on small inputs whose answers
are worked out by hand."""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

TASK = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'examples', 'text')


def load(name):
    spec = importlib.util.spec_from_file_location('text_' + name, os.path.join(TASK, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


evaluate = load('evaluate')

TRAIN = ['cat', 'dog', 'house']
EXTRA = ['tree']
# a training word twice, a held-out word, a non-word, an empty sample and an
# inflection that is in neither list
SAMPLES = ['cat', 'tree', 'xyz', 'cat', '', 'houses']


def write(path, lines, final_newline=True):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + ('\n' if final_newline else ''))


class Metrics(unittest.TestCase):
    def test_rates(self):
        r = evaluate.evaluate(SAMPLES, TRAIN, EXTRA)
        self.assertEqual((r['samples'], r['empty'], r['distinct']), (6, 1, 5))
        self.assertEqual((r['words'], r['in_train'], r['novel'], r['new_words']), (3, 2, 4, 1))
        self.assertAlmostEqual(r['word_rate'], 3 / 6)
        self.assertAlmostEqual(r['in_train_rate'], 2 / 6)
        self.assertAlmostEqual(r['novelty'], 4 / 6)
        self.assertAlmostEqual(r['new_word_rate'], 1 / 6)
        self.assertAlmostEqual(r['uniqueness'], 5 / 6)

    def test_length_distribution(self):
        L = evaluate.evaluate(SAMPLES, TRAIN, EXTRA)['length']
        # sample lengths 3 4 0 3 3 6 against training lengths 3 3 5:
        # |1/6 - 0| (0) + |3/6 - 2/3| (3) + 1/6 (4) + 1/3 (5) + 1/6 (6) = 1, TV = 1/2
        self.assertAlmostEqual(L['tv'], 0.5)
        self.assertAlmostEqual(L['mean'], 19 / 6)
        self.assertAlmostEqual(L['std'], math.sqrt(113) / 6)
        self.assertAlmostEqual(L['train_mean'], 11 / 3)
        self.assertAlmostEqual(L['train_std'], math.sqrt(8 / 9))
        table = {row[0]: row[1:] for row in L['table']}
        self.assertEqual(sorted(table), [0, 3, 4, 5, 6])
        self.assertAlmostEqual(table[3][0], 0.5)
        self.assertAlmostEqual(table[3][1], 2 / 3)
        self.assertAlmostEqual(table[5][0], 0.0)
        self.assertAlmostEqual(table[5][1], 1 / 3)

    def test_total_variation_bounds(self):
        p = evaluate.length_distribution([1, 2, 2, 5])
        self.assertAlmostEqual(evaluate.total_variation(p, p), 0.0)
        self.assertAlmostEqual(evaluate.total_variation(p, evaluate.length_distribution([7, 8])), 1.0)
        # shifting a quarter of the mass moves TV by a quarter
        q = evaluate.length_distribution([1, 2, 2, 6])
        self.assertAlmostEqual(evaluate.total_variation(p, q), 0.25)


class CommandLine(unittest.TestCase):
    def test_json_and_compare(self):
        with tempfile.TemporaryDirectory() as d:
            samples, train, extra = (os.path.join(d, x) for x in ('s.txt', 't.txt', 'w.txt'))
            write(samples, SAMPLES, final_newline=False)
            write(train, TRAIN + [''])
            write(extra, EXTRA)
            out = subprocess.run([sys.executable, os.path.join(TASK, 'evaluate.py'), samples, train,
                                  '--words', extra, '--json', '-', '--name', 'm'],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            self.assertEqual((r['name'], r['samples'], r['words'], r['new_words']), ('m', 6, 3, 1))
            self.assertAlmostEqual(r['length']['tv'], 0.5)
            j = os.path.join(d, 'm.json')
            with open(j, 'w', encoding='utf-8') as f:
                f.write(out)
            table = subprocess.run([sys.executable, os.path.join(TASK, 'evaluate.py'), '--compare', j, j],
                                   check=True, capture_output=True, text=True).stdout
            self.assertRegex(table, r'words\s+0\.5000\s+0\.5000')
            self.assertRegex(table, r'length TV\s+0\.500\s+0\.500')


class Prepare(unittest.TestCase):
    SOURCE = ['Apple', 'apple', 'apple', 'it', "cat's", '\u00e9lan', 'dog', 'house',
              'extraordinarily', 'tree', 'zebra', 'b']

    def run_prepare(self, d, out):
        src = os.path.join(d, 'words')
        write(src, self.SOURCE)
        j = os.path.join(d, 'summary.json')
        subprocess.run([sys.executable, os.path.join(TASK, 'prepare.py'), out, '--input', src,
                        '--valid-fraction', '0.2', '--seed', '3', '--json', j],
                       check=True, capture_output=True, text=True)
        with open(j, encoding='utf-8') as f:
            summary = json.load(f)
        parts = []
        for name in ('words.train.txt', 'words.valid.txt'):
            with open(os.path.join(out, name), encoding='utf-8') as f:
                parts.append(f.read().splitlines())
        return summary, parts[0], parts[1]

    def test_prepare(self):
        with tempfile.TemporaryDirectory() as d:
            s, train, valid = self.run_prepare(d, os.path.join(d, 'a'))
            # Apple, cat's, élan: not lowercase a-z; it, b: shorter than 3;
            # extraordinarily: longer than 12; the second apple: duplicate
            self.assertEqual(s['dropped'], {'not lowercase a-z': 3, 'too short': 2, 'too long': 1,
                                            'duplicate': 1})
            self.assertEqual((s['read'], s['kept'], len(train), len(valid)), (12, 5, 4, 1))
            self.assertEqual(set(train) | set(valid), {'apple', 'dog', 'house', 'tree', 'zebra'})
            self.assertFalse(set(train) & set(valid))
            self.assertEqual(s['lengths'], {'3': 1, '4': 1, '5': 3})
            _, train2, valid2 = self.run_prepare(d, os.path.join(d, 'b'))
            self.assertEqual((train, valid), (train2, valid2))


if __name__ == '__main__':
    unittest.main()
