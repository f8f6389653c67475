#!/usr/bin/env python3
"""Every relative link in README.md and doc/*.md points to an existing file:
Markdown links and images [text](path#anchor), and Markdown file names quoted
as code (`doc/config.md`, `learning.md`), resolved against the document's
folder or the repository root. Fenced code blocks are skipped. TAP output.

usage: md_links.py SOURCE_ROOT"""
import glob
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
docs = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "doc", "*.md")))
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_MD = re.compile(r"`([A-Za-z0-9_./-]+\.md)`")


def exists(doc, target):
    here = os.path.dirname(doc)
    return any(os.path.exists(os.path.normpath(os.path.join(base, target))) for base in (here, root))


n = 0
failed = False
for doc in docs:
    bad = []
    fenced = False
    for lineno, line in enumerate(open(doc, encoding="utf-8"), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        targets = [m.group(1) for m in LINK.finditer(line)]
        targets = [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
        targets = [t.split("#", 1)[0] for t in targets]
        targets += CODE_MD.findall(line)
        bad += ["%d: %s" % (lineno, t) for t in targets if t and not exists(doc, t)]
    n += 1
    name = os.path.relpath(doc, root)
    if bad:
        failed = True
        print("not ok %d - %s links to missing files: %s" % (n, name, "; ".join(bad)))
    else:
        print("ok %d - %s: every relative link resolves" % (n, name))
print("1..%d" % n)
sys.exit(1 if failed else 0)
