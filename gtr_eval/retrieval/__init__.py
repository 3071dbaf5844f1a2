"""Retrievers behind one narrow interface (`base.Retriever`), with the encoders, the embedding cache
and the search kernels they are built from.  Depends only on `gtr_eval.data` and `gtr_eval.io`."""
