"""RL alone: the concept-set policy, sampling, GRPO/PPO losses, updates, rollout, critic and the trainer loop."""
