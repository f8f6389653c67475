#!/usr/bin/env python3
"""PNG plots of a run of `lflex train`, run by `lflex plot` (doc/cli.md).

    lflex-plot.py --log RUN/log.jsonl --out DIR [--order DIR/order.json]

Writes loss.png, validation.png (when the log has validation records),
lr.png and throughput.png from the log, and order.png from order.json (the
learned insertion order of an example, which `lflex plot` computes with the
model). Prints the path of every file written. An error is one line on
standard error and exit status 1. Needs matplotlib (python3-matplotlib);
draws with the Agg backend, so no display is needed.
"""
import argparse
import json
import math
import os
import sys


def fail(msg):
    sys.stderr.write("lflex: %s\n" % msg)
    sys.exit(1)


def read_log(path):
    """The training and validation records of a log.jsonl."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    train, valid = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except ValueError:
            fail("%s:%d: not a JSON record (a line cut short, or not the log of lflex train?)" % (path, n))
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            fail("%s:%d: a record without an integer \"step\" (not the log of lflex train?)" % (path, n))
        (valid if "valid_loss" in rec else train).append(rec)
    if not train and not valid:
        fail("%s: no records (has the run logged a step yet?)" % path)
    return train, valid


def series(records, key):
    """Steps and values of `key` (null, the log's non-finite values, is NaN)."""
    pts = [(r["step"], r[key]) for r in records if key in r]
    return [s for s, _ in pts], [math.nan if v is None else float(v) for _, v in pts]


def axes_of(ax, title, ylabel=None, legend=True):
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend()


def save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def curves(plt, path, title, records, keys, ylabel, extra=None):
    """One figure of the series `keys` (name -> label) against the step;
    `extra` adds (records, key, label) drawn dashed. None when nothing to draw."""
    drawn = [(records, k, label, "-") for k, label in keys if any(k in r for r in records)]
    drawn += [(recs, k, label, "--") for recs, k, label in extra or [] if any(k in r for r in recs)]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for recs, k, label, style in drawn:
        x, y = series(recs, k)
        ax.plot(x, y, style, marker="." if len(x) < 30 else None, label=label)
    axes_of(ax, title, ylabel, legend=len(drawn) > 1)
    return save(plt, fig, path)


def validation(plt, path, valid):
    if not valid:
        return None
    matched = any("exact_match" in r for r in valid)
    fig, axes = plt.subplots(1, 2 if matched else 1, figsize=(10 if matched else 7, 4.2), dpi=100, squeeze=False)
    ax = axes[0][0]
    for k, label in (("valid_loss", "validation loss"), ("valid_unmask", "unmask"), ("valid_insert", "insert")):
        ax.plot(*series(valid, k), marker=".", label=label)
    axes_of(ax, "validation loss")
    if matched:
        ax = axes[0][1]
        for k, label in (("exact_match", "exact match"), ("token_acc", "token accuracy")):
            x, y = series(valid, k)
            ax.plot(x, [100 * v for v in y], marker=".", label=label)
        ax.set_ylim(-2, 102)
        axes_of(ax, "generated targets", "%")
    return save(plt, fig, path)


def order(plt, path, order_path):
    """The heat map of order.json: a row per token, P(inserted by t)."""
    try:
        with open(order_path, encoding="utf-8") as f:
            o = json.load(f)
        tokens, t, rows = o["tokens"], o["t"], o["inserted"]
    except (OSError, ValueError, KeyError) as e:
        fail("%s: %s" % (order_path, e))
    if not tokens:
        fail("%s: the example has no token to insert" % order_path)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(tokens)), dpi=100)
    grid = [[math.nan if v is None else v for v in row] for row in rows]
    im = ax.imshow(grid, aspect="auto", origin="upper", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                   extent=(t[0], t[-1], len(tokens) - 0.5, -0.5))
    ax.plot([x["expected_t_in"] for x in tokens], range(len(tokens)), "w|", markersize=14, mew=2,
            label="expected insertion time")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels(["%s (%d%s)" % (x["token"], x["place"], "=" if x["tied"] else "") for x in tokens])
    ax.set_xlabel("t")
    kind = "learned" if o.get("learned_order") else "fixed schedule"
    ax.set_title("insertion order (%s): %s" % (kind, o.get("text", "").replace("\t", " | ")), fontsize=10)
    fig.colorbar(im, ax=ax, label="P(inserted by t)")
    ax.legend(loc="lower right", fontsize=8, facecolor="0.5")
    return save(plt, fig, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--order")
    a = ap.parse_args()
    train, valid = read_log(a.log)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # ImportError, or a broken installation
        fail("plot needs matplotlib for python3 (Debian: apt-get install python3-matplotlib): %s" % e)
    out = lambda name: os.path.join(a.out, name)
    try:
        written = plots(plt, out, train, valid, a.order)
    except OSError as e:
        fail("%s: %s" % (e.filename, e.strerror))
    for p in written:
        if p:
            print(p)


def plots(plt, out, train, valid, order_path):
    return [
        curves(plt, out("loss.png"), "training loss", train,
               [("loss", "loss"), ("unmask", "unmask"), ("insert", "insert"), ("reinforce", "reinforce"),
                ("reg", "regulariser")], "loss",
               extra=[(valid, "valid_loss", "validation loss")]),
        validation(plt, out("validation.png"), valid),
        curves(plt, out("lr.png"), "learning rate", train, [("lr", "learning rate")], "learning rate"),
        curves(plt, out("throughput.png"), "throughput", train, [("tokens_per_s", "tokens/s")], "tokens per second"),
        order(plt, out("order.png"), order_path) if order_path else None,
    ]


if __name__ == "__main__":
    main()
