#!/bin/sh
# Train FlexMDM and LFlexMDM on one star-graph level with the same CPU budget
# and print their exact match on held-out graphs, then the exact match of the
# periodic validation runs against training time (from each log.jsonl).
#
#   sh examples/star/run.sh LEVEL [SECONDS] [TEST_GRAPHS]
#
# LEVEL: easy, medium or hard; SECONDS: training time of each model
# (default 1800); TEST_GRAPHS: default 1000. Work files go to $WORK (default
# ./star-LEVEL). LFLEX and STAR name the programs (default: the build tree).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LFLEX=${LFLEX:-$root/build/examples/lflex/lflex}
STAR=${STAR:-$root/build/examples/lflex-star}
level=${1:-easy}
budget=${2:-1800}
n_test=${3:-1000}
work=${WORK:-$PWD/star-$level}
case $level in easy|medium|hard) ;; *) echo "usage: run.sh easy|medium|hard [SECONDS] [TEST_GRAPHS]" >&2; exit 2 ;; esac
mkdir -p "$work"
"$STAR" "$level" 50000 1 > "$work/train.txt"     # the paper trains on 50 000 graphs
"$STAR" "$level" 500 2 > "$work/valid.txt"
"$STAR" "$level" "$n_test" 3 > "$work/test.txt"
for method in flexmdm lflexmdm; do
    echo "== $level, $method: training for $budget s"
    "$LFLEX" train "$here/configs/${level}_$method.yaml" --quiet \
        --set data.train="$work/train.txt" --set data.valid="$work/valid.txt" \
        --set run.out="$work/$method" --set run.time_limit="$budget"
done
printf '\n%-8s %-9s %7s %12s %9s %9s\n' level method steps "exact match" "token acc" "seconds"
for method in flexmdm lflexmdm; do
    out=$("$LFLEX" eval "$work/$method/checkpoint.safetensors" "$work/test.txt" --n "$n_test" --steps 64)
    em=$(echo "$out" | sed -n 's/^exact match: *//p')
    ta=$(echo "$out" | sed -n 's/^token accuracy: *//p')
    last=$(grep '"loss"' "$work/$method/log.jsonl" | tail -n 1)
    steps=$(echo "$last" | sed 's/.*"step": \([0-9]*\).*/\1/')
    secs=$(echo "$last" | sed 's/.*"elapsed_s": \([0-9.]*\).*/\1/')
    printf '%-8s %-9s %7s %12s %9s %9s\n' "$level" "$method" "$steps" "$em" "$ta" "$secs"
done
# The curve: the periodic evaluations of the training runs (run.eval_examples
# validation graphs each, greedy), exact match against training time.
printf '\nduring training (validation graphs, greedy):\n%-9s %7s %9s %12s %9s\n' method step seconds "exact match" "token acc"
for method in flexmdm lflexmdm; do
    grep '"exact_match"' "$work/$method/log.jsonl" |
        sed 's/.*"step": \([0-9]*\).*"exact_match": \([0-9.]*\).*"token_acc": \([0-9.]*\).*"elapsed_s": \([0-9.]*\).*/\1 \4 \2 \3/' |
        awk -v m="$method" '{ printf "%-9s %7s %9s %11.1f%% %8.1f%%\n", m, $1, $2, 100 * $3, 100 * $4 }'
done
