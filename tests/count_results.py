#!/usr/bin/env python3
"""Count test results over meson test logs and print "N passed, N failed".

A TAP test contributes one result per TAP line ("ok" / "not ok"; a crash
after its last line counts as one more failure); any other test contributes
one result by its exit status. Exit status 1 when anything failed or a log
is missing.
"""
import json
import re
import sys

passed = failed = 0
ok = True
for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"missing test log {path}: {e}", file=sys.stderr)
        ok = False
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        result = t.get("result")
        if result == "SKIP":
            continue
        out = t.get("stdout") or ""
        tap = re.findall(r"^(ok|not ok)\b(.*)$", out, re.M)
        if tap:
            for verdict, rest in tap:
                if "# SKIP" in rest:
                    continue
                if verdict == "ok":
                    passed += 1
                else:
                    failed += 1
            if result not in ("OK", "EXPECTEDFAIL") and all(v == "ok" for v, _ in tap):
                failed += 1  # crashed or timed out after its last reported case
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(0 if ok and failed == 0 else 1)
