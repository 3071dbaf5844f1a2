"""Default values written once: every option, config and spec field that shares a default refers to
the constant here, so changing a default is one edit (and a spec field cannot keep an old copy).

A core module: it imports nothing, so every layer can refer to it.
"""

from __future__ import annotations

BATCH_SIZE = 64
"""Texts per encoder batch when neither the request nor a preset sets one."""

SHARD_SIZE = 2048
"""Documents (or query-document pairs) per cache shard: the unit an interrupted encode resumes from."""

TOP_K = 1000
"""Documents kept per query in a run (BEIR's and the papers' depth)."""


RERANK_DEPTH = 100
"""Documents a cross-encoder re-scores per query (BEIR's re-ranking depth)."""

DTYPE = "fp32"
"""The precision a model computes in (fp16/bf16 change the scores, so they are asked for by name)."""

CACHE_DTYPE = "fp32"
"""How corpus vectors are stored in the embedding cache (fp16: half the disk; scored in fp32)."""

BACKEND = "auto"
"""The encoder backend: `auto` is a rule, settled per model and machine (`encoders.choose_backend`)."""

PROCESSES = 1
"""Corpus-encoding worker processes on one device."""

FAMILY = "auto"
"""The model family: `auto` is the one the request names, its preset's, or the one that detects its folder."""

MAXSIM_SEARCH = "auto"
"""Late interaction's search: `auto` is exact MaxSim up to a corpus size, `full` any corpus."""

DECIMALS = 4
"""Decimals a table's text formats show (`table --decimals`); CSV keeps every digit."""

FIGURE_WIDTHS = {"single": 3.35, "double": 7.0}
"""Figure widths in inches: one column and the full text width of a two-column paper (ACM sigconf's
241 pt and 506 pt; docs/figures.md compares IEEE's and ACL's)."""

FIGURE_WIDTH = "double"
"""The width `plot` draws at unless asked (a key of `FIGURE_WIDTHS`)."""

FIGURE_FONT_SIZE = 8
"""Points of every text in a figure: a paper's caption size when the figure is placed at 100%."""
