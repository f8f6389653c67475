#!/usr/bin/python3
"""Learning curves of the learning benchmark.

    /usr/bin/python3 bench/learning/plot.py OUT_DIR DOC_DIR

Reads OUT_DIR/results.csv (run.py) and writes DOC_DIR/learning-TASK.png for
every task in it: one panel per metric of the task, the metric against
training seconds (log scale), one line per method.
"""
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv):
    if len(argv) != 2:
        sys.exit('usage: plot.py OUT_DIR DOC_DIR')
    out_dir, doc_dir = argv
    path = os.path.join(out_dir, 'results.csv')
    try:
        with open(path, newline='', encoding='utf-8') as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f'plot.py: {path}: {e.strerror}')
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        sys.exit('plot.py: matplotlib is missing (apt-get install python3-matplotlib)')
    from run import metrics_of  # the metric columns of each task

    os.makedirs(doc_dir, exist_ok=True)
    for task in dict.fromkeys(r['task'] for r in rows):
        trows = [r for r in rows if r['task'] == task]
        metrics = [m for m in metrics_of(task) if any(r.get(m) for r in trows)]
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for method in dict.fromkeys(r['method'] for r in trows):
                pts = sorted((float(r['seconds']), float(r[metric])) for r in trows
                             if r['method'] == method and r.get(metric))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', label=method)
            ax.set_xscale('log')
            ticks = sorted({float(r['budget_s']) for r in trows})
            ax.set_xticks(ticks)
            ax.set_xticklabels([f'{x:g}' for x in ticks])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel('training seconds')
            ax.set_title(metric.replace('_', ' '))
            ax.grid(True, alpha=0.3)
        axes[0][0].legend()
        fig.suptitle(task)
        fig.tight_layout()
        png = os.path.join(doc_dir, f'learning-{task}.png')
        fig.savefig(png, dpi=100)
        plt.close(fig)
        print(f'wrote {png}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
