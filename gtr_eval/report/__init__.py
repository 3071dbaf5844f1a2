"""Reporting on stored results: leaderboards, the GTR paper's tables, plots, the static report site,
and moving results in and out (MTEB files, TREC runs, ranx JSON, CSV)."""
