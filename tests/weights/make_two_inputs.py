"""Writes two_inputs.safetensors, the weights tests/build.rs embeds in the
`Two` network (tests/nets/two_inputs.net): value i of each tensor is
sin(i + k) / 4 for the tensor's index k; `fc2.weight` is stored as
float16, so the embedded load covers an upcast."""
import numpy as np
from safetensors.numpy import save_file

shapes = {
    "fc1.weight": (16, 8),
    "fc1.bias": (16,),
    "fc2.weight": (16, 8),
    "fc2.bias": (16,),
    "fc3.weight": (3, 32),
    "fc3.bias": (3,),
}
tensors = {}
for k, (name, shape) in enumerate(shapes.items()):
    values = (np.sin(np.arange(np.prod(shape)) + k) / 4).reshape(shape).astype(np.float32)
    tensors[name] = values.astype(np.float16) if name == "fc2.weight" else values
save_file(tensors, "two_inputs.safetensors")
