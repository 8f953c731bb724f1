"""Reward-weight sweeps: the sweep config, local and Ray launchers, results tables and the Pareto plot."""
