"""rl: see design.md."""
