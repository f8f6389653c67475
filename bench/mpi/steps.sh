#!/bin/sh
# Steps per second of `lflex train` with 1 process and with N ranks under
# mpirun on this machine, and what the reduction costs per step
# (doc/distributed.md).
#
#   sh bench/mpi/steps.sh LFLEX [RANKS] [STEPS] [D_MODEL] [LAYERS]
#
# LFLEX: a program built with -Dmpi (build-mpi/examples/lflex/lflex).
# Prints one line per run: processes, threads per process, steps/s, and
# for several ranks the bytes and milliseconds of the reduction per step.
set -eu
lflex=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ranks=${2:-2}; steps=${3:-40}; d=${4:-128}; layers=${5:-4}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cd "$dir"
i=0
while [ $i -lt 2000 ]; do # words of 3 to 8 letters and their reverse
    w=$(printf '%s' "$i" | md5sum | tr -d '0-9' | cut -c1-$((3 + i % 6)))
    printf '%s\t%s\n' "$(echo "$w" | sed 's/./& /g; s/ $//')" "$(echo "$w" | rev | sed 's/./& /g; s/ $//')"
    i=$((i + 1))
done > train.txt
cat > bench.yaml <<YAML
model: {d_model: $d, n_heads: 4, n_layers: $layers, max_len: 20}
vocab: {tokenizer: words}
data: {train: train.txt}
run: {steps: $steps, batch_size: 32, out: out, log_every: $steps}
YAML
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rate() { # steps/s from the log's last record
    python3 -c "import json,sys; r=[json.loads(l) for l in open('out/log.jsonl')][-1]; print('%.2f' % (r['step'] / r['elapsed_s']))"
}
for threads in 1 $ranks; do
    rm -rf out
    "$lflex" train bench.yaml --quiet --set train.threads=$threads 2>/dev/null
    echo "1 process, $threads threads: $(rate) steps/s"
done
rm -rf out
mpirun -np "$ranks" --oversubscribe --bind-to none "$lflex" train bench.yaml --quiet --set train.threads=1 2> err.txt
echo "$ranks ranks, 1 thread each: $(rate) steps/s; $(grep 'processes:' err.txt | sed 's/^lflex: //')"
