#!/usr/bin/python3
"""Deterministic data of the learning benchmark.

    /usr/bin/python3 bench/learning/tasks.py [--data DIR] [--force] TASK...

Writes DIR/TASK.train.txt, TASK.valid.txt and TASK.test.txt (default DIR:
bench/out/learning/data): one example per line, `TARGET` or
`PROMPT<TAB>TARGET`. Files that already exist are kept (--force rewrites
them); every generator is seeded, so the files are always the same.

  copy, reverse, sort       3-6 letters of a-j (words tokenizer); the target is
                            the prompt, its reverse, or sorted. 50 000 / 500 /
                            1 000 examples, seeds 1 / 2 / 3
  star-easy, -medium, -hard build/examples/lflex-star LEVEL N SEED (50 000 seed 1,
                            500 seed 2, 1 000 seed 3); $STAR names the program
  star-parent               star-easy's prompts; the target is the goal's parent
                            alone (the one edge lookup every path is built from)
  star-hard-mix             star-hard's files, its training set mixed with
                            star-medium's 50 000 (labels mapped at random onto
                            star-hard's 56, per example; seed 5): a curriculum
                            without a schedule
  words                     examples/text/prepare.py (character level,
                            unconditional); its held-out words split
                            alternately into valid and test
  molecules                 examples/molecules/prepare.py (canonical SMILES,
                            character level, unconditional); held-out split
                            as for words
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.path.join(ROOT, 'bench', 'out', 'learning', 'data')
SPLITS = ('train', 'valid', 'test')

LETTERS = 'a b c d e f g h i j'.split()
SIZES = {'train': 50000, 'valid': 500, 'test': 1000}
SEEDS = {'train': 1, 'valid': 2, 'test': 3}
SEQ_TASKS = {'copy': lambda p: list(p), 'reverse': lambda p: p[::-1], 'sort': sorted}
STAR_TASKS = {'star-easy': 'easy', 'star-medium': 'medium', 'star-hard': 'hard'}
# tasks made from another task's lines: (source task, line -> line)
DERIVED_TASKS = {'star-parent': ('star-easy', lambda line: line.split('\t')[0] + '\t' + line.split()[-2]),
                 'star-last': ('star-easy', lambda line: line.split('\t')[0] + '\t' + ' '.join(line.split()[-2:]))}
# star-hard-mix: (hard task, easier task, label count, seed)
MIX_TASKS = {'star-hard-mix': ('star-hard', 'star-medium', 56, 5)}
TEXT_TASKS = {'words': ('examples/text/prepare.py', 'words'),
              'molecules': ('examples/molecules/prepare.py', 'molecules')}
TASKS = list(SEQ_TASKS) + list(STAR_TASKS) + list(DERIVED_TASKS) + list(MIX_TASKS) + list(TEXT_TASKS)


class TaskError(Exception):
    """A task's data cannot be made or read; the message says why."""


def paths(task, data_dir):
    return {s: os.path.join(data_dir, f'{task}.{s}.txt') for s in SPLITS}


def _seq_lines(task, split):
    rng = random.Random(SEEDS[split])
    out = []
    for _ in range(SIZES[split]):
        prompt = [rng.choice(LETTERS) for _ in range(rng.randint(3, 6))]
        out.append(' '.join(prompt) + '\t' + ' '.join(SEQ_TASKS[task](prompt)))
    return out


def _star_lines(level, split):
    star = os.environ.get('STAR') or os.path.join(ROOT, 'build', 'examples', 'lflex-star')
    if not os.access(star, os.X_OK):
        raise TaskError(f'no lflex-star program at {star} (build with `ninja -C build`, or set STAR)')
    r = subprocess.run([star, level, str(SIZES[split]), str(SEEDS[split])], capture_output=True, text=True)
    if r.returncode != 0:
        raise TaskError(f'{star} {level} failed (status {r.returncode}): {r.stderr.strip()}')
    return r.stdout.splitlines()


def _prepared_lines(task):
    """examples/*/prepare.py into a scratch directory: train, and its
    held-out lines split alternately into valid and test."""
    script, stem = TEXT_TASKS[task]
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, os.path.join(ROOT, script), tmp], capture_output=True, text=True)
        if r.returncode != 0:
            raise TaskError(f'{script} failed (status {r.returncode}): {(r.stderr or r.stdout).strip()}')
        lines = {}
        for split in ('train', 'valid'):
            with open(os.path.join(tmp, f'{stem}.{split}.txt'), encoding='utf-8') as f:
                lines[split] = f.read().splitlines()
    held = lines['valid']
    return {'train': lines['train'], 'valid': held[0::2], 'test': held[1::2]}


def _read_lines(path):
    with open(path, encoding='utf-8') as fh:
        return fh.read().splitlines()


def _mixed_lines(task, data_dir, force):
    """The hard task's files, its training lines mixed with the easier
    task's, whose node labels are mapped per example onto random distinct
    labels of the hard task's range."""
    hard, easy, n_labels, seed = MIX_TASKS[task]
    ph, pe = prepare(hard, data_dir, force), prepare(easy, data_dir, force)
    lines = {s: _read_lines(ph[s]) for s in SPLITS}
    easy_lines = _read_lines(pe['train'])
    rng = random.Random(seed)
    labels = sorted({x for line in easy_lines for x in line.split()}, key=int)
    for line in easy_lines:
        m = dict(zip(labels, map(str, rng.sample(range(n_labels), len(labels)))))
        prompt, target = line.split('\t')
        lines['train'].append(' '.join(m[x] for x in prompt.split()) + '\t' + ' '.join(m[x] for x in target.split()))
    rng.shuffle(lines['train'])
    return lines


def prepare(task, data_dir=DEFAULT_DATA, force=False):
    """Write the task's three files unless they exist; returns their paths."""
    if task not in TASKS:
        raise TaskError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
    p = paths(task, data_dir)
    if not force and all(os.path.isfile(x) for x in p.values()):
        return p
    if task in SEQ_TASKS:
        lines = {s: _seq_lines(task, s) for s in SPLITS}
    elif task in STAR_TASKS:
        lines = {s: _star_lines(STAR_TASKS[task], s) for s in SPLITS}
    elif task in DERIVED_TASKS:
        source, f = DERIVED_TASKS[task]
        src = prepare(source, data_dir, force)
        lines = {s: [f(x) for x in _read_lines(src[s])] for s in SPLITS}
    elif task in MIX_TASKS:
        lines = _mixed_lines(task, data_dir, force)
    else:
        lines = _prepared_lines(task)
    os.makedirs(data_dir, exist_ok=True)
    for s in SPLITS:  # written whole then renamed: a crash never leaves a short file
        tmp = p[s] + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.writelines(x + '\n' for x in lines[s])
        os.replace(tmp, p[s])
    return p


def read_examples(path):
    """(line number, prompt or None, target) of every non-blank line."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise TaskError(f'{path}: {e.strerror}') from None
    out = []
    for no, line in enumerate(text.split('\n'), 1):
        line = line.rstrip('\r')
        if line:
            prompt, tab, target = line.partition('\t')
            out.append((no, prompt, target) if tab else (no, None, line))
    return out


def tokenize(text, tokenizer):
    return text.split() if tokenizer == 'words' else [c for c in text if c not in '\t\r\n']


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('tasks', nargs='+', metavar='TASK', help=f"one of {', '.join(TASKS)}, or all")
    ap.add_argument('--data', default=DEFAULT_DATA, help='output directory (default %(default)s)')
    ap.add_argument('--force', action='store_true', help='rewrite existing files')
    args = ap.parse_args(argv)
    try:
        for task in (TASKS if args.tasks == ['all'] else args.tasks):
            p = prepare(task, args.data, args.force)
            counts = []
            for s in SPLITS:
                with open(p[s], encoding='utf-8') as f:
                    counts.append(f'{s} {sum(1 for _ in f)}')
            print(f"{task}: {', '.join(counts)} in {args.data}")
    except TaskError as e:
        sys.exit(f'tasks.py: {e}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
