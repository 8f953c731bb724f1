"""rewards: see design.md."""
