"""Run-time plumbing every verb shares: run folders, atomic writes and fsync, journals, signals, progress bars,
wandb/tensorboard reporting, and the typed YAML config loader. Nothing here knows about models or RL."""
