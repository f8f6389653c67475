#!/usr/bin/python3
"""`lflex train` under mpirun on loopback (built with -Dmpi). TAP output.

    test_mpi_train.py LFLEX MPIRUN

1. Two ranks give the weights, optimiser moments and random stream of one
   process over the same global batches (same seed, same data order), and
   the same loss and gradient norm at every step.
2. Only rank 0 logs and saves.
3. A run of two ranks resumed by one process, and one resumed by two
   ranks, equal the one-process run.
4. A rank killed with SIGKILL makes mpirun and the other rank exit
   non-zero within the timeout instead of hanging.
5. A rank that fails (its data file is missing) stops the other one.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python"))
import safetensors_check  # noqa: E402

LFLEX, MPIRUN = os.path.abspath(sys.argv[1]), sys.argv[2]
TIMEOUT = 60
STEPS = 8
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_rmaps_base_oversubscribe="1")
# train.eps 1e-3: with the default 1e-8 AdamW turns a gradient at the level
# of rounding into a full step of lr times its sign, so summing the same
# gradients in another order could move a weight by 2 lr; with 1e-3 the
# weights compare the summed gradients (tests/lflex/test_shard.c)
CONFIG = """model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}
train: {lr: 3.0e-3, warmup: 2, threads: 1, clip: 1.0, eps: 1.0e-3}
vocab: {tokenizer: words}
data:
  train: train.txt
run:
  steps: 8
  batch_size: 5
  out: out
  log_every: 1
  seed: 3
"""

n = 0
failed = False


def report(ok, what):
    global n, failed
    n += 1
    failed |= not ok
    print(f"{'ok' if ok else 'not ok'} {n} - {what}", flush=True)


def mpirun(np_, args):
    return [MPIRUN, "-np", str(np_), "--oversubscribe", LFLEX] + args


def train(out, steps, np_=1, resume=None):
    args = ["train", "tiny.yaml", "--quiet", "--set", f"run.out={out}", "--set", f"run.steps={steps}"]
    if resume:
        args += ["--resume", f"{resume}/checkpoint.safetensors"]
    cmd = mpirun(np_, args) if np_ > 1 else [LFLEX] + args
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode:
        print(f"# {' '.join(cmd)}: status {p.returncode}\n# " + p.stderr.replace("\n", "\n# "))
    return p


def compare(a, b):
    """The largest difference of the float tensors; None when the tensor
    names, shapes or the checkpoint's step and random state differ."""
    x = safetensors_check.read(f"{a}/checkpoint.safetensors")
    y = safetensors_check.read(f"{b}/checkpoint.safetensors")
    if x.tensors.keys() != y.tensors.keys():
        return None
    for key in ("lflex.step", "lflex.rng"):
        if x.metadata[key] != y.metadata[key]:
            print(f"# {key}: {x.metadata[key]} against {y.metadata[key]}")
            return None
    worst = 0.0
    for name, t in x.tensors.items():
        u = y[name]
        if t.shape != u.shape:
            return None
        worst = max([worst] + [abs(p - q) for p, q in zip(t.values(), u.values())])
    return worst


def log_records(out):
    with open(f"{out}/log.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def same_log(a, b):
    ra, rb = log_records(a), log_records(b)
    if [r["step"] for r in ra] != [r["step"] for r in rb]:
        return False
    for p, q in zip(ra, rb):
        for key in ("loss", "unmask", "insert", "grad_norm"):
            if abs(p[key] - q[key]) > 1e-4 * (1 + abs(q[key])):
                print(f"# step {p['step']}: {key} {p[key]} against {q[key]}")
                return False
    return True


def descendants(pid):
    """Every process below pid (children first)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent:
                found.append(int(entry))
                todo.append(int(entry))
    return found


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        return int(env.get(b"OMPI_COMM_WORLD_RANK", b"-1"))
    except (OSError, ValueError):
        return -1


def wait_for_step(out, proc):
    t0 = time.time()
    while time.time() - t0 < TIMEOUT and proc.poll() is None:
        if os.path.exists(f"{out}/log.jsonl") and os.path.getsize(f"{out}/log.jsonl") > 0:
            return True
        time.sleep(0.05)
    return False


def finish(proc):
    """The exit status, or None when it did not end within the timeout
    (it is then killed, with every process below it)."""
    try:
        return proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        for pid in descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        proc.wait()
        return None


def main():
    os.chdir(tempfile.mkdtemp(prefix="lflex-mpi-"))
    lines = ["p q\ta b c", "q p\tc b a", "p p\ta a", "q q\tb c a b", "p\tc c b"]
    with open("train.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines[i % 5] for i in range(47)) + "\n")
    with open("tiny.yaml", "w", encoding="utf-8") as f:
        f.write(CONFIG)

    one = train("one", STEPS)
    two = train("two", STEPS, np_=2)
    ok = one.returncode == 0 and two.returncode == 0
    diff = compare("one", "two") if ok else None
    print(f"# 2 ranks against 1 process after {STEPS} steps: max |difference| {diff}")
    report(diff is not None and diff <= 1e-5,
           "two ranks give the weights, moments and random state of one process over the same batches")
    report(ok and same_log("one", "two"), "two ranks log the loss and gradient norm of one process at every step")
    report(ok and two.stderr.count("lflex: done") == 1 and len(log_records("two")) == STEPS,
           "only rank 0 writes the log and reports")

    half = STEPS // 2
    r1 = train("a", half, np_=2)
    r2 = train("a", STEPS, resume="a") if r1.returncode == 0 else r1
    diff = compare("one", "a") if r2.returncode == 0 else None
    report(diff is not None and diff <= 1e-5, f"a run of 2 ranks resumed by 1 process equals 1 process (max {diff})")
    r1 = train("b", half)
    r2 = train("b", STEPS, np_=2, resume="b") if r1.returncode == 0 else r1
    diff = compare("one", "b") if r2.returncode == 0 else None
    report(diff is not None and diff <= 1e-5, f"a run of 1 process resumed by 2 ranks equals 1 process (max {diff})")

    # a rank killed while training
    proc = subprocess.Popen(mpirun(2, ["train", "tiny.yaml", "--quiet", "--set", "run.out=kill",
                                       "--set", "run.steps=100000000"]),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = wait_for_step("kill", proc)
    victims = [p for p in descendants(proc.pid) if rank_of(p) == 1]
    if started and victims:
        os.kill(victims[0], signal.SIGKILL)
    t0 = time.time()
    status = finish(proc)
    left = [p for p in descendants(proc.pid) if rank_of(p) >= 0]
    print(f"# killed rank 1 ({victims}); mpirun exited with {status} after {time.time() - t0:.1f} s")
    report(started and bool(victims) and status not in (None, 0) and not left,
           "a rank killed with SIGKILL makes mpirun and the other rank exit non-zero")

    # a rank that fails: its training file is missing
    cmd = [MPIRUN, "-np", "1", "--oversubscribe", LFLEX, "train", "tiny.yaml", "--quiet", "--set", "run.out=fail",
           ":", "-np", "1", LFLEX, "train", "tiny.yaml", "--quiet", "--set", "run.out=fail",
           "--set", "data.train=missing.txt"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = finish(proc)
    err = proc.stderr.read() if proc.stderr else ""
    print(f"# rank 1 without data: mpirun exited with {status} after {time.time() - t0:.1f} s")
    report(status not in (None, 0) and "missing.txt" in err, "a rank that fails stops the other one")

    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
