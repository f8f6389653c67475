#!/bin/sh
# lflex plot on a tiny run: the PNG files of the learning curves and of the
# learned order, and its errors (no python3, no matplotlib, a missing or
# damaged log). TAP output.
. "$(dirname "$0")/tiny.sh"
export MPLCONFIGDIR="$dir/mpl"

if ! /usr/bin/python3 -c 'import matplotlib' 2> /dev/null; then
    echo "1..0 # SKIP /usr/bin/python3 has no matplotlib (python3-matplotlib)"
    exit 0
fi
export LFLEX_PYTHON=/usr/bin/python3

"$LFLEX" train tiny.yaml --quiet --set run.out=run 2> train.err
check "a tiny run trains" "[ $? -eq 0 ] && [ -s run/log.jsonl ]"

# valid PNG files of a fair size: the signature, the IHDR chunk and a
# picture of at least 300 x 150 pixels
png_ok() { # png_ok FILE...
    /usr/bin/python3 - "$@" <<'PY'
import struct, sys
for p in sys.argv[1:]:
    b = open(p, 'rb').read()
    if b[:8] != b'\x89PNG\r\n\x1a\n' or b[12:16] != b'IHDR' or len(b) < 5000:
        sys.exit('%s: not a PNG file of a fair size (%d bytes)' % (p, len(b)))
    w, h = struct.unpack('>II', b[16:24])
    if w < 300 or h < 150:
        sys.exit('%s: %d x %d pixels' % (p, w, h))
PY
}

"$LFLEX" plot run --text "$(printf 'p q\ta b c')" > plot.out 2> plot.err
check "plot writes the learning curves and the order as PNG files" \
    "[ $? -eq 0 ] && [ ! -s plot.err ] && png_ok run/plots/loss.png run/plots/validation.png run/plots/lr.png \
     run/plots/throughput.png run/plots/order.png && [ \$(wc -l < plot.out) -eq 5 ]"
check "order.json holds the heat map: a row of P(inserted by t) per target token" \
    "/usr/bin/python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); sys.exit(not (len(o[\"inserted\"]) == 3 and len(o[\"t\"]) == 101 and all(r[0] == 0 and abs(r[-1] - 1) < 1e-6 for r in o[\"inserted\"])))' run/plots/order.json"
"$LFLEX" plot run --out default > default.out 2> default.err
check "without --text, order.png draws the first line of the run's validation file (config.yaml)" \
    "[ $? -eq 0 ] && [ ! -s default.err ] && png_ok default/order.png && \
     /usr/bin/python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))[\"text\"] != open(\"valid.txt\").readline().rstrip(\"\\n\"))' default/order.json"
"$LFLEX" plot run --out elsewhere/deep --text 'a b' > /dev/null 2>&1
check "--out puts them in another directory, made when missing" "[ $? -eq 0 ] && png_ok elsewhere/deep/order.png"
"$LFLEX" plot run --text 'a zz' > /dev/null 2> text.err
check "an example with an unknown token is an error" "[ $? -eq 1 ] && grep -q 'encode: ' text.err"

# errors: one line, status 1, no traceback
"$LFLEX" plot nowhere --text a 2> e1.err
check "a run directory without a checkpoint is one error line" "[ $? -eq 1 ] && [ \$(wc -l < e1.err) -eq 1 ]"
mkdir -p norun && cp run/checkpoint.safetensors norun/
"$LFLEX" plot norun --text a 2> e2.err
check "a missing log.jsonl is one error line naming it" \
    "[ $? -eq 1 ] && [ \$(wc -l < e2.err) -eq 1 ] && grep -q '^lflex: norun/log.jsonl: No such file' e2.err"
mkdir -p cut && cp run/checkpoint.safetensors cut/ && cp run/log.jsonl cut/ && printf '{"step": 8, "loss": 2.' >> cut/log.jsonl
"$LFLEX" plot cut --text a 2> e3.err
st=$? last=$(($(wc -l < run/log.jsonl) + 1))
check "a damaged log.jsonl names the line" \
    "[ $st -eq 1 ] && [ \$(wc -l < e3.err) -eq 1 ] && grep -q '^lflex: cut/log.jsonl:$last: not a JSON record' e3.err"
mkdir -p other && cp run/checkpoint.safetensors other/ && echo '[1, 2]' > other/log.jsonl
"$LFLEX" plot other --text a 2> e4.err
check "a log that is not of lflex train is an error" "[ $? -eq 1 ] && grep -q 'other/log.jsonl:1: a record without an integer \"step\"' e4.err"
LFLEX_PYTHON=/nonexistent/python3 "$LFLEX" plot run --text a 2> e5.err
check "without python3: one error line saying what is needed" \
    "[ $? -eq 1 ] && [ \$(wc -l < e5.err) -eq 1 ] && grep -q 'plot needs python3 with matplotlib (Debian: apt-get install python3-matplotlib): /nonexistent/python3: No such file' e5.err"
mkdir -p nompl/matplotlib && echo 'raise ImportError("No module named matplotlib")' > nompl/matplotlib/__init__.py
PYTHONPATH="$dir/nompl" "$LFLEX" plot run --text a 2> e6.err
check "without matplotlib: one error line saying what is needed" \
    "[ $? -eq 1 ] && [ \$(wc -l < e6.err) -eq 1 ] && grep -q 'plot needs matplotlib for python3 (Debian: apt-get install python3-matplotlib)' e6.err"
"$LFLEX" plot > /dev/null 2> e7.err
check "no run directory is a usage error" "[ $? -eq 2 ] && grep -q 'the run directory is missing' e7.err"

echo "1..$n"
exit $failed
