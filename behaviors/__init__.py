"""behaviors: see design.md."""
