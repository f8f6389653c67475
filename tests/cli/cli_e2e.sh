#!/bin/sh
# The lflex program end to end on a tiny task: train (with validation,
# checkpoints, log), resume, interrupt, sample, eval, order, rates, and the
# error paths. TAP output.
. "$(dirname "$0")/tiny.sh"

"$LFLEX" train tiny.yaml --quiet > train.out 2> train.err
check "train exits 0" "[ $? -eq 0 ]"
check "train writes a checkpoint, the log and the config" \
    "[ -s out/checkpoint.safetensors ] && [ -s out/log.jsonl ] && grep -q 'vocab' out/config.yaml"
check "the log has step records and validation records with exact match" \
    "grep -q '\"step\": 6, \"loss\"' out/log.jsonl && grep -q '\"exact_match\"' out/log.jsonl"
check "the vocabulary was built from the data (sorted)" "grep -q 'tokens: \"a b c p q\"' out/config.yaml"
# the saved config is typed the same in YAML 1.1 readers (PyYAML): every
# plain scalar that looks like a number reads as a number (1e-08 would be a
# string there; the library writes 1.0e-08), and it reads back unchanged
yaml11_typed() {
    /usr/bin/python3 - "$1" <<'PY'
import sys, yaml
def walk(node, bad):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            walk(v, bad)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            walk(v, bad)
    elif node.style is None:
        try:
            float(node.value.replace('_', ''))
        except ValueError:
            return
        if not node.tag.endswith((':float', ':int')):
            bad.append(node.value)
text = open(sys.argv[1]).read()
bad = []
walk(yaml.compose(text), bad)
reals = [v for k, v in yaml.safe_load(text).get('train', {}).items() if isinstance(v, float)]
if bad or not reals:
    sys.exit('not numbers to PyYAML: %s' % ', '.join(bad))
PY
}
if /usr/bin/python3 -c 'import yaml' 2> /dev/null; then
    check "every real in the saved config is a float to PyYAML" "yaml11_typed out/config.yaml"
else
    ok "every real in the saved config is a float to PyYAML # SKIP no python3-yaml"
fi
here=$(pwd -P) # the paths are real paths
check "the saved config holds the data, run and sample sections, paths absolute" \
    "grep -q \"^  train: $here/train.txt\\\$\" out/config.yaml && grep -q \"^  valid: $here/valid.txt\\\$\" out/config.yaml && \
     grep -q \"^  out: $here/out\\\$\" out/config.yaml && grep -q '^  eval_examples: 8\$' out/config.yaml && \
     grep -q '^sample:\$' out/config.yaml && grep -q '^  temperature: 0\$' out/config.yaml"
(cd / && "$LFLEX" train "$dir/out/config.yaml" --quiet --set run.out="$dir/out_again" 2> "$dir/again.err")
check "the saved config, from another directory, trains the run again bit for bit" \
    "[ $? -eq 0 ] && cmp -s out/checkpoint.safetensors out_again/checkpoint.safetensors && \
     grep -v '^  out: ' out/config.yaml > c1.yaml && grep -v '^  out: ' out_again/config.yaml > c2.yaml && cmp -s c1.yaml c2.yaml"
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=out_chars --set vocab.tokenizer=char 2> chars.err
check "--set vocab.tokenizer=char over the file's tokenizer builds a vocabulary of characters" \
    "[ $? -eq 0 ] && grep -q 'tokens: \" abcpq\"' out_chars/config.yaml"
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=runs/new/deep > deep.out 2>&1
check "train creates the missing parents of run.out" "[ $? -eq 0 ] && [ -s runs/new/deep/checkpoint.safetensors ]"

"$LFLEX" train tiny.yaml --quiet --set run.steps=9 --resume out/checkpoint.safetensors 2> resume.err
check "resume continues to the new step count" "[ $? -eq 0 ] && grep -q '\"step\": 9, \"loss\"' out/log.jsonl"

# exact resume: 20 steps, then on to 40, is 40 steps at once, bit for bit:
# the batch order (saved next to each checkpoint) continues where it was
# (60 examples in batches of 4: the resume falls inside the second pass)
same_ckpt() { # same_ckpt A B: the same tensors, step and random state
    if [ -x /usr/bin/python3 ]; then
        /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop('__metadata__', {})
    data = b[8 + n:]
    return meta, {k: data[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in header.items()}
(ma, ta), (mb, tb) = read(sys.argv[1]), read(sys.argv[2])
bad = sorted(k for k in set(ta) | set(tb) if ta.get(k) != tb.get(k))
bad += [k for k in ('lflex.step', 'lflex.rng', 'lflex.config') if ma.get(k) != mb.get(k)]
if bad or not ta:
    sys.exit('%s and %s differ: %s' % (sys.argv[1], sys.argv[2], ', '.join(bad[:5])))
PY
    else
        cmp -s "$1" "$2"
    fi
}
exact="--quiet --set run.save_every=7 --set run.eval_every=5 --set run.log_every=1"
"$LFLEX" train tiny.yaml $exact --set run.steps=40 --set run.out=straight 2> straight.err
"$LFLEX" train tiny.yaml $exact --set run.steps=20 --set run.out=halves 2> halves.err
check "a checkpoint's batch order is saved next to it" \
    "grep -q '\"step\": 20' halves/checkpoint.safetensors.data-order.json && grep -q '\"position\": 20' halves/checkpoint.safetensors.data-order.json"
"$LFLEX" train tiny.yaml $exact --set run.steps=40 --set run.out=halves --resume halves/checkpoint.safetensors 2>> halves.err
check "20 steps then a resume to 40 give the weights of 40 steps at once" \
    "[ $? -eq 0 ] && ! grep -q warning halves.err && same_ckpt straight/checkpoint.safetensors halves/checkpoint.safetensors"
"$LFLEX" sample straight/checkpoint.safetensors --n 4 --steps 8 --seed 3 > straight.txt
"$LFLEX" sample halves/checkpoint.safetensors --n 4 --steps 8 --seed 3 > halves.txt
check "and the same samples" "[ -s straight.txt ] && cmp -s straight.txt halves.txt"
cp straight/checkpoint.safetensors lone.safetensors
"$LFLEX" train tiny.yaml --quiet --set run.steps=42 --set run.out=lone --resume lone.safetensors 2> lone.err
check "a checkpoint without its batch order resumes with a warning" \
    "[ $? -eq 0 ] && grep -q 'warning: .*lone.safetensors.data-order.json: No such file.*starts again from run.seed' lone.err"
for key in seed batch_size; do
    "$LFLEX" train tiny.yaml --quiet --set run.steps=42 --set run.$key=5 --set run.out=halves \
        --resume halves/checkpoint.safetensors 2> resume_$key.err
    check "run.$key cannot change on resume" \
        "[ $? -eq 1 ] && grep -q '^lflex: run.$key: 5 differs from [0-9]*, that of the checkpoint' resume_$key.err"
done
printf 'p q\ta b\n' >> train_more.txt; cat train.txt >> train_more.txt
"$LFLEX" train tiny.yaml --quiet --set run.steps=42 --set data.train=train_more.txt --set run.out=halves \
    --resume halves/checkpoint.safetensors 2> resume_data.err
check "other training examples on resume: a warning, the batch order starts again" \
    "[ $? -eq 0 ] && grep -q 'warning: train_more.txt holds other examples than the checkpoint.s run was trained on (61, it had 60)' resume_data.err"

# --set on resume: the learning rate's schedule and the run's intervals
# change; the model's other keys are the checkpoint's and are refused
"$LFLEX" train tiny.yaml --quiet --set run.steps=6 --set run.log_every=1 --set run.eval_every=0 --set run.out=reset 2> /dev/null
"$LFLEX" train tiny.yaml --quiet --set run.steps=12 --set run.log_every=3 --set run.eval_every=0 --set run.out=reset \
    --set train.lr=1e-4 --set train.warmup=0 --resume reset/checkpoint.safetensors 2> reset.err
check "--set train.lr and train.warmup apply on resume" \
    "[ $? -eq 0 ] && grep -q '\"step\": 6, .*\"lr\": 0.003,' reset/log.jsonl && grep -q '\"step\": 9, .*\"lr\": 0.0001,' reset/log.jsonl \
     && grep -q '^  lr: 0.0001' reset/config.yaml && grep -q '^  warmup: 0' reset/config.yaml"
check "--set run.log_every applies on resume" \
    "! grep -q '\"step\": \\(7\\|8\\|10\\|11\\),' reset/log.jsonl && grep -q '\"step\": 12,' reset/log.jsonl"
check "resuming with --set leaves no copy of the checkpoint behind" "[ \$(ls -A reset | wc -l) -eq 4 ]"
"$LFLEX" train tiny.yaml --quiet --set run.steps=14 --set run.out=reset --set train.lr_schedule=cosine \
    --set train.total_steps=14 --set train.min_lr_ratio=0.5 --resume reset/checkpoint.safetensors 2> reset2.err
check "--set train.lr_schedule, total_steps, min_lr_ratio apply on resume" \
    "[ $? -eq 0 ] && grep -q '\"step\": 14, .*\"lr\": 5e-05,' reset/log.jsonl"
for kv in model.d_model=32 vocab.tokens=a schedule.family=linear train.ema=0.9 aux.n_layers=2; do
    "$LFLEX" train tiny.yaml --quiet --set run.steps=20 --set run.out=reset --set $kv \
        --resume reset/checkpoint.safetensors 2> reset_bad.err
    check "--set ${kv%%=*} on resume is refused, naming the key" \
        "[ $? -eq 1 ] && [ \$(wc -l < reset_bad.err) -eq 1 ] && grep -q -- '^lflex: --set ${kv%%=*}: a resumed run cannot change it' reset_bad.err \
         && ! grep -q '\"step\": 15' reset/log.jsonl"
done
# model keys of the file on resume: not ignored unawares
sed 's/d_model: 16/d_model: 32/' tiny.yaml > wider.yaml
"$LFLEX" train wider.yaml --quiet --set run.steps=20 --set run.out=reset --resume reset/checkpoint.safetensors 2> wider.err
check "a model key of the file that differs from the checkpoint's is refused on resume, with its place" \
    "[ $? -eq 1 ] && [ \$(wc -l < wider.err) -eq 1 ] && grep -q \"^lflex: wider.yaml:1:9: model.d_model: 32 differs from 16, the checkpoint's: a resumed run cannot change it\" wider.err \
     && ! grep -q '\"step\": 15' reset/log.jsonl"
sed 's/^model: {/model: {d_modle: 16, /' tiny.yaml > unknown.yaml
"$LFLEX" train unknown.yaml --quiet --set run.steps=20 --set run.out=reset --resume reset/checkpoint.safetensors 2> unknown.err
check "a key the model does not have is refused on resume" \
    "[ $? -eq 1 ] && grep -q \"^lflex: unknown.yaml:1:9: unknown key 'model.d_modle'\" unknown.err"
"$LFLEX" train tiny.yaml --quiet --set run.steps=15 --set run.out=reset --set run.log_every=1 --set run.eval_every=0 \
    --resume reset/checkpoint.safetensors 2> kept.err
check "a learning rate of the file other than the checkpoint's: a warning, the checkpoint's is kept" \
    "[ $? -eq 0 ] && grep -q \"^lflex: warning: tiny.yaml:2:9: train.lr: 3.0e-3 differs from 0.0001, the checkpoint's, which a resumed run keeps (--set train.lr=... changes it)\" kept.err \
     && grep -q '\"step\": 15, .*\"lr\": 5e-05,' reset/log.jsonl"
"$LFLEX" train tiny.yaml --quiet --set run.steps=20 --set run.out=reset --set train.lr=fast \
    --resume reset/checkpoint.safetensors 2> reset_bad.err
check "a bad value of a key that may change on resume names the key" \
    "[ $? -eq 1 ] && grep -q -- \"^lflex: --set on resume: .*key 'train.lr': expected a real number\" reset_bad.err \
     && [ \$(ls -A reset | wc -l) -eq 4 ]"

# a run that died after writing log records past its last checkpoint: the
# resume drops them (and a record cut short) before writing them again, so
# the log is that of an uninterrupted run
logged="--quiet --set run.log_every=1 --set run.eval_every=5 --set run.save_every=5"
"$LFLEX" train tiny.yaml $logged --set run.steps=20 --set run.out=log_straight 2> /dev/null
"$LFLEX" train tiny.yaml $logged --set run.steps=10 --set run.out=log_crash 2> /dev/null
cp log_crash/checkpoint.safetensors ck10.safetensors
cp log_crash/checkpoint.safetensors.data-order.json ck10.safetensors.data-order.json
"$LFLEX" train tiny.yaml $logged --set run.steps=13 --set run.out=log_crash --resume log_crash/checkpoint.safetensors 2> /dev/null
cp ck10.safetensors log_crash/checkpoint.safetensors # the saves after step 10 never happened
cp ck10.safetensors.data-order.json log_crash/checkpoint.safetensors.data-order.json
printf '{"step": 14, "loss": 2.' >> log_crash/log.jsonl
"$LFLEX" train tiny.yaml --set run.log_every=1 --set run.eval_every=5 --set run.save_every=5 --set run.steps=20 \
    --set run.out=log_crash --resume log_crash/checkpoint.safetensors 2> log_crash.err
untimed() { sed 's/, "tokens_per_s": [^,}]*//; s/, "elapsed_s": [^,}]*//' "$1"; }
check "a resume drops the log records after the checkpoint's step, and says so" \
    "[ $? -eq 0 ] && grep -q 'log_crash/log.jsonl: 5 lines after step 10 dropped' log_crash.err"
check "the log of a crashed and resumed run is that of an uninterrupted one" \
    "[ \$(grep -c '\"loss\"' log_crash/log.jsonl) -eq 20 ] && untimed log_crash/log.jsonl > a.log && untimed log_straight/log.jsonl > b.log && cmp -s a.log b.log"

"$LFLEX" sample out/checkpoint.safetensors --n 3 --steps 8 > s1.txt
check "sample prints one line per sequence" "[ $? -eq 0 ] && [ \$(wc -l < s1.txt) -eq 3 ]"
"$LFLEX" sample out/checkpoint.safetensors --prompt "p q" --n 2 --times --steps 8 > s2.txt
check "sample --prompt --times prints tokens with times" "[ $? -eq 0 ] && grep -q '<bos>@0.000/0.000' s2.txt"
"$LFLEX" sample out/checkpoint.safetensors --infill "a [GAP] c" --steps 8 > s3.txt
check "sample --infill keeps the given tokens" "[ $? -eq 0 ] && grep -q '^a .*c\$\|^a c\$' s3.txt"
for sc in sum mean min; do
    "$LFLEX" sample out/checkpoint.safetensors --n 3 --steps 8 --temperature 1 --candidates 3 --candidate-score $sc > sc.txt
    check "sample --candidates 3 --candidate-score $sc prints one line per sequence" "[ $? -eq 0 ] && [ \$(wc -l < sc.txt) -eq 3 ]"
done
"$LFLEX" sample out/checkpoint.safetensors --n 3 --steps 8 --grid events --times > g.txt
check "sample --grid events prints one line per sequence" "[ $? -eq 0 ] && [ \$(wc -l < g.txt) -eq 3 ]"
"$LFLEX" eval out/checkpoint.safetensors valid.txt --steps 8 > e.txt
check "eval reports loss, exact match and token accuracy" \
    "[ $? -eq 0 ] && grep -q 'validation loss' e.txt && grep -q 'exact match' e.txt && grep -q 'token accuracy' e.txt"
# eval takes the sampler of the run's sample section (config.yaml next to
# the checkpoint) where its options do not say otherwise: a section made
# invalid shows that it is read, and an option overrides its key
mkdir -p evalrun && cp out/checkpoint.safetensors evalrun/
sed '/^sample:/,$ s/^  steps: .*/  steps: 0/' out/config.yaml > evalrun/config.yaml
"$LFLEX" eval evalrun/checkpoint.safetensors valid.txt > ev1.txt 2> ev1.err
st1=$?
"$LFLEX" eval evalrun/checkpoint.safetensors valid.txt --steps 8 > ev2.txt 2> ev2.err
check "eval uses the run's sample section, and its options override its keys" \
    "[ $st1 -eq 1 ] && grep -q \"key 'steps': 0 is out of range\" ev1.err && [ $? -eq 0 ] && grep -q 'exact match' ev2.txt"
"$LFLEX" order out/checkpoint.safetensors "$(printf 'p q\ta b c')" > o.txt
check "order prints b_in and the expected insertion time of the target" \
    "[ $? -eq 0 ] && grep -q 'E\\[T_in\\]' o.txt && [ \$(grep -c '^ *[0-9]' o.txt) -eq 3 ]"
check "order prints the order in one line, tied tokens in brackets" \
    "grep -q '^insertion order: ' o.txt && [ \$(grep '^insertion order: ' o.txt | tr -cd '[]' | wc -c) -ne 1 ]"
"$LFLEX" rates out/checkpoint.safetensors "a [MASK] c" --t 0.3 > r.txt
check "rates prints insertion and unmasking rates" "[ $? -eq 0 ] && grep -q 'insert rate' r.txt && grep -q '<mask>' r.txt"

# --json: what scripts read, parsed by Python's json (no NaN/Infinity)
json_check() { # json_check FILE PYTHON-EXPRESSION-OF-d (d: the document, or the list of lines with --lines)
    lines=0
    [ "$1" = --lines ] && { lines=1; shift; }
    /usr/bin/python3 -c '
import json, sys
def bad(c): raise ValueError("not JSON: " + c)
text = open(sys.argv[1]).read()
if sys.argv[3] == "1":
    d = [json.loads(l, parse_constant=bad) for l in text.splitlines()]
else:
    d = json.loads(text, parse_constant=bad)
sys.exit(0 if eval(sys.argv[2]) else "unexpected: %r" % (d,))
' "$1" "$2" "$lines"
}
C=out/checkpoint.safetensors
"$LFLEX" sample $C --json --n 2 --prompt "p q" --infill "a [GAP] c" --steps 8 > sj.txt
sj=$?
"$LFLEX" sample $C --json --times --n 1 --steps 8 > sj2.txt
sj2=$?
"$LFLEX" eval $C valid.txt --json --steps 8 > ej.txt
ej=$?
"$LFLEX" eval $C train.txt --json --n 3 > ej2.txt 2> /dev/null
printf 'a b c\nb c\n' > uncond.txt
"$LFLEX" eval $C uncond.txt --json > ej3.txt
ej3=$?
"$LFLEX" order $C "$(printf 'p q\ta b c')" --json > oj.txt
oj=$?
"$LFLEX" rates $C "a [MASK] c" --t 0.3 --top 2 --json > rj.txt
rj=$?
if [ -x /usr/bin/python3 ]; then
    check "sample --json: a JSON object per sequence, with its template" \
        "[ $sj -eq 0 ] && [ \$(wc -l < sj.txt) -eq 4 ] && json_check --lines sj.txt \
         '[x[\"template\"] for x in d] == [0, 0, 1, 1] and d[0][\"prompt\"] == \"p q\" and d[2][\"infill\"] == \"a [GAP] c\" and all(isinstance(x[\"text\"], str) for x in d)'"
    check "sample --json --times: every token with its times" \
        "[ $sj2 -eq 0 ] && json_check --lines sj2.txt \
         'len(d) == 1 and d[0][\"tokens\"][-1][\"token\"] == \"<eos>\" and all(0 <= t[\"inserted\"] <= t[\"unmasked\"] <= 1 for t in d[0][\"tokens\"])'"
    check "eval --json: one document with the losses, exact match and token accuracy" \
        "[ $ej -eq 0 ] && json_check ej.txt \
         'd[\"examples\"] == 8 and d[\"validation_loss\"] > 0 and 0 <= d[\"exact_match\"] <= 1 and 0 <= d[\"token_accuracy\"] <= 1'"
    check "eval --json --n 3 evaluates 3 examples" "json_check ej2.txt 'd[\"examples\"] == 3'"
    check "eval --json without prompts: exact match is null" \
        "[ $ej3 -eq 0 ] && json_check ej3.txt 'd[\"exact_match\"] is None and d[\"token_accuracy\"] is None and d[\"examples\"] == 2'"
    check "order --json: every target token with its place, and the order" \
        "[ $oj -eq 0 ] && json_check oj.txt \
         'd[\"fixed_tokens\"] == 4 and [t[\"token\"] for t in d[\"tokens\"]] == [\"a\", \"b\", \"c\"] and sorted(sum(d[\"order\"], [])) == [\"a\", \"b\", \"c\"]'"
    check "rates --json: the rates of every position, the top tokens at the mask" \
        "[ $rj -eq 0 ] && json_check rj.txt \
         'd[\"t\"] == 0.3 and len(d[\"positions\"]) == 4 and len(d[\"positions\"][1][\"top\"]) == 2 and \"top\" not in d[\"positions\"][0]'"
else
    for what in "sample --json" "sample --json --times" "eval --json" "eval --json --n 3" "eval --json without prompts" \
        "order --json" "rates --json"; do
        ok "$what # SKIP no /usr/bin/python3"
    done
fi

# progress of sample and eval: on standard error when it is a terminal,
# never in a file or a pipe, never with --quiet
"$LFLEX" sample $C --n 40 --steps 4 --batch 8 > /dev/null 2> prog1.err &&
    "$LFLEX" eval $C valid.txt --steps 4 > /dev/null 2> prog2.err
check "sample and eval print no progress when standard error is not a terminal" \
    "[ $? -eq 0 ] && [ ! -s prog1.err ] && [ ! -s prog2.err ]"
"$LFLEX" sample $C --n 40 --steps 4 --quiet > /dev/null 2> prog3.err &&
    "$LFLEX" eval $C valid.txt --steps 4 --quiet > /dev/null 2> prog4.err
check "sample --quiet and eval --quiet print nothing on standard error" "[ $? -eq 0 ] && [ ! -s prog3.err ] && [ ! -s prog4.err ]"
if command -v script > /dev/null 2>&1 && script -qc true /dev/null > /dev/null 2>&1; then
    # script(1) gives the command a terminal; standard output goes to files
    script -qc "\"$LFLEX\" sample $C --n 40 --steps 4 --batch 8 > prog_s.out" /dev/null > prog_tty1.txt 2>&1
    script -qc "\"$LFLEX\" eval $C valid.txt --steps 4 > prog_e.out" /dev/null > prog_tty2.txt 2>&1
    check "on a terminal, sample and eval show the progress with the rate and the time left" \
        "grep -q '40/40 seq .* seq/s  ETA 0:00' prog_tty1.txt && grep -q '8/8 ex .* ex/s  ETA 0:00' prog_tty2.txt && grep -q ' step/s  ETA' prog_tty2.txt && \
         [ \$(wc -l < prog_s.out) -eq 40 ] && grep -q 'validation loss' prog_e.out"
    script -qc "\"$LFLEX\" sample $C --n 40 --steps 4 --batch 8 --quiet > prog_s.out" /dev/null > prog_tty3.txt 2>&1
    check "on a terminal, sample --quiet shows no progress" "! grep -q 'ETA' prog_tty3.txt && [ \$(wc -l < prog_s.out) -eq 40 ]"
else
    ok "on a terminal, sample and eval show the progress # SKIP no script(1)"
    ok "on a terminal, sample --quiet shows no progress # SKIP no script(1)"
fi

# options: --opt=VALUE and --opt VALUE alike; a bad value is one error line
# naming the option, status 2; no value reaches a YAML text unchecked
C=out/checkpoint.safetensors
"$LFLEX" sample $C --n=2 --steps=8 > opt1.txt && "$LFLEX" sample $C --n 2 --steps 8 > opt2.txt
check "--n=2 --steps=8 is --n 2 --steps 8" "[ $? -eq 0 ] && [ \$(wc -l < opt1.txt) -eq 2 ] && cmp -s opt1.txt opt2.txt"
"$LFLEX" sample --steps 8 -- $C > opt3.txt
check "a positional argument after -- and after the options" "[ $? -eq 0 ] && [ \$(wc -l < opt3.txt) -eq 1 ]"
bad_value() { # bad_value NAME EXPECTED-MESSAGE COMMAND...
    what=$1 msg=$2; shift 2
    "$@" > bad.out 2> bad.err
    check "$what is an error naming the option" \
        "[ $? -eq 2 ] && [ ! -s bad.out ] && [ \$(wc -l < bad.err) -eq 1 ] && grep -q -- \"$msg\" bad.err"
}
bad_value "--n 2x" "option --n: expected an integer from 1 to" "$LFLEX" sample $C --n 2x
bad_value "--n=" "option --n: empty value" "$LFLEX" sample $C --n=
bad_value "--n ''" "option --n: empty value" "$LFLEX" sample $C --n ''
bad_value "--n 0" "option --n: expected an integer from 1 to .*got '0'" "$LFLEX" sample $C --n 0
bad_value "--n 99999999999999999999" "option --n: expected an integer" "$LFLEX" sample $C --n 99999999999999999999
bad_value "--n ' 3'" "option --n: expected an integer" "$LFLEX" sample $C --n ' 3'
bad_value "--temperature nan" "option --temperature: expected a number from 0 to 100" "$LFLEX" sample $C --temperature nan
bad_value "--top-p 0" "option --top-p: expected a number from 1e-06 to 1, got '0'" "$LFLEX" sample $C --top-p 0
bad_value "--confidence best" "option --confidence: expected one of none, top_prob, prob_diff, entropy, left_to_right or right_to_left" \
    "$LFLEX" sample $C --confidence best
bad_value "--candidate-score max" "option --candidate-score: expected one of sum, mean or min" \
    "$LFLEX" sample $C --candidate-score max
bad_value "--grid fine" "option --grid: expected one of uniform or events" "$LFLEX" sample $C --grid fine
bad_value "--seed -1" "option --seed: expected an integer from 0 to 9007199254740991" "$LFLEX" eval $C valid.txt --seed -1
bad_value "--t 1" "option --t: expected a number from 0 to 1 (excluded), got '1'" "$LFLEX" rates $C "a [MASK]" --t 1
bad_value "--top 3.5" "option --top: expected an integer from 0 to 1000000" "$LFLEX" rates $C "a [MASK]" --top 3.5
bad_value "--seconds -1" "option --seconds: expected a number from 0 to" "$LFLEX" demo --seconds -1
bad_value "--threads 2x" "option --threads: expected an integer from 0 to 1024" "$LFLEX" demo --threads=2x
bad_value "a newline in --steps" "option --steps: expected an integer from 1 to 100000, got '4.nseed: 3'" \
    "$LFLEX" sample $C --steps "$(printf '4\nseed: 3')"
bad_value "--set without =" "option --set: expected SECTION.KEY=VALUE, got 'run.steps'" "$LFLEX" train tiny.yaml --set run.steps
# a wrong option: an error line and the usage on stderr, status 2
"$LFLEX" sample $C --frobnicate > bad.out 2> bad.err
check "an unknown option prints the usage on stderr, status 2" \
    "[ $? -eq 2 ] && [ ! -s bad.out ] && grep -q \"unknown option '--frobnicate'\" bad.err && grep -q '^usage: lflex sample' bad.err"
"$LFLEX" sample $C --times=yes > bad.out 2> bad.err
check "a value for a flag is a usage error" "[ $? -eq 2 ] && grep -q 'option --times takes no value' bad.err"
"$LFLEX" sample $C --top 2 > bad.out 2> bad.err
check "an ambiguous abbreviation names the candidates" "[ $? -eq 2 ] && grep -q -- \"ambiguous option '--top' (--top-k, --top-p)\" bad.err"
"$LFLEX" sample $C --steps > bad.out 2> bad.err
check "a missing value is a usage error" "[ $? -eq 2 ] && grep -q 'option --steps needs a value' bad.err"
# --help: a paragraph, every option and an example on stdout, status 0
help_ok() { # help_ok COMMAND OPTION...
    cmd=$1; shift
    "$LFLEX" $cmd --help > help.out 2> help.err
    st=$?
    missing=
    for o in "$@" help; do grep -q -- "^  .*--$o\\b" help.out || missing="$missing $o"; done
    check "lflex $cmd --help: usage, options, example on stdout, status 0" \
        "[ $st -eq 0 ] && [ ! -s help.err ] && grep -q '^usage: lflex $cmd' help.out && grep -q '^Options:' help.out \
         && grep -q '^Examples*:' help.out && grep -q '^  lflex $cmd' help.out && [ -z '$missing' ]"
}
help_ok train set resume quiet
help_ok sample n prompt prompts infill times json quiet steps temperature top-k top-p confidence insertion seed max-len batch candidates candidate-score grid
help_ok eval n json quiet steps temperature top-k top-p confidence insertion seed max-len batch candidates candidate-score grid
help_ok order json
help_ok rates t top json
help_ok export weights-only raw
help_ok plot out text checkpoint
help_ok demo seconds threads
help_ok version
"$LFLEX" help sample > help2.out
check "lflex help sample is lflex sample --help" "[ $? -eq 0 ] && \"$LFLEX\" sample -h | cmp -s - help2.out"
"$LFLEX" --version > v.out && "$LFLEX" version > v2.out
check "--version and version print the program and library versions" \
    "[ $? -eq 0 ] && grep -q '^lflex [0-9.]* (liblflex [0-9.]*; OpenBLAS' v.out && cmp -s v.out v2.out"

# values of the sample section and of --set go into YAML through libyaml's
# emitter: a value is one value, never another key
"$LFLEX" train tiny.yaml --quiet --set run.out=inject --set "sample.steps=$(printf '8\nbatch_size: 0')" 2> inject.err
check "a newline in a sample value stays in the value, refused before training" \
    "[ $? -eq 1 ] && grep -q \"sample: .*key 'steps': expected an integer\" inject.err && [ ! -e inject/log.jsonl ]"
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=inject --set "model.max_len=$(printf '12\nfoo: 1')" 2> inject2.err
check "a newline in a model value stays in the value" \
    "[ $? -eq 1 ] && grep -q \"key 'model.max_len': expected an integer\" inject2.err && ! grep -q foo.: inject2.err"
"$LFLEX" train tiny.yaml --quiet --set run.steps=3 --set run.eval_every=3 --set run.out=sample_set --set sample.steps=4 \
    2> sample_set.err
check "--set sample.KEY replaces the file's KEY" "[ $? -eq 0 ] && grep -q exact_match sample_set/log.jsonl"
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=o10 --set run.steps=2x 2> set_bad.err
check "a bad --set value of the run section names --set" \
    "[ $? -eq 1 ] && grep -q -- '--set run.steps=2x: expected an integer' set_bad.err"

# sample generates and prints a batch at a time: memory does not grow with
# --n and the first lines come at once. Under a 400 MB address-space limit
# (the program needs about 200 MB, mostly OpenBLAS's buffer; building every
# template first needed 8 bytes per sequence)
"$LFLEX" sample $C --n 70 --steps 4 --seed 5 --batch 7 > chunk7.txt &&
    "$LFLEX" sample $C --n 70 --steps 4 --seed 5 --batch 64 > chunk64.txt
check "sample prints the same sequences whatever the batch" \
    "[ $? -eq 0 ] && [ \$(wc -l < chunk7.txt) -eq 70 ] && cmp -s chunk7.txt chunk64.txt"
# AddressSanitizer reserves terabytes of address space for its shadow
# memory: under it the limit cannot apply
vlimit=400000
ldd "$LFLEX" 2>/dev/null | grep -q libasan && vlimit=unlimited
( ulimit -v $vlimit
  { OPENBLAS_NUM_THREADS=1 timeout 120 "$LFLEX" sample $C --n 99999999999 --steps 4 2> big.err; echo $? > big.st; } |
      head -n 3 > big.txt )
st=$(cat big.st)
check "sample --n 99999999999 | head -n 3: three lines, and the program ends on the closed pipe" \
    "[ \$(wc -l < big.txt) -eq 3 ] && { [ $st -eq 141 ] || { [ $st -eq 1 ] && grep -q 'standard output' big.err; }; }"
if [ "$vlimit" = unlimited ]; then
    ok "sample --n 20000 under a 400 MB address-space limit # SKIP AddressSanitizer build"
else
    ( ulimit -v $vlimit; OPENBLAS_NUM_THREADS=1 timeout 120 "$LFLEX" sample $C --n 20000 --steps 2 --prompt 'p q' > many.txt )
    check "sample --n 20000 under a 400 MB address-space limit" "[ $? -eq 0 ] && [ \$(wc -l < many.txt) -eq 20000 ]"
fi

# line endings: CRLF and a lone CR end a line as LF does, in data and prompt files
sed 's/$/\r/' train.txt > train_crlf.txt
tr '\n' '\r' < train.txt > train_cr.txt
for e in crlf cr; do
    "$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=out_$e --set data.train=train_$e.txt \
        --set data.valid=train_$e.txt 2> train_$e.err
    check "$e line endings: every line is an example" "[ $? -eq 0 ] && grep -q '60 training examples' train_$e.err"
done
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=out_char --set vocab.tokenizer=char \
    --set data.train=train_cr.txt --set data.valid=train_crlf.txt 2> train_char.err
check "CR and CRLF line endings with the char tokenizer" \
    "[ $? -eq 0 ] && grep -q '60 training examples' train_char.err && grep -q 'tokens: \" abcpq\"' out_char/config.yaml"
printf 'p q\rq p\r\np p' > prompts_cr.txt
"$LFLEX" sample out/checkpoint.safetensors --prompts prompts_cr.txt --n 1 --steps 4 > s4.txt
check "sample --prompts reads CR and CRLF line endings" "[ $? -eq 0 ] && [ \$(wc -l < s4.txt) -eq 3 ]"

# a learning rate that makes every step non-finite: training stops with an
# error after 100 skipped steps in a row (it looped forever)
timeout 60 "$LFLEX" train tiny.yaml --quiet --set train.lr=10 --set train.warmup=1 --set run.steps=5 \
    --set run.log_every=1 --set run.eval_every=1 --set run.out=diverge 2> diverge.err
check "training stops after 100 non-finite steps in a row" \
    "[ $? -eq 1 ] && grep -q 'step 2: 100 steps in a row were not finite; stopping' diverge.err"
check "a skipped step is not evaluated again" "[ \$(grep -c valid_loss diverge/log.jsonl) -eq 1 ]"
# every line of the log is JSON (NaN and infinity, which JSON lacks, are null)
json_ok() { # json_ok FILE: every line parses, without the NaN/Infinity extension
    /usr/bin/python3 -c '
import json, sys
def bad(c): raise ValueError("not JSON: " + c)
for n, line in enumerate(open(sys.argv[1]), 1):
    json.loads(line, parse_constant=bad)
' "$1"
}
if [ -x /usr/bin/python3 ]; then
    check "log.jsonl writes a non-finite validation loss as null" \
        "grep -q '\"valid_loss\": null' diverge/log.jsonl && json_ok diverge/log.jsonl"
    check "every line of a normal log.jsonl is JSON" "json_ok out/log.jsonl"
else
    ok "log.jsonl is JSON # SKIP no /usr/bin/python3"
    ok "every line of a normal log.jsonl is JSON # SKIP no /usr/bin/python3"
fi

# errors: one line on stderr, non-zero status
printf 'model: {d_modle: 16}\ndata: {train: train.txt}\nrun: {out: o2}\n' > badkey.yaml
"$LFLEX" train badkey.yaml 2> err1.txt
check "an unknown model key is one error line naming key, line and column" \
    "[ $? -eq 1 ] && [ \$(wc -l < err1.txt) -eq 1 ] && grep -q \"1:9: unknown key 'model.d_modle'\" err1.txt"
printf 'model: {max_len: 12}\ndata: {train: train.txt}\nrun: {out: o3, stepz: 3}\n' > badrun.yaml
"$LFLEX" train badrun.yaml 2> err2.txt
check "an unknown run key is an error with its place" "[ $? -eq 1 ] && grep -q \"3:16: unknown key 'run.stepz'\" err2.txt"
# the library's messages about model keys give places in the user's file,
# whatever comes before (the program's sections, comments, characters of
# several bytes, CR line ends, a flow mapping), and name --set for its values
printf 'data: {train: train.txt}\nrun: {out: o2}\n# a comment\nmodel:\n  d_model: 16\n  max_len: twelve\n' > place.yaml
"$LFLEX" train place.yaml 2> place.err
check "a bad model value after the program's sections: its line and column in the file" \
    "[ $? -eq 1 ] && [ \$(wc -l < place.err) -eq 1 ] && grep -q \"^lflex: place.yaml:6:12: key 'model.max_len': expected\" place.err"
tr '\n' '\r' < place.yaml > place_cr.yaml
"$LFLEX" train place_cr.yaml 2> place_cr.err
check "the same with CR line ends" "[ $? -eq 1 ] && grep -q \"^lflex: place_cr.yaml:6:12: key 'model.max_len'\" place_cr.err"
printf '{data: {train: train.txt, valid: "v\303\251.txt"}, run: {out: o9}, model: {n_heads: 2, d_modle: 16}}\n' > place_flow.yaml
"$LFLEX" train place_flow.yaml --set model.n_heads=4 2> place_flow.err
check "in a flow mapping after a character of two bytes, with --set of a key before it" \
    "[ $? -eq 1 ] && grep -q \"^lflex: place_flow.yaml:1:81: unknown key 'model.d_modle'\" place_flow.err"
"$LFLEX" train place.yaml --set model.max_len=12 --set model.n_heads=x 2> place_set.err
check "a bad value of --set names --set" \
    "[ $? -eq 1 ] && grep -q \"^lflex: place.yaml: --set: key 'model.n_heads': expected\" place_set.err"
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=flow_set --set model.max_len=10 --set model.d_model=8 2> flow_set.err
check "--set replaces keys of a flow mapping" \
    "[ $? -eq 0 ] && grep -q '^  max_len: 10' flow_set/config.yaml && grep -q '^  d_model: 8' flow_set/config.yaml"
# a key given twice is an error with its place, in every section
dup() { # dup NAME CONFIG EXPECTED
    printf "$2" > "dup_$1.yaml"
    "$LFLEX" train "dup_$1.yaml" --quiet --set run.steps=1 > /dev/null 2> "dup_$1.err"
    check "a duplicate key in $1 is an error with its place" \
        "[ $? -eq 1 ] && [ \$(wc -l < dup_$1.err) -eq 1 ] && grep -q \"dup_$1.yaml:$3\" dup_$1.err"
}
dup run 'data: {train: train.txt}\nrun:\n  out: o5\n  steps: 1\n  steps: 2\n' "5:3: duplicate key 'run.steps' (first at 4:3)"
dup data 'data: {train: train.txt, train: valid.txt}\nrun: {out: o5}\n' "1:26: duplicate key 'data.train' (first at 1:8)"
dup sample 'data: {train: train.txt}\nrun: {out: o5}\nsample: {steps: 2, steps: 3}\n' \
    "3:20: duplicate key 'sample.steps' (first at 3:10)"
dup section 'data: {train: train.txt}\nrun: {out: o5}\nrun: {steps: 1}\n' "3:1: duplicate key 'run' (first at 2:1)"
dup model 'data: {train: train.txt}\nrun: {out: o5}\nmodel:\n  d_model: 16\n  d_model: 32\n' \
    "5:3: duplicate key 'model.d_model' (first at 4:3)"
dup dotted 'data: {train: train.txt}\nrun: {out: o5}\nmodel.max_len: 12\nmodel: {max_len: 16}\n' \
    "4:9: duplicate key 'model.max_len' (first at 3:1)"

# nesting: 64 levels are read (the library then names the unknown key),
# deeper is refused with its place before any recursion, at once
nest() { # nest N OPEN CLOSE: N opening strings, 1, N closing strings
    head -c "$1" /dev/zero | sed "s/\x0/$2/g"; printf 1; head -c "$1" /dev/zero | sed "s/\x0/$3/g"; echo
}
{ printf 'data: {train: train.txt}\nrun: {out: o4}\nmodel: '; nest 63 '{a: ' '}'; } > nest64.yaml
"$LFLEX" train nest64.yaml 2> err5.txt
check "64 levels of nesting are read" "[ $? -eq 1 ] && grep -q \"unknown key 'model.a'\" err5.txt && ! grep -q nested err5.txt"
{ printf 'data: {train: train.txt}\nrun: {out: o4}\nmodel: '; nest 64 '{a: ' '}'; } > nest65.yaml
"$LFLEX" train nest65.yaml 2> err6.txt
check "65 levels are refused with file, line and column" \
    "[ $? -eq 1 ] && [ \$(wc -l < err6.txt) -eq 1 ] && grep -q 'nest65.yaml:3:260: a mapping nested deeper than 64 levels' err6.txt"
{ printf 'data: {train: train.txt}\nrun: {out: o4}\nmodel: '; nest 20000 '{a: ' '}'; } > nest20k.yaml
"$LFLEX" train nest20k.yaml 2> err7.txt
check "20 000 levels of mappings are refused (no crash)" "[ $? -eq 1 ] && grep -q 'nest20k.yaml:3:260: a mapping nested deeper' err7.txt"
{ printf 'data: {train: train.txt}\nrun: {out: o4}\nmodel: '; nest 100000 '[' ']'; } > nest100k.yaml
timeout 10 "$LFLEX" train nest100k.yaml 2> err8.txt
check "100 000 levels of sequences are refused at once" "[ $? -eq 1 ] && grep -q 'nest100k.yaml:3:71: a sequence nested deeper' err8.txt"

# a NUL byte or a reserved token's spelling in a data or prompt file: an
# error naming file, line and column (columns count characters)
printf 'p q\ta b c\nq p\tc\000 b a\np p\ta a\n' > nul.txt
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=o6 --set data.train=nul.txt 2> err9.txt
check "a NUL byte in the training file is an error with its place" \
    "[ $? -eq 1 ] && [ \$(wc -l < err9.txt) -eq 1 ] && grep -q 'nul.txt:2:6: a NUL byte' err9.txt"
printf 'p q\ta b\np \303\251\000 q\ta\n' > nul2.txt
"$LFLEX" eval out/checkpoint.safetensors nul2.txt 2> err10.txt
check "a NUL byte in an evaluation file is an error with its place" "[ $? -eq 1 ] && grep -q 'nul2.txt:2:4: a NUL byte' err10.txt"
printf 'p q\ta b c\np q\ta <eos> b\n' > eos.txt
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=o7 --set data.train=eos.txt 2> err11.txt
check "<eos> in a training line is an error with its place" \
    "[ $? -eq 1 ] && [ \$(wc -l < err11.txt) -eq 1 ] && grep -q 'eos.txt:2:7: <eos> is a reserved token' err11.txt"
for tok in '<bos>' '<mask>' '<pad>'; do
    printf 'p q\ta b c\r\nq %s\tc b\r\n' "$tok" > reserved.txt
    "$LFLEX" eval out/checkpoint.safetensors reserved.txt 2> err12.txt
    check "$tok in a data line is an error with its place" "[ $? -eq 1 ] && grep -q \"reserved.txt:2:3: $tok is a reserved token\" err12.txt"
done
"$LFLEX" train tiny.yaml --quiet --set run.steps=1 --set run.out=o8 --set data.train=eos.txt --set data.skip_bad_lines=true \
    2> skip.err
check "data.skip_bad_lines skips a line with a reserved token" "[ $? -eq 0 ] && grep -q '1 training examples (conditional) (some lines skipped)' skip.err"
printf 'p q\nq <bos> p\n' > prompts_bad.txt
"$LFLEX" sample out/checkpoint.safetensors --prompts prompts_bad.txt --steps 4 > /dev/null 2> err13.txt
check "a reserved token in a prompt file is an error with its place" "[ $? -eq 1 ] && grep -q 'prompts_bad.txt:2:3: <bos> is a reserved' err13.txt"
"$LFLEX" sample out/checkpoint.safetensors --prompt 'p <eos>' --steps 4 > /dev/null 2> err14.txt
check "a reserved token in --prompt is an error with its column" "[ $? -eq 1 ] && grep -q -- '--prompt 1, column 3: <eos> is a reserved' err14.txt"

printf 'p q\ta b zz\n' > badline.txt
"$LFLEX" eval out/checkpoint.safetensors badline.txt 2> err3.txt
check "a data line with an unknown token names file and line" "[ $? -eq 1 ] && grep -q 'badline.txt:1:' err3.txt"
"$LFLEX" sample missing.safetensors 2> err4.txt
check "a missing checkpoint is one error line" "[ $? -eq 1 ] && [ \$(wc -l < err4.txt) -eq 1 ]"
"$LFLEX" frobnicate > /dev/null 2>&1
check "an unknown command exits 2" "[ $? -eq 2 ]"

# Ctrl-C: stop after the current step, save, exit 130
"$LFLEX" train tiny.yaml --quiet --set run.steps=100000 --set run.out=long --set run.eval_every=0 2> int.err &
pid=$!
i=0
while [ ! -s long/log.jsonl ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT $pid
wait $pid
st=$?
check "Ctrl-C saves and exits 130" "[ $st -eq 130 ] && [ -s long/checkpoint.safetensors ] && grep -q interrupted int.err"
# resuming after Ctrl-C at step k and going on to k + 3 is k + 3 steps at once
k=$(sed -n 's/^ *"step": \([0-9]*\),$/\1/p' long/checkpoint.safetensors.data-order.json | tail -n 1)
"$LFLEX" train tiny.yaml --quiet --set run.steps=$((k + 3)) --set run.out=long --set run.eval_every=0 \
    --resume long/checkpoint.safetensors 2> long2.err
"$LFLEX" train tiny.yaml --quiet --set run.steps=$((k + 3)) --set run.out=long_straight --set run.eval_every=0 2> long3.err
check "a resume after Ctrl-C (at step $k) continues exactly" \
    "[ -n '$k' ] && same_ckpt long/checkpoint.safetensors long_straight/checkpoint.safetensors"

echo "1..$n"
exit $failed
