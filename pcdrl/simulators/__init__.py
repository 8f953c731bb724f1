"""Simulated humans: judge prompts, calibrated answer scoring, personas and held-out judges."""
