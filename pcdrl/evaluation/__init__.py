"""Evaluation: judge-eval, eval with label controls, statistics (one bootstrap), report.html, plots and tables."""
