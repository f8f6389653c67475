#!/usr/bin/python3
"""Learning benchmark: what each method reaches in a wall-clock training budget.

    /usr/bin/python3 bench/learning/run.py --tasks copy,words --methods flexmdm,lflexmdm,ar
        --budget 120 [--evals 4] [--jobs 1] [--threads 1] [--out bench/out/learning]
        [--n-test 500] [--n-samples 1000] [--sampler KEY=VALUE,...] [--seed 1] [--plots doc]

Every (task, method) job trains for --budget seconds of training time (the
evaluations are not counted) and is evaluated after budget/2^(evals-1), ...,
budget/2, budget seconds. Methods: `ar` (ar.py) and every METHOD with a file
methods/METHOD.yaml, merged over configs/TASK.yaml and run through the
library's Python binding. See README.md.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tasks  # noqa: E402

try:
    import yaml
except ImportError:
    sys.exit('run.py: PyYAML is missing (apt-get install python3-yaml)')

DEFAULT_OUT = os.path.join(ROOT, 'bench', 'out', 'learning')
DEFAULT_LIBRARY = os.path.join(ROOT, 'build', 'lib', 'liblflex.so')
UNCONDITIONAL_METRICS = {'words': ['word_rate', 'new_word_rate', 'uniqueness', 'mean_len'],
                         'molecules': ['validity', 'uniqueness', 'novelty']}
CONDITIONAL_METRICS = ['exact_match', 'token_acc']
METRICS = CONDITIONAL_METRICS + ['word_rate', 'new_word_rate', 'validity', 'uniqueness', 'novelty', 'mean_len']
COLUMNS = ['task', 'method', 'budget_s', 'seconds', 'steps', 'steps_per_s'] + METRICS + ['loss', 'eval_s',
                                                                                          'n_params']
NOT_MODEL_SECTIONS = ('run', 'sample', 'data')  # the benchmark's own sections of a task config


class BenchError(Exception):
    """A user-facing error; the message says what to fix."""


def metrics_of(task):
    return UNCONDITIONAL_METRICS.get(task, CONDITIONAL_METRICS)


# ---- configurations ------------------------------------------------------------

def read_yaml(path):
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise BenchError(f'{path}: {e.strerror}') from None
    except yaml.YAMLError as e:
        raise BenchError(f'{path}: not valid YAML: {e}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchError(f'{path}: must be a mapping of sections, not {type(data).__name__}')
    return data


def deep_merge(base, over):
    """base with over's keys; mappings are merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def methods_available():
    names = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, 'methods')) if f.endswith('.yaml'))
    return names + ([] if 'ar' in names else ['ar'])


def job_config(task, method):
    """configs/TASK.yaml with methods/METHOD.yaml merged over it (ar: the
    overlay is optional)."""
    cfg = read_yaml(os.path.join(HERE, 'configs', f'{task}.yaml'))
    overlay = os.path.join(HERE, 'methods', f'{method}.yaml')
    if os.path.isfile(overlay):
        cfg = deep_merge(cfg, read_yaml(overlay))
    return cfg


def parse_sampler(items):
    """--sampler KEY=VALUE[,KEY=VALUE] (repeatable) -> dict of YAML scalars."""
    out = {}
    for item in items:
        for kv in filter(None, item.split(',')):
            key, eq, value = kv.partition('=')
            if not eq or not key.strip():
                raise BenchError(f"--sampler: '{kv}' is not KEY=VALUE (e.g. confidence=top_prob)")
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ''
    return out


# ---- data ------------------------------------------------------------------------

def load_data(task, data_dir, cfg):
    """Every split as (prompt tokens or None, target tokens, prompt text,
    target text), the vocabulary (user tokens in id order) and the tokenizer,
    checked as the lflex program checks data files."""
    tokenizer = cfg.get('vocab', {}).get('tokenizer', 'words')
    max_len = int(cfg.get('model', {}).get('max_len', 128))
    files = tasks.paths(task, data_dir)
    raw = {s: tasks.read_examples(p) for s, p in files.items()}
    given = cfg.get('vocab', {}).get('tokens')
    if given:
        vocab = tasks.tokenize(given, tokenizer)
    else:
        vocab = sorted({x for _, p, t in raw['train'] for s in (p or '', t) for x in tasks.tokenize(s, tokenizer)})
    known = set(vocab)
    data = {}
    for split, rows in raw.items():
        if not rows:
            raise BenchError(f'{files[split]}: no example')
        out = []
        for no, p, t in rows:
            pt = tasks.tokenize(p, tokenizer) if p is not None else None
            tt = tasks.tokenize(t, tokenizer)
            where = f'{files[split]}:{no}'
            bad = [x for x in (pt or []) + tt if x not in known]
            if bad:
                raise BenchError(f'{where}: token {bad[0]!r} is not in the vocabulary (built from the training file)')
            if not tt:
                raise BenchError(f'{where}: the target is empty')
            n = (len(pt) + 1 if pt is not None else 0) + len(tt) + 1
            if n > max_len:
                raise BenchError(f'{where}: {n} tokens with BOS and EOS, longer than model.max_len {max_len}')
            out.append((pt, tt, p, t))
        data[split] = out
    conditional = {pt is not None for pt, *_ in data['train']}
    if len(conditional) != 1:
        raise BenchError(f"{files['train']}: mixes conditional (PROMPT<TAB>TARGET) and unconditional lines")
    return data, vocab, tokenizer, conditional.pop()


# ---- the library's methods ----------------------------------------------------------

def import_lflex():
    """The binding over build/'s liblflex unless LFLEX_LIBRARY names another."""
    os.environ.setdefault('LFLEX_LIBRARY', DEFAULT_LIBRARY)
    sys.path.insert(0, os.path.join(ROOT, 'examples', 'python'))
    try:
        import lflex
    except OSError as e:
        raise BenchError(f'cannot load liblflex ({e}); build it with `ninja -C build` or set LFLEX_LIBRARY') from None
    return lflex


class LflexTrainer:
    """A liblflex model driven through the ctypes binding."""

    def __init__(self, cfg, vocab, tokenizer, threads):
        self.lflex = import_lflex()
        mcfg = {k: v for k, v in cfg.items() if k not in NOT_MODEL_SECTIONS}
        mcfg = deep_merge(mcfg, {'vocab': {'tokens': (' ' if tokenizer == 'words' else '').join(vocab)},
                                 'train': {'threads': threads}})
        self.model = self.lflex.Model(mcfg)
        self.n_params = self.model.n_params
        self.skipped = 0

    def config_text(self):
        return self.model.config

    def save(self, path):
        self.model.save(path)

    def encode(self, text):
        return self.model.encode(text)

    def decode(self, ids):
        return self.model.decode([i for i in ids if i >= self.lflex.FIRST_USER])

    def item(self, prompt, target):
        """(ids, fixed): [prompt] BOS target EOS with prompt, BOS and EOS fixed."""
        L = self.lflex
        t = self.encode(target)
        if prompt is None:
            return t + [L.EOS], [False] * len(t) + [True]
        p = self.encode(prompt)
        return p + [L.BOS] + t + [L.EOS], [True] * (len(p) + 1) + [False] * len(t) + [True]

    def train_step(self, batch):
        try:
            return self.model.train_step([b[0] for b in batch], [b[1] for b in batch]).loss
        except self.lflex.NumericError:  # the step was not taken, as `lflex train` does
            self.skipped += 1
            return float('nan')

    def generate(self, prompts, opts, seed):
        """Target ids (without EOS) generated after each prompt (text or None)."""
        L = self.lflex
        tmpl = [[L.EOS] if p is None else self.encode(p) + [L.BOS, L.EOS] for p in prompts]
        with L.Sampler(self.model, **dict(opts, seed=seed)) as s:
            outs = s.generate_batch(tmpl)
        res = []
        for t, o in zip(tmpl, outs):
            g = o[len(t) - 1:]  # the prompt and BOS come first
            res.append(g[:-1] if g and g[-1] == L.EOS else g)
        return res

    def check_sampler(self, opts):
        import inspect
        allowed = [k for k in inspect.signature(self.lflex.Sampler).parameters if k not in ('self', 'model', 'progress')]
        bad = [k for k in opts if k not in allowed]
        if bad:
            raise BenchError(f"unknown sampler option '{bad[0]}' (options: {', '.join(allowed)})")


class ArAdapter:
    """ar.ArTrainer with the interface of LflexTrainer."""

    def __init__(self, cfg, vocab, tokenizer, threads):
        try:
            import ar
        except ImportError as e:
            raise BenchError(f'the ar method needs PyTorch ({e})') from None
        self.t = ar.ArTrainer(cfg, vocab, tokenizer, threads)
        self.n_params = self.t.n_params

    def config_text(self):
        return f'# ar.py, {self.n_params} parameters\n'

    def encode(self, text):
        return self.t.encode(text)

    def decode(self, ids):
        return self.t.decode(ids)

    def item(self, prompt, target):
        return (self.encode(prompt) if prompt is not None else None, self.encode(target))

    def train_step(self, batch):
        return self.t.train_step(batch)

    def generate(self, prompts, opts, seed):
        enc = [self.encode(p) if p is not None else None for p in prompts]
        # with candidates the baseline, like the library, samples several
        # answers and keeps the one it scores best: by its exact log-likelihood
        return self.t.generate(enc, float(opts.get('temperature', 1.0)), seed, bool(opts.get('use_ema', True)),
                               int(opts.get('batch_size', 64)), int(opts.get('candidates', 1)),
                               str(opts.get('candidate_score', 'sum')))

    def save(self, path):
        """The weights (and EMA) as a PyTorch file beside PATH: model.pt."""
        self.t.save(os.path.splitext(path)[0] + '.pt')

    def check_sampler(self, opts):
        pass  # only temperature, candidates, candidate_score, use_ema and batch_size apply


def load_trainer(cfg, vocab, tokenizer, job_dir, baseline=False):
    """The trainer of a finished job with the model it saved in JOB_DIR:
    model.safetensors, or model.pt for the baseline."""
    if baseline:
        trainer = ArAdapter(cfg, vocab, tokenizer, 1)
        trainer.t.load(os.path.join(job_dir, 'model.pt'))
    else:
        trainer = LflexTrainer(cfg, vocab, tokenizer, 1)
        trainer.model = trainer.lflex.Model.load(os.path.join(job_dir, 'model.safetensors'))
    return trainer


# ---- evaluation ------------------------------------------------------------------------

def load_module(name, path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def word_report(samples, data):
    """examples/text/evaluate.py's report of word samples: a sample is a real
    word when it is in the task's train, valid or test list."""
    ev = load_module('text_evaluate', os.path.join(ROOT, 'examples', 'text', 'evaluate.py'))
    return ev.evaluate(samples, [t for _, _, _, t in data['train']],
                       [t for s in ('valid', 'test') for _, _, _, t in data[s]])


def evaluate(trainer, task, data, conditional, spec, opts):
    """The task's metrics and the generated lines."""
    if conditional:
        test = data['test'][:spec['n_test']]
        refs = [trainer.encode(t) for _, _, _, t in test]
        gots = trainer.generate([p for _, _, p, _ in test], opts, spec['seed'])
        exact = sum(g == r for g, r in zip(gots, refs)) / len(refs)
        acc = sum(sum(a == b for a, b in zip(g, r)) / len(r) for g, r in zip(gots, refs)) / len(refs)
        lines = [f'{p}\t{trainer.decode(g)}' for (_, _, p, _), g in zip(test, gots)]
        return {'exact_match': exact, 'token_acc': acc}, lines
    samples = [trainer.decode(g) for g in trainer.generate([None] * spec['n_samples'], opts, spec['seed'])]
    train = [t for _, _, _, t in data['train']]
    if task == 'molecules':
        ev = load_module('molecules_evaluate', os.path.join(ROOT, 'examples', 'molecules', 'evaluate.py'))
        r = ev.evaluate(samples, train, with_quality=False)
        return {k: r[k] for k in ('validity', 'uniqueness', 'novelty')}, samples
    r = word_report(samples, data)
    return {'word_rate': r['word_rate'], 'new_word_rate': r['new_word_rate'], 'uniqueness': r['uniqueness'],
            'mean_len': r['length']['mean']}, samples


# ---- one job (a subprocess) -----------------------------------------------------------------

def worker(spec_path):
    with open(spec_path, encoding='utf-8') as f:
        spec = json.load(f)
    task, method, job_dir = spec['task'], spec['method'], os.path.dirname(spec_path)
    cfg = job_config(task, method)
    if spec.get('train_seed') is not None:
        cfg = deep_merge(cfg, {'train': {'seed': spec['train_seed']}, 'run': {'seed': spec['train_seed']}})
    data, vocab, tokenizer, conditional = load_data(task, spec['data'], cfg)
    opts = deep_merge(cfg.get('sample', {}), spec['sampler'])
    Trainer = ArAdapter if method == 'ar' else LflexTrainer
    trainer = Trainer(cfg, vocab, tokenizer, spec['threads'])
    trainer.check_sampler(opts)
    with open(os.path.join(job_dir, 'config.yaml'), 'w', encoding='utf-8') as f:
        f.write(trainer.config_text())
    t0 = time.perf_counter()
    items = [trainer.item(p, t) for _, _, p, t in data['train']]
    print(f'{task} {method}: {trainer.n_params} parameters, {len(items)} training examples '
          f'(encoded in {time.perf_counter() - t0:.1f} s), vocabulary {len(vocab)}, sampler {opts}', flush=True)

    budget, n_eval = spec['budget'], spec['evals']
    points = [budget / 2 ** (n_eval - 1 - i) for i in range(n_eval)]
    batch_size = int(cfg.get('run', {}).get('batch_size', 32))
    rng = random.Random(int(cfg.get('run', {}).get('seed', 1)))
    order, at = [], 0
    train_s, steps, losses, k = 0.0, 0, [], 0
    n_snap = spec.get('snapshots', 0) if hasattr(trainer, 'save') else 0
    snaps = [budget * (i + 1) / (n_snap + 1) for i in range(n_snap)]  # checkpoints between the evaluations
    rows_path = os.path.join(job_dir, 'results.jsonl')
    open(rows_path, 'w').close()
    while k < len(points):
        t0 = time.perf_counter()
        batch = []
        while len(batch) < batch_size:  # shuffled passes over the data
            if at == len(order):
                order, at = list(range(len(items))), 0
                rng.shuffle(order)
            batch.append(items[order[at]])
            at += 1
        losses.append(trainer.train_step(batch))
        train_s += time.perf_counter() - t0
        steps += 1
        while snaps and train_s >= snaps[0]:
            trainer.save(os.path.join(job_dir, f'model-{snaps.pop(0):.0f}s.safetensors'))
        while k < len(points) and train_s >= points[k]:
            t1 = time.perf_counter()
            metrics, lines = evaluate(trainer, task, data, conditional, spec, opts)
            ok = [x for x in losses if x == x]
            row = dict(task=task, method=method, budget_s=points[k], seconds=train_s, steps=steps,
                       steps_per_s=steps / train_s, loss=sum(ok) / len(ok) if ok else None,
                       eval_s=time.perf_counter() - t1, n_params=trainer.n_params, **metrics)
            with open(rows_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(row) + '\n')
            with open(os.path.join(job_dir, 'samples.txt'), 'w', encoding='utf-8') as f:
                f.writelines(x + '\n' for x in lines)
            print(f'{task} {method}: {train_s:.1f} s, step {steps}, loss {row["loss"]}, '
                  + ', '.join(f'{m} {v:.4f}' for m, v in metrics.items() if v is not None)
                  + f' (evaluated in {row["eval_s"]:.1f} s)', flush=True)
            losses, k = [], k + 1
    if getattr(trainer, 'skipped', 0):
        print(f'{task} {method}: {trainer.skipped} steps skipped (non-finite loss)')
    if hasattr(trainer, 'save'):  # for reeval.py or `lflex eval` with other sampler settings
        trainer.save(os.path.join(job_dir, 'model.safetensors'))
    return 0


# ---- the driver ---------------------------------------------------------------------------

def run_jobs(jobs, n_parallel, threads):
    """Runs (task, method, spec_path, job_dir) workers, n_parallel at a time;
    returns {(task, method): exit status}."""
    env = dict(os.environ, **{v: str(threads) for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')})
    pending, running, status = list(jobs), {}, {}
    try:
        while pending or running:
            while pending and len(running) < n_parallel:
                task, method, spec_path, job_dir = pending.pop(0)
                log = open(os.path.join(job_dir, 'log.txt'), 'w', encoding='utf-8')
                proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--worker', spec_path],
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                running[proc] = (task, method, log, time.time())
                print(f'started  {task} {method} (log: {log.name})', flush=True)
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                task, method, log, t0 = running.pop(proc)
                log.close()
                status[task, method] = proc.returncode
                word = 'finished' if proc.returncode == 0 else f'FAILED (status {proc.returncode})'
                print(f'{word} {task} {method} in {time.time() - t0:.0f} s', flush=True)
                if proc.returncode:
                    with open(log.name, encoding='utf-8', errors='replace') as f:
                        tail = f.read().splitlines()[-8:]
                    print('  ' + '\n  '.join(tail), flush=True)
    except KeyboardInterrupt:
        for proc in running:
            proc.terminate()
        raise
    return status


def fmt(v):
    if v is None or v == '':
        return '-'
    if isinstance(v, float):
        return f'{v:.1f}' if abs(v) >= 10 else f'{v:.3f}'
    return str(v)


def print_table(rows, task_order):
    for task in task_order:
        trows = [r for r in rows if r['task'] == task]
        if not trows:
            continue
        cols = ['method', 'budget_s', 'seconds', 'steps', 'steps_per_s'] + metrics_of(task)
        table = [cols] + [[fmt(r.get(c)) for c in cols] for r in trows]
        widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
        print(f'\n{task}')
        for line in table:
            print('  ' + '  '.join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(line, widths))))


def csv_value(v):
    return '' if v is None else f'{v:.6g}' if isinstance(v, float) else v


def write_csv(path, new_rows, replaced):
    """results.csv: this run's rows, and the earlier rows of the (task,
    method) pairs this run did not replace (a failed job keeps its old rows)."""
    old = []
    if os.path.isfile(path):
        with open(path, newline='', encoding='utf-8') as f:
            old = [r for r in csv.DictReader(f) if (r.get('task'), r.get('method')) not in replaced]
    rows = old + new_rows
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + extra, restval='')
        w.writeheader()
        for r in rows:
            w.writerow({k: csv_value(v) for k, v in r.items()})
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--tasks', help=f"comma-separated: {', '.join(tasks.TASKS)}, or all")
    ap.add_argument('--methods', default='flexmdm,lflexmdm,ar',
                    help='comma-separated: ar and the names of methods/*.yaml (default %(default)s)')
    ap.add_argument('--budget', type=float, default=120, help='training seconds of each job (default %(default)s)')
    ap.add_argument('--evals', type=int, default=4, help='evaluations, geometrically spaced up to the budget')
    ap.add_argument('--jobs', type=int, default=1, help='jobs run side by side (default %(default)s)')
    ap.add_argument('--threads', type=int, default=1, help='threads of each job (default %(default)s)')
    ap.add_argument('--out', default=DEFAULT_OUT, help='output directory (default %(default)s)')
    ap.add_argument('--data', help='data directory (default OUT/data)')
    ap.add_argument('--n-test', type=int, default=500, help='test examples of conditional tasks (default 500)')
    ap.add_argument('--n-samples', type=int, default=1000, help='samples of unconditional tasks (default 1000)')
    ap.add_argument('--sampler', action='append', default=[], metavar='KEY=VALUE,...',
                    help='sampler options over the task config\'s sample section, e.g. confidence=top_prob')
    ap.add_argument('--seed', type=int, default=1, help='seed of the evaluation sampler (default 1)')
    ap.add_argument('--train-seed', type=int, metavar='N',
                    help="training seed of every job (train.seed and run.seed: initialisation, noise and data "
                         "order), over the method's")
    ap.add_argument('--snapshots', type=int, default=0, metavar='N',
                    help='also save each library model at N evenly spaced training times '
                         '(RUN/model-SECONDSs.safetensors, for star_order.py and reeval.py)')
    ap.add_argument('--plots', metavar='DIR', help='draw DIR/learning-TASK.png at the end (plot.py)')
    ap.add_argument('--worker', metavar='SPEC', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        if args.worker:
            return worker(args.worker)
        return drive(args)
    except (BenchError, tasks.TaskError) as e:
        print(f'run.py: {e}', file=sys.stderr)
        return 1
    except Exception as e:  # a worker's library or PyTorch error: the traceback, then one clear line
        if not args.worker:
            raise
        import traceback
        traceback.print_exc()
        print(f'run.py: {type(e).__name__}: {e}', file=sys.stderr)
        return 1


def drive(args):
    if not args.tasks:
        raise BenchError('--tasks is required, e.g. --tasks copy,words')
    task_list = tasks.TASKS if args.tasks == 'all' else [t for t in args.tasks.split(',') if t]
    method_list = [m for m in args.methods.split(',') if m]
    known = methods_available()
    for t in task_list:
        if t not in tasks.TASKS:
            raise BenchError(f"unknown task '{t}' (tasks: {', '.join(tasks.TASKS)})")
        if not os.path.isfile(os.path.join(HERE, 'configs', f'{t}.yaml')):
            raise BenchError(f'no configs/{t}.yaml')
    for m in method_list:
        if m not in known:
            raise BenchError(f"unknown method '{m}' (methods: {', '.join(known)}; add methods/{m}.yaml)")
    if not task_list or not method_list:
        raise BenchError('no task or no method given')
    if not args.budget > 0 or args.evals < 1 or args.jobs < 1 or args.threads < 1 or args.snapshots < 0:
        raise BenchError('--budget must be positive; --evals, --jobs and --threads at least 1; --snapshots at '
                         'least 0')
    if args.n_test < 1 or args.n_samples < 1:
        raise BenchError('--n-test and --n-samples must be at least 1')
    sampler = parse_sampler(args.sampler)
    if any(m != 'ar' for m in method_list):
        lib = os.environ.setdefault('LFLEX_LIBRARY', DEFAULT_LIBRARY)
        if not os.path.isfile(lib):
            raise BenchError(f'no liblflex at {lib}: build it with `ninja -C build` or set LFLEX_LIBRARY')
    if 'molecules' in task_list:
        import importlib.util
        if importlib.util.find_spec('rdkit') is None:
            raise BenchError('the molecules task needs RDKit (apt-get install python3-rdkit rdkit-data)')

    out = os.path.abspath(args.out)
    data_dir = os.path.abspath(args.data or os.path.join(out, 'data'))
    for t in task_list:
        tasks.prepare(t, data_dir)
    jobs = []
    for t in task_list:
        for m in method_list:
            job_dir = os.path.join(out, 'runs', t, m)
            os.makedirs(job_dir, exist_ok=True)
            spec = dict(task=t, method=m, data=data_dir, budget=args.budget, evals=args.evals,
                        threads=args.threads, n_test=args.n_test, n_samples=args.n_samples, sampler=sampler,
                        seed=args.seed, train_seed=args.train_seed, snapshots=args.snapshots)
            spec_path = os.path.join(job_dir, 'spec.json')
            with open(spec_path, 'w', encoding='utf-8') as f:
                json.dump(spec, f, indent=1)
            jobs.append((t, m, spec_path, job_dir))
    print(f'{len(jobs)} jobs, {args.budget:g} s of training each, {args.jobs} at a time, '
          f'{args.threads} thread(s) each; output in {out}', flush=True)
    status = run_jobs(jobs, args.jobs, args.threads)

    rows = []
    for t, m, _, job_dir in jobs:
        path = os.path.join(job_dir, 'results.jsonl')
        if status.get((t, m)) == 0 and os.path.isfile(path):
            with open(path, encoding='utf-8') as f:
                rows += [json.loads(x) for x in f if x.strip()]
    print_table(rows, task_list)
    csv_path = os.path.join(out, 'results.csv')
    write_csv(csv_path, rows, {k for k, s in status.items() if s == 0})
    print(f'\nwrote {csv_path}')
    if args.plots:
        r = subprocess.run([sys.executable, os.path.join(HERE, 'plot.py'), out, args.plots])
        if r.returncode:
            print('run.py: plot.py failed', file=sys.stderr)
            return 1
    failed = [f'{t} {m}' for (t, m), s in status.items() if s]
    if failed:
        print(f"run.py: failed: {', '.join(failed)} (see the logs in {os.path.join(out, 'runs')})", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
