"""A synthetic BEIR folder shaped like MS MARCO, for scale benchmarks (seeded, deterministic).

MS MARCO's passage set has 8,841,823 passages of about 15-95 words (mean about 56), empty titles,
numeric ids, 6,980 dev queries of a few words and about one judged passage per query; its
corpus.jsonl is about 3.0-4.2 GB depending on formatting.  This generator reproduces that shape:

- vocabulary: the English stopwords as the most frequent words, then pronounceable made-up words
  (shorter words tend to be more frequent, as in real text), drawn with Zipf frequencies (exponent 1);
- passages: gamma-distributed lengths (mean 56 words) clipped to 15-95 words;
- queries: each picks a target passage and takes 2-4 of its non-stopword words, mostly common ones,
  plus 0-2 common words from elsewhere, behind a question opener such as "what is the", so BM25 and
  a bag-of-words stand-in encoder find the target often but far from always (NDCG@10 well inside
  (0, 1));
- qrels/dev.tsv: the target passage, grade 1 (MS MARCO's split is dev).

    python benchmarks/make_synthetic.py --docs 1000000 --out /work/scale-data/synth-1m
    python benchmarks/make_synthetic.py --docs 8841823 --out /work/scale-data/synth-8.8m

Files are written to a temporary folder and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

MSMARCO_DOCS = 8_841_823
MSMARCO_DEV_QUERIES = 6_980
VOCAB_SIZE = 2_000_000
MEAN_WORDS, MIN_WORDS, MAX_WORDS = 56, 15, 95
OPENERS = ["what is the", "how to", "what is", "definition of", "how long does", "where is the", "who is", ""]
_ONSETS = "b c d f g h j k l m n p r s t v w z br ch cr dr fl gr pl pr sh st th tr".split()
_VOWELS = "a e i o u ai ea ee ie oo ou".split()
_CODAS = ["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "ng"]


def stopwords() -> list[str]:
    """bm25s' English stopword list, most frequent first (it is what BM25 here removes)."""
    from bm25s.stopwords import STOPWORDS_EN

    return list(dict.fromkeys(STOPWORDS_EN))


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Stopwords, then unique made-up words of 2-5 syllables; shorter ones get the frequent ranks."""
    stops = stopwords()
    taken = set(stops)
    words: list[str] = []
    while len(words) < size - len(stops):
        n = int(size * 1.3)
        syllables = rng.integers(2, 6, n, endpoint=False)
        parts = [
            rng.integers(0, len(_ONSETS), (n, 5)),
            rng.integers(0, len(_VOWELS), (n, 5)),
            rng.integers(0, len(_CODAS), (n, 5)),
        ]
        for i in range(n):
            w = "".join(
                _ONSETS[parts[0][i, j]] + _VOWELS[parts[1][i, j]] + _CODAS[parts[2][i, j]]
                for j in range(syllables[i])
            )
            if len(w) > 1 and w not in taken:
                taken.add(w)
                words.append(w)
                if len(words) == size - len(stops):
                    break
    # Frequent ranks get the shorter words, loosely (length plus noise), which puts the mean line
    # near the 475 bytes of the 4.2 GB MS MARCO-shaped file the scale figures were first taken on.
    key = np.array([len(w) for w in words], dtype=np.float64) + rng.normal(0.0, 4.0, len(words))
    return stops + [words[i] for i in np.argsort(key, kind="stable")]


def zipf_cdf(size: int, exponent: float = 1.0) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def passage_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    shape = 7.0
    return np.clip(np.rint(rng.gamma(shape, MEAN_WORDS / shape, n)), MIN_WORDS, MAX_WORDS).astype(np.int64)


def write_corpus(path: Path, n_docs: int, vocab: np.ndarray, cdf: np.ndarray, rng: np.random.Generator,
                 chunk: int = 100_000) -> None:  # fmt: skip
    t0 = time.time()
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for start in range(0, n_docs, chunk):
            n = min(chunk, n_docs - start)
            lengths = passage_lengths(n, rng)
            ranks = np.searchsorted(cdf, rng.random(int(lengths.sum())), side="right")
            words = vocab[ranks].tolist()
            ends = np.cumsum(lengths).tolist()
            lines, a = [], 0
            for i, b in enumerate(ends):
                doc = start + i
                lines.append(f'{{"_id": "{doc}", "title": "", "text": "{" ".join(words[a:b])}"}}\n')
                a = b
            fh.write("".join(lines))
            if start // chunk % 10 == 0:
                print(f"  {start + n:,} / {n_docs:,} passages ({time.time() - t0:.0f} s)", flush=True)


def make_queries(corpus: Path, targets: dict[int, int], vocab: list[str], n_stop: int, seed: int,
                 ) -> list[tuple[str, str, int]]:  # fmt: skip
    """(query id, text, target passage) per target, in query-id order, read back from `corpus`.

    A query takes 2-4 of its passage's non-stopword words, drawn in proportion to their corpus
    frequency (so mostly common, weakly discriminating words), plus 0-2 common words from
    elsewhere in the vocabulary, behind a question opener.
    """
    rng = np.random.default_rng([seed, 1])
    rank = {w: r for r, w in enumerate(vocab)}
    texts: dict[int, str] = {}
    with open(corpus, encoding="utf-8") as fh:
        for doc, line in enumerate(fh):
            if doc in targets:
                texts[doc] = line.split('"text": "', 1)[1].rsplit('"', 1)[0]
    out = []
    for doc, q in sorted(targets.items(), key=lambda kv: kv[1]):
        content = list(dict.fromkeys(r for r in (rank[w] for w in texts[doc].split()) if r >= n_stop))
        weights = 1.0 / np.array(content, dtype=np.float64) if content else np.zeros(0)
        take = min(len(content), int(rng.integers(2, 5)))
        picked = (
            [content[i] for i in rng.choice(len(content), take, replace=False, p=weights / weights.sum())]
            if take
            else []
        )
        for _ in range(int(rng.integers(0, 3))):
            picked.append(n_stop + int(rng.zipf(1.3)) % (len(vocab) - n_stop))
        rng.shuffle(picked)
        opener = OPENERS[int(rng.integers(len(OPENERS)))]
        out.append((f"q{q}", " ".join(([opener] if opener else []) + [vocab[r] for r in picked]), doc))
    return out


def write_queries(out: Path, queries: list[tuple[str, str, int]]) -> None:
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(f'{{"_id": "{qid}", "text": "{text}"}}\n' for qid, text, _ in queries)
    (out / "qrels").mkdir(exist_ok=True)
    with open(out / "qrels" / "dev.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"{qid}\t{doc}\t1\n" for qid, _, doc in queries)


def _setup(n_docs: int, n_queries: int, seed: int, vocab_size: int):
    """Vocabulary, frequencies and query targets: the first draws of the seeded stream, in this order."""
    rng = np.random.default_rng(seed)
    vocab = np.array(vocabulary(vocab_size, rng), dtype=object)
    target_docs = rng.choice(n_docs, n_queries, replace=False)
    return rng, vocab, zipf_cdf(len(vocab)), {int(d): q for q, d in enumerate(target_docs.tolist())}


def generate(out: Path, n_docs: int, n_queries: int, seed: int, vocab_size: int = VOCAB_SIZE,
             queries_only: bool = False) -> Path:  # fmt: skip
    t0 = time.time()
    rng, vocab, cdf, targets = _setup(n_docs, n_queries, seed, vocab_size)
    print(f"vocabulary: {len(vocab):,} words ({time.time() - t0:.0f} s)", flush=True)
    if queries_only:  # new queries for an existing corpus made with the same settings
        write_queries(
            out, make_queries(out / "corpus.jsonl", targets, vocab.tolist(), len(stopwords()), seed)
        )
        print(f"{out}: {n_queries:,} queries rewritten ({time.time() - t0:.0f} s)")
        return out
    if out.exists():
        raise SystemExit(f"{out} exists; remove it first")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_corpus(tmp / "corpus.jsonl", n_docs, vocab, cdf, rng)
    write_queries(tmp, make_queries(tmp / "corpus.jsonl", targets, vocab.tolist(), len(stopwords()), seed))
    (tmp / "README.md").write_text(
        f"Synthetic MS MARCO-shaped corpus: {n_docs:,} passages, {n_queries:,} dev queries, seed {seed}, "
        f"vocabulary {vocab_size:,}.\nMade by benchmarks/make_synthetic.py.\n"
    )
    tmp.rename(out)
    size = (out / "corpus.jsonl").stat().st_size
    print(
        f"{out}: {n_docs:,} passages ({size / 1e9:.2f} GB), {n_queries:,} queries ({time.time() - t0:.0f} s)"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the BEIR folder to create")
    ap.add_argument("--docs", type=int, default=MSMARCO_DOCS)
    ap.add_argument("--queries", type=int, default=MSMARCO_DEV_QUERIES)
    ap.add_argument("--vocab", type=int, default=VOCAB_SIZE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries-only", action="store_true", help="rewrite the queries of an existing folder")
    args = ap.parse_args(argv)
    generate(args.out, args.docs, args.queries, args.seed, args.vocab, args.queries_only)


if __name__ == "__main__":
    main()
