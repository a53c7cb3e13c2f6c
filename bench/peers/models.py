"""The zoo models in PyTorch, with the layer names netc gives them, so that
state_dicts move between the two unchanged."""

import torch
from torch import nn


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Basic(nn.Module):
    """Two 3x3 convs with batch norm; a projected shortcut when `down`."""

    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or c_in != c:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        s = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + s)


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[Basic(16, 16, 1) for _ in range(3)])
        self.layer2 = nn.Sequential(Basic(16, 32, 2), Basic(32, 32, 1), Basic(32, 32, 1))
        self.layer3 = nn.Sequential(Basic(32, 64, 2), Basic(64, 64, 1), Basic(64, 64, 1))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


class AlexNet(nn.Module):
    """Single tower, LRN after conv1 and conv2; dropout as in the zoo file
    (one module applied twice, which `masks.use_netc_masks` numbers as the
    file's two dropout layers)."""

    def __init__(self, p=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, 4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        pool = lambda t: nn.functional.max_pool2d(t, 3, 2)
        x = pool(self.lrn(torch.relu(self.conv1(x))))
        x = pool(self.lrn(torch.relu(self.conv2(x))))
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv4(x))
        x = pool(torch.relu(self.conv5(x)))
        x = x.flatten(1)
        x = torch.relu(self.fc1(self.drop(x)))
        x = torch.relu(self.fc2(self.drop(x)))
        return self.fc3(x)


class Autoencoder(nn.Module):
    """cli/models/autoencoder.net: two strided convs, a transposed conv, a
    bilinear upsampling and a conv back to the image."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 2, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.deconv1 = nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1)
        self.conv3 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        code = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        y = torch.relu(self.deconv1(code))
        y = nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.conv3(y))


def torchvision_model(name, **kwargs):
    """A torchvision model built with `weights=None` (nothing is
    downloaded), whose `state_dict` the zoo's `.net` file follows."""

    def build():
        import torchvision.models as tv

        return getattr(tv, name)(weights=None, **kwargs)

    return build


ZOO = {
    "mlp": (Mlp, (784,), 128),
    "lenet5": (LeNet5, (1, 28, 28), 64),
    "resnet20": (ResNet20, (3, 32, 32), 64),
    "alexnet": (AlexNet, (3, 227, 227), 8),
    "resnet50": (torchvision_model("resnet50"), (3, 224, 224), 8),
    "densenet121": (torchvision_model("densenet121"), (3, 224, 224), 8),
    "mobilenet_v2": (torchvision_model("mobilenet_v2"), (3, 224, 224), 16),
    "squeezenet1_1": (torchvision_model("squeezenet1_1"), (3, 224, 224), 16),
    "mobilenet_v3_small": (torchvision_model("mobilenet_v3_small"), (3, 224, 224), 16),
    "googlenet": (torchvision_model("googlenet", aux_logits=False, init_weights=False), (3, 224, 224), 16),
    "efficientnet_b0": (torchvision_model("efficientnet_b0"), (3, 224, 224), 16),
    "autoencoder": (Autoencoder, (1, 28, 28), 64),
}

# Models trained to reproduce their input (netc's `mse`: half the summed
# squared error over the batch size) rather than to classify.
RECONSTRUCT = {"autoencoder"}
