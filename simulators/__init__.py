"""simulators: see design.md."""
