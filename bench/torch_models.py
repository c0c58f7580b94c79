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


class SumCNNTorch(nn.Module):
    """The digit-sum CNN: regressor with num_classes=1, classifier with 37."""

    def __init__(self, num_classes: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 10 * 42, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class VGGRegressorTorch(nn.Module):
    """1x1 conv 1->3 (no bias) -> VGG11 features and 7x7 adaptive avg pool (frozen) -> MLP -> 1."""

    def __init__(self, weights=None, head: tuple[int, int] = (4096, 256)):
        super().__init__()
        import torchvision

        vgg = torchvision.models.vgg11(weights=weights)
        self.adapter = nn.Conv2d(1, 3, 1, bias=False)
        self.features = vgg.features
        self.avgpool = vgg.avgpool
        for p in self.features.parameters():
            p.requires_grad = False
        self.head = nn.Sequential(
            nn.Linear(512 * 7 * 7, head[0]),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(head[0], head[1]),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(head[1], 1),
        )

    def forward(self, x):
        x = self.avgpool(self.features(self.adapter(x)))
        return self.head(torch.flatten(x, 1))
