"""gtr-eval: zero-shot BEIR evaluation of GTR, any sentence-transformers model and BM25."""

__version__ = "0.1.0"
