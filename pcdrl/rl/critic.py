"""PPO's critic: an MLP from an item's pooled activation to the reward its explanation will earn."""
from __future__ import annotations

from torch import nn
import torch


class ValueHead(nn.Module):
    def __init__(self, d_model: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled).squeeze(-1)
