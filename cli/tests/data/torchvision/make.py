"""Writes the images and torchvision's tensors that cli/src/data/folder.rs
checks its resize and crop against: python3 make.py (needs torchvision)."""
import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms as T

rng = np.random.default_rng(7)


def make(w, h, name):
    y, x = np.mgrid[0:h, 0:w]
    red, green = x * 255 / (w - 1), y * 255 / (h - 1)
    blue = rng.integers(0, 256, size=(h, w))
    pixels = np.stack([red, green, blue], -1).round().astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(name)


make(23, 17, "down.png")
make(5, 7, "up.png")
lines = [
    f"# torchvision {torchvision.__version__}: Grayscale (when 1 channel), "
    "Resize(8), CenterCrop(8), ToTensor"
]
for name in ["down.png", "up.png"]:
    image = Image.open(name)
    for grey in [False, True]:
        steps = [T.Grayscale()] if grey else []
        transform = T.Compose(steps + [T.Resize(8), T.CenterCrop(8), T.ToTensor()])
        values = transform(image).flatten().tolist()
        lines.append(f"{name} {1 if grey else 3} " + " ".join(f"{v:.6f}" for v in values))
with open("expected.txt", "w") as f:
    f.write("\n".join(lines) + "\n")
