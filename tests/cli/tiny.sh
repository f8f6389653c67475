# Sourced by the tests of the lflex program (tests/cli/*.sh, argument: the
# program): a scratch directory to work in, removed at exit, the TAP functions
# (ok, bad, check) and a tiny task: train.txt (60 "p q<TAB>target" lines),
# valid.txt (its first 8) and tiny.yaml (a 1-layer model, 6 steps, into out/).
set -u
LFLEX=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# data: "p q<TAB>target" lines (conditional), targets are runs of letters
i=0
while [ $i -lt 60 ]; do
    case $((i % 4)) in
    0) printf 'p q\ta b c\n' ;; 1) printf 'q p\tc b a\n' ;; 2) printf 'p p\ta a\n' ;; 3) printf 'q q\tb c a b\n' ;;
    esac
    i=$((i + 1))
done > train.txt
head -n 8 train.txt > valid.txt
cat > tiny.yaml <<'YAML'
model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}
train: {lr: 3.0e-3, warmup: 2, threads: 1}
vocab: {tokenizer: words}
data:
  train: train.txt
  valid: valid.txt
run:
  steps: 6
  batch_size: 4
  out: out
  log_every: 2
  eval_every: 3
  eval_examples: 8
  save_every: 3
sample:
  steps: 8
  temperature: 0
YAML

