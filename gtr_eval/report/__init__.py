"""Reporting on stored results: leaderboard tables, the GTR paper's tables, plots."""
