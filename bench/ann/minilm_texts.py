#!/usr/bin/python3
"""Writes the MiniLM ANN data set's texts: Wikipedia passages (bench/rag/rag.py's chunker, ~WORDS words each) from
../shared/datasets/wikipedia, articles shuffled with a fixed seed, one passage per line. The first --n lines become
the base rows and the next --nq the queries (passages of other articles than most base rows: held out, not copies).

  minilm_texts.py --data-dir DIR --n 20000 --nq 1000 --words 100 --out TEXTS.txt
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rag"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rag  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, help="where the tarball is unpacked (outside the repository)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--words", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    files, _ = rag.unpack(rag.DEFAULT_TARBALL, a.data_dir)
    passages, stats = rag.build_corpus(files, a.words, a.n + a.nq, seed=7)
    if len(passages) < a.n + a.nq:
        raise SystemExit(f"only {len(passages)} passages of ~{a.words} words in the corpus")
    with open(a.out, "w", encoding="utf-8") as f:
        for p in passages:
            f.write(" ".join(p[5].split()) + "\n")  # one line per passage
    print(f"{len(passages)} passages ({a.n} base + {a.nq} queries) of {stats['words_per_passage']['mean']:.0f} words "
          f"on average, from {stats['articles_loaded']} articles -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
