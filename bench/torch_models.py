"""PyTorch reference implementations of the studies' networks, as the originals wrote them.

The parity tests port these weights into the Flax models; the throughput
bench trains them side by side with the JAX versions.
"""

import torch
from torch import nn


class FiveConvTorch(nn.Module):
    """5conv1fc: conv -> ReLU -> Dropout -> MaxPool per block, one Linear on top."""

    def __init__(self, num_classes: int = 10, input_hw: tuple[int, int] = (90, 120)):
        super().__init__()
        features = (1, 16, 32, 64, 128, 256)
        rates = (0.8, 0.5, 0.5, 0.5, 0.5)
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(features[i], features[i + 1], 3))
            setattr(self, f"drop{i + 1}", nn.Dropout(rates[i]))
        self.pool = nn.MaxPool2d(2)
        h, w = input_hw
        for _ in range(4):
            h, w = (h - 2) // 2, (w - 2) // 2
        self.fc = nn.Linear(256 * (h - 2) * (w - 2), num_classes)

    def forward(self, x):
        for i in range(1, 6):
            x = getattr(self, f"drop{i}")(torch.relu(getattr(self, f"conv{i}")(x)))
            if i < 5:
                x = self.pool(x)
        return self.fc(torch.flatten(x, 1))
