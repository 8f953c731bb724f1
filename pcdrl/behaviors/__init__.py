"""Behaviour-question datasets, built by running S: continuations, response attributes and audit files."""
