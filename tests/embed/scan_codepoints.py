#!/usr/bin/env python3
"""Tokenizer parity over (nearly) every code point: tokenizes "a" + chr(c) + "b" with the C tokenizer and with Hugging
Face `tokenizers`, for all of planes 0-2, plane 3 up to U+31FFF and the tags plane up to U+E01FF (203,264 code points),
and lists where they differ, grouped by general category. A developer's check, not a test: the known differences are
all code points assigned or re-categorised after the Unicode version of the reference's tables (see tokenizer.c).

  build-embed/venv/bin/python tests/embed/scan_codepoints.py [MODEL_DIR]

Builds its helper (scan_codepoints.c) with gcc into build-embed/.
"""
import collections
import os
import subprocess
import sys
import unicodedata

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QV_MODEL_DIR", os.path.join(ROOT, "build", "model"))
    exe = os.path.join(ROOT, "build-embed", "scan_codepoints")
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.check_call(["gcc", "-O2", "-I" + ROOT, os.path.join(HERE, "scan_codepoints.c"),
                           os.path.join(ROOT, "query", "embed", "tokenizer.c"), os.path.join(ROOT, "common", "err.c"),
                           "-lutf8proc", "-o", exe])
    c_out = subprocess.run([exe, os.path.join(model_dir, "vocab.txt")], check=True, capture_output=True,
                           text=True).stdout
    c_ids = dict(line.split(" ", 1) for line in c_out.splitlines())
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    cps = [int(h, 16) for h in c_ids]
    diffs = collections.defaultdict(list)
    for c, enc in zip(cps, tok.encode_batch(["a" + chr(c) + "b" for c in cps])):
        if " ".join(map(str, enc.ids)) != c_ids["%x" % c]:
            diffs[unicodedata.category(chr(c))].append(c)
    total = sum(len(v) for v in diffs.values())
    print("%d code points scanned, %d tokenize differently (Python's Unicode %s names the categories)"
          % (len(cps), total, unicodedata.unidata_version))
    for cat, cs in sorted(diffs.items(), key=lambda kv: -len(kv[1])):
        print("  %s: %4d  e.g. %s" % (cat, len(cs), " ".join("U+%04X" % c for c in cs[:8])))


if __name__ == "__main__":
    main()
