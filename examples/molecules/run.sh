#!/bin/sh
# Molecules: prepare the NCI set, train FlexMDM and LFlexMDM, sample from
# both, evaluate the samples and print a comparison table.
#
#   sh examples/molecules/run.sh
#
# Environment (all optional):
#   LFLEX         the lflex program (default build/examples/lflex, relative to
#                 the repository root; a build directory holding it also works)
#   PYTHON        Python with RDKit (default /usr/bin/python3)
#   WORK          where data/ and runs/ go (default: this directory)
#   MODELS        which configurations to run (default "flexmdm lflexmdm")
#   STEPS         optimiser steps (default: the configurations' run.steps)
#   TIME          training time limit of each model in seconds (default: none)
#   TRAIN=0       reuse the checkpoints in WORK/runs instead of training
#   N             molecules to sample from each model (default 1000)
#   SAMPLE_STEPS  sampler steps (default 128)
#   SEED          sampler seed (default 1)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LFLEX=${LFLEX:-build/examples/lflex}
case $LFLEX in
/*) ;;
*) LFLEX=$ROOT/$LFLEX ;;
esac
# meson puts the program in a directory of the same name
if [ -d "$LFLEX" ]; then LFLEX=$LFLEX/lflex; fi
PYTHON=${PYTHON:-/usr/bin/python3}
WORK=${WORK:-$HERE}
MODELS=${MODELS:-flexmdm lflexmdm}
STEPS=${STEPS:-}
TIME=${TIME:-}
TRAIN=${TRAIN:-1}
N=${N:-1000}
SAMPLE_STEPS=${SAMPLE_STEPS:-128}
SEED=${SEED:-1}
DATA=$WORK/data
RUNS=$WORK/runs

if [ ! -x "$LFLEX" ]; then
    echo "run.sh: no lflex program at $LFLEX (build it, or set LFLEX)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import rdkit' 2>/dev/null; then
    echo "run.sh: $PYTHON cannot import rdkit (apt-get install python3-rdkit rdkit-data)" >&2
    exit 1
fi

echo "== data"
"$PYTHON" "$HERE/prepare.py" "$DATA"
mkdir -p "$RUNS"

for m in $MODELS; do
    out=$RUNS/$m
    if [ "$TRAIN" != 0 ]; then
        echo "== train $m"
        set -- --set "data.train=$DATA/molecules.train.txt" --set "data.valid=$DATA/molecules.valid.txt" \
            --set "run.out=$out"
        if [ -n "$TIME" ]; then
            set -- "$@" --set "run.time_limit=$TIME"
        fi
        if [ -n "$STEPS" ]; then
            set -- "$@" --set "run.steps=$STEPS" --set "train.total_steps=$STEPS"
        fi
        start=$(date +%s)
        "$LFLEX" train "$HERE/$m.yaml" "$@" --quiet
        echo "$m: trained in $(($(date +%s) - start)) s"
    fi
    echo "== sample $m ($N molecules, $SAMPLE_STEPS steps)"
    start=$(date +%s)
    "$LFLEX" sample "$out/checkpoint.safetensors" --n "$N" --steps "$SAMPLE_STEPS" --seed "$SEED" >"$out/samples.txt"
    echo "$m: sampled in $(($(date +%s) - start)) s"
    "$PYTHON" "$HERE/evaluate.py" "$out/samples.txt" "$DATA/molecules.train.txt" --name "$m" \
        --json "$out/metrics.json" >"$out/metrics.txt"
    cat "$out/metrics.txt"
done

# The held-out molecules, evaluated as if they were samples: the values a
# perfect model would reach (and the length noise floor of a finite set).
"$PYTHON" "$HERE/evaluate.py" "$DATA/molecules.valid.txt" "$DATA/molecules.train.txt" --name valid-data \
    --json "$RUNS/valid-data.json" >/dev/null

echo "== comparison"
set -- "$RUNS/valid-data.json"
for m in $MODELS; do set -- "$@" "$RUNS/$m/metrics.json"; done
"$PYTHON" "$HERE/evaluate.py" --compare "$@" >"$RUNS/comparison.txt"
cat "$RUNS/comparison.txt"
