#!/bin/sh
# lflex export --weights-only: a smaller file that samples as the
# checkpoint does and cannot resume training. TAP output.
. "$(dirname "$0")/tiny.sh"

"$LFLEX" train tiny.yaml --quiet --set train.ema=0.9 --set run.out=ema 2> train.err
check "a tiny run with EMA trains" "[ $? -eq 0 ] && [ -s ema/checkpoint.safetensors ]"
C=ema/checkpoint.safetensors
"$LFLEX" export $C --weights-only w.safetensors 2> export.err
check "export --weights-only writes the EMA weights and says so" \
    "[ $? -eq 0 ] && [ \$(wc -l < export.err) -eq 1 ] && grep -q '^lflex: w.safetensors: the ema weights of step 6' export.err"
check "the file is smaller than the checkpoint (no optimiser state)" \
    "[ \$(wc -c < w.safetensors) -lt \$((\$(wc -c < $C) / 3)) ]"
"$LFLEX" sample $C --n 6 --steps 8 --seed 3 --temperature 1 > from_ckpt.txt &&
    "$LFLEX" sample w.safetensors --n 6 --steps 8 --seed 3 --temperature 1 > from_weights.txt
check "sampling from it gives the checkpoint's samples with the same seed" \
    "[ $? -eq 0 ] && [ \$(wc -l < from_ckpt.txt) -eq 6 ] && cmp -s from_ckpt.txt from_weights.txt"
# (the validation loss is that of the weights a file holds: the
# checkpoint's raw ones, the export's EMA ones; generation uses the EMA)
"$LFLEX" eval $C valid.txt --json > e1.json && "$LFLEX" eval w.safetensors valid.txt --json > e2.json
check "eval of it gives the checkpoint's exact match and token accuracy" \
    "[ $? -eq 0 ] && grep '_match\|_accuracy' e1.json > e1.gen && grep '_match\|_accuracy' e2.json > e2.gen && \
     [ \$(wc -l < e1.gen) -eq 2 ] && cmp -s e1.gen e2.gen"
"$LFLEX" export $C --weights-only raw.safetensors --raw 2> raw.err
check "--raw exports the raw weights, another file" \
    "[ $? -eq 0 ] && grep -q 'the raw weights of step 6' raw.err && ! cmp -s w.safetensors raw.safetensors && \
     \"$LFLEX\" sample raw.safetensors --n 2 --steps 4 > /dev/null"
"$LFLEX" train tiny.yaml --quiet --set run.out=plain --set run.steps=2 2> /dev/null
"$LFLEX" export plain/checkpoint.safetensors --weights-only plain.safetensors 2> plain.err
check "a checkpoint without EMA weights: the raw weights, with a line saying so" \
    "[ $? -eq 0 ] && grep -q 'keeps no EMA weights (train.ema is 0): exporting the raw weights' plain.err && [ -s plain.safetensors ]"

# where a full checkpoint is needed: one error line
"$LFLEX" train tiny.yaml --quiet --set run.out=ema --set run.steps=9 --resume w.safetensors 2> resume.err
check "--resume from a weights-only file is refused with one line saying why" \
    "[ $? -eq 1 ] && [ \$(wc -l < resume.err) -eq 1 ] && grep -q -- '^lflex: --resume w.safetensors: a weights-only file (ema weights, written by lflex export): it has no optimiser state' resume.err && ! grep -q '\"step\": 9' ema/log.jsonl"
"$LFLEX" export w.safetensors --weights-only w2.safetensors 2> again.err
check "exporting a weights-only file is an error" "[ $? -eq 1 ] && grep -q 'already a weights-only file (ema weights)' again.err"
"$LFLEX" export $C w3.safetensors 2> usage.err
check "export without --weights-only is a usage error" "[ $? -eq 2 ] && grep -q -- '--weights-only is needed' usage.err && [ ! -e w3.safetensors ]"
"$LFLEX" export missing.safetensors --weights-only w4.safetensors 2> missing.err
check "a missing checkpoint is one error line" "[ $? -eq 1 ] && [ \$(wc -l < missing.err) -eq 1 ] && [ ! -e w4.safetensors ]"

echo "1..$n"
exit $failed
