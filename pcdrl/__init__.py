"""pcd-rl: train Predictive Concept Decoders with RL so that their explanations help a simulated human predict a model.

Packages, from the ground up (a package imports only those above it in this list; tests/test_architecture.py checks):
runtime (run folders, atomic writes, journals, signals, progress, reporting, the typed YAML loader) → models →
pcd → behaviors → simulators → explanations → rewards → rl → evaluation → sweeps → quickstart and cli (the `pcdrl` verbs).
The shipped YAML configs live in pcdrl/configs/; `configs/...` on a command line names them from any folder.
"""
__version__ = "0.1.0"
