#!/usr/bin/python3
"""examples/molecules: prepare.py and evaluate.py on small inputs whose
answers are worked out by hand. Exit status 77 (skipped) without RDKit."""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

try:
    from rdkit import Chem, RDLogger
except ImportError:
    print('RDKit is not installed: skipped')
    sys.exit(77)
RDLogger.DisableLog('rdApp.*')

TASK = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'examples', 'molecules')


def load(name):
    spec = importlib.util.spec_from_file_location('molecules_' + name, os.path.join(TASK, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


evaluate = load('evaluate')
prepare = load('prepare')

# Ethanol written as in the training file and otherwise; pyridine twice in
# two spellings; an unclosed ring and a pentavalent carbon.
TRAIN = ['CCO', 'c1ccccc1', 'CC(=O)O']
SAMPLES = ['OCC', 'C1CC', 'c1ccncc1', 'n1ccccc1', 'C(C)(C)(C)(C)C']


def write(path, lines, final_newline=True):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + ('\n' if final_newline else ''))


class Metrics(unittest.TestCase):
    def test_counts(self):
        r = evaluate.evaluate(SAMPLES, TRAIN, with_quality=False)
        # valid: OCC, c1ccncc1, n1ccccc1; distinct: ethanol, pyridine;
        # novel: pyridine (ethanol is CCO of the training set)
        self.assertEqual((r['samples'], r['valid'], r['unique'], r['novel']), (5, 3, 2, 1))
        self.assertAlmostEqual(r['validity'], 3 / 5)
        self.assertAlmostEqual(r['uniqueness'], 2 / 3)
        self.assertAlmostEqual(r['novelty'], 1 / 2)

    def test_training_set_is_canonicalised(self):
        r = evaluate.evaluate(['CCO'], ['OCC'], with_quality=False)
        self.assertEqual(r['novel'], 0)

    def test_empty_and_nothing_valid(self):
        r = evaluate.evaluate(['', 'C1CC'], TRAIN, with_quality=False)
        self.assertEqual((r['empty'], r['valid']), (1, 0))
        self.assertEqual(r['validity'], 0.0)
        # undefined ratios are null, not NaN (JSON has no NaN)
        self.assertIsNone(r['uniqueness'])
        self.assertIsNone(r['novelty'])
        json.dumps(r, allow_nan=False)

    def test_length_distribution(self):
        r = evaluate.evaluate(SAMPLES, TRAIN, with_quality=False)
        L = r['length']
        # sample lengths 3 4 8 8 14, training lengths 3 8 7:
        # TV = (|1/5 - 1/3| + 1/5 + 1/3 + |2/5 - 1/3| + 1/5) / 2 = 7/15
        self.assertAlmostEqual(L['tv'], 7 / 15)
        self.assertAlmostEqual(L['mean'], 37 / 5)
        self.assertAlmostEqual(L['std'], math.sqrt(75.2 / 5))
        self.assertAlmostEqual(L['train_mean'], 6.0)
        self.assertAlmostEqual(L['train_std'], math.sqrt(14 / 3))
        # bins of 10: samples 4/5 below 10 and 1/5 in 10-19; training all below 10
        self.assertEqual([row[:2] for row in L['table']], [[0, 9], [10, 19]])
        self.assertAlmostEqual(L['table'][0][2], 0.8)
        self.assertAlmostEqual(L['table'][1][2], 0.2)
        self.assertAlmostEqual(L['table'][0][3], 1.0)
        self.assertAlmostEqual(L['table'][1][3], 0.0)

    def test_total_variation_bounds(self):
        p = evaluate.length_distribution([1, 2, 2, 5])
        self.assertAlmostEqual(evaluate.total_variation(p, p), 0.0)
        self.assertAlmostEqual(evaluate.total_variation(p, evaluate.length_distribution([7, 8])), 1.0)

    def test_quality(self):
        if evaluate.load_sascorer() is None:
            self.skipTest("RDKit's SA_Score contribution is not installed")
        from rdkit.Chem import QED
        sascorer = evaluate.load_sascorer()
        ibuprofen = Chem.MolFromSmiles('CC(C)Cc1ccc(cc1)C(C)C(=O)O')
        ethanol = Chem.MolFromSmiles('CCO')
        # ibuprofen is drug-like and simple (QED 0.82), ethanol is not drug-like (QED 0.41)
        self.assertTrue(QED.qed(ibuprofen) >= 0.6 and sascorer.calculateScore(ibuprofen) <= 4)
        self.assertLess(QED.qed(ethanol), 0.6)
        # ibuprofen twice (counted once), ethanol, an invalid string
        samples = ['CC(C)Cc1ccc(cc1)C(C)C(=O)O', 'CC(C)Cc1ccc(C(C)C(O)=O)cc1', 'CCO', 'C1CC']
        r = evaluate.evaluate(samples, TRAIN)
        self.assertEqual(r['quality_count'], 1)
        self.assertAlmostEqual(r['quality'], 1 / 4)
        self.assertAlmostEqual(r['qed_mean'], (QED.qed(ibuprofen) + QED.qed(ethanol)) / 2)


class CommandLine(unittest.TestCase):
    def test_json_and_compare(self):
        with tempfile.TemporaryDirectory() as d:
            samples, train = os.path.join(d, 's.txt'), os.path.join(d, 't.txt')
            # an empty sample in the middle and no final newline: 6 samples
            write(samples, SAMPLES[:2] + [''] + SAMPLES[2:], final_newline=False)
            write(train, TRAIN + [''])
            out = subprocess.run([sys.executable, os.path.join(TASK, 'evaluate.py'), samples, train,
                                  '--json', '-', '--no-quality', '--name', 'm'],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            self.assertEqual((r['name'], r['samples'], r['empty'], r['valid']), ('m', 6, 1, 3))
            self.assertAlmostEqual(r['validity'], 3 / 6)
            j = os.path.join(d, 'm.json')
            with open(j, 'w', encoding='utf-8') as f:
                f.write(out)
            table = subprocess.run([sys.executable, os.path.join(TASK, 'evaluate.py'), '--compare', j, j],
                                   check=True, capture_output=True, text=True).stdout
            self.assertRegex(table, r'validity\s+0\.5000\s+0\.5000')


class Prepare(unittest.TestCase):
    # 10 distinct molecules of C, N, O (each of N and O in at least 4, so
    # that any 8 of them hold every character), one of them twice, one
    # unparsable, one too long for max_len 16
    SOURCE = ['CCO 1', 'CCN 2', 'CCCO', 'CCCN', 'COC', 'CNC', 'CCOC', 'OCCO', 'NCCN', 'CCNC',
              'OCC', 'C1CC', 'C' * 20]

    def run_prepare(self, d, out, seed):
        src = os.path.join(d, 'in.smi')
        write(src, self.SOURCE)
        j = os.path.join(d, 'summary.json')
        subprocess.run([sys.executable, os.path.join(TASK, 'prepare.py'), out, '--input', src,
                        '--max-len', '16', '--valid-fraction', '0.2', '--seed', str(seed), '--json', j],
                       check=True, capture_output=True, text=True)
        with open(j, encoding='utf-8') as f:
            summary = json.load(f)
        with open(os.path.join(out, 'molecules.train.txt'), encoding='utf-8') as f:
            train = f.read().splitlines()
        with open(os.path.join(out, 'molecules.valid.txt'), encoding='utf-8') as f:
            valid = f.read().splitlines()
        return summary, train, valid

    def test_prepare(self):
        with tempfile.TemporaryDirectory() as d:
            s, train, valid = self.run_prepare(d, os.path.join(d, 'a'), 1)
            self.assertEqual((s['read'], s['unparsable'], s['duplicates'], s['too_long'], s['kept']),
                             (13, 1, 1, 1, 10))
            self.assertEqual((len(train), len(valid), s['moved_to_train']), (8, 2, 0))
            expected = {Chem.MolToSmiles(Chem.MolFromSmiles(x.split()[0])) for x in self.SOURCE[:10]}
            self.assertEqual(set(train) | set(valid), expected)
            self.assertFalse(set(train) & set(valid))
            # the same seed gives the same split
            _, train2, valid2 = self.run_prepare(d, os.path.join(d, 'b'), 1)
            self.assertEqual((train, valid), (train2, valid2))

    def test_unseen_characters_join_training(self):
        train, valid, moved = prepare.move_unseen(['CCO'], ['CCN', 'CO'])
        self.assertEqual((train, valid, moved), (['CCO', 'CCN'], ['CO'], 1))


if __name__ == '__main__':
    unittest.main()
