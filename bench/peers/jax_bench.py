"""Times the zoo in JAX (`jax.jit`, CPU), as torch_bench.py times PyTorch:
a training step (forward, cross-entropy, backward, SGD with momentum 0.9,
batch norm on batch statistics with its running statistics updated, dropout
on) at the standard batch, and inference at batch 1 and at the standard
batch. Plain JAX, no Flax: the same layers as models.py, with PyTorch's
default initialisation bounds. Prints one JSON object per line:
{"system": "jax", "model", "mode", "batch", "ms"} (median of the runs).

    python jax_bench.py [MODEL ...]
"""

import json
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

SHAPES = {
    "mlp": ((784,), 128),
    "lenet5": ((1, 28, 28), 64),
    "resnet20": ((3, 32, 32), 64),
    "alexnet": ((3, 227, 227), 8),
    "mobilenet_v2": ((3, 224, 224), 16),
    "squeezenet1_1": ((3, 224, 224), 16),
    "resnet50": ((3, 224, 224), 8),
}


def median_ms(fn, budget=2.0, min_runs=5):
    jax.block_until_ready(fn())  # compiles
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget:
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t) * 1e3)
        if len(times) > 1000:
            break
    return statistics.median(times)


class Init:
    """PyTorch's default bounds, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def __init__(self, seed):
        self.key = jax.random.PRNGKey(seed)

    def uniform(self, shape, fan_in):
        self.key, k = jax.random.split(self.key)
        b = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(k, shape, jnp.float32, -b, b)

    def dense(self, i, o):
        return {"w": self.uniform((o, i), i), "b": self.uniform((o,), i)}

    def conv(self, cin, cout, k, bias=True, groups=1):
        p = {"w": self.uniform((cout, cin // groups, k, k), cin // groups * k * k)}
        if bias:
            p["b"] = self.uniform((cout,), cin * k * k)
        return p


def dense(p, x):
    return x @ p["w"].T + p["b"]


def conv(p, x, stride=1, pad=0, groups=1):
    y = lax.conv_general_dilated(
        x, p["w"], (stride, stride), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups
    )
    return y + p["b"][None, :, None, None] if "b" in p else y


def max_pool(x, k, s, pad=0, ceil_mode=False):
    """PyTorch's output size: with ceil_mode, a last window that starts
    inside the (left-padded) input is kept, padded with -inf on the right."""
    pads = [(0, 0), (0, 0)]
    for size in x.shape[2:]:
        span = size + 2 * pad - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= size + pad:
            out -= 1
        pads.append((pad, (out - 1) * s + k - size - pad))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), pads)


def dropout(x, p, train, key):
    if not train:
        return x
    return jnp.where(jax.random.bernoulli(key, 1.0 - p, x.shape), x / (1.0 - p), 0.0)


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    pad = [(0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)]
    avg = lax.reduce_window(x * x, 0.0, lax.add, (1, size, 1, 1), (1, 1, 1, 1), pad) / size
    return x / (k + alpha * avg) ** beta


def batch_norm(p, s, x, train, momentum=0.1, eps=1e-5):
    """Returns y and the new running statistics."""
    if train:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        m = x.size // x.shape[1]
        s = {"mean": (1 - momentum) * s["mean"] + momentum * mean, "var": (1 - momentum) * s["var"] + momentum * var * m / (m - 1)}
    else:
        mean, var = s["mean"], s["var"]
    y = (x - mean[None, :, None, None]) * lax.rsqrt(var + eps)[None, :, None, None]
    return y * p["gamma"][None, :, None, None] + p["beta"][None, :, None, None], s


def bn_params(c):
    return {"gamma": jnp.ones(c), "beta": jnp.zeros(c)}, {"mean": jnp.zeros(c), "var": jnp.ones(c)}


def mlp():
    i = Init(0)
    params = {"fc1": i.dense(784, 512), "fc2": i.dense(512, 256), "fc3": i.dense(256, 10)}

    def apply(p, s, x, train, key):
        x = x.reshape(x.shape[0], -1)
        return dense(p["fc3"], jax.nn.relu(dense(p["fc2"], jax.nn.relu(dense(p["fc1"], x))))), s

    return params, {}, apply


def lenet5():
    i = Init(0)
    params = {"conv1": i.conv(1, 6, 5), "conv2": i.conv(6, 16, 5), "fc1": i.dense(400, 120), "fc2": i.dense(120, 84), "fc3": i.dense(84, 10)}

    def apply(p, s, x, train, key):
        x = max_pool(jax.nn.relu(conv(p["conv1"], x, pad=2)), 2, 2)
        x = max_pool(jax.nn.relu(conv(p["conv2"], x)), 2, 2)
        x = x.reshape(x.shape[0], -1)
        return dense(p["fc3"], jax.nn.relu(dense(p["fc2"], jax.nn.relu(dense(p["fc1"], x))))), s

    return params, {}, apply


def resnet20():
    i = Init(0)
    params, state = {"conv1": i.conv(3, 16, 3, bias=False)}, {}
    params["bn1"], state["bn1"] = bn_params(16)
    blocks = []
    c_in = 16
    for stage, c in enumerate((16, 32, 64)):
        for b in range(3):
            stride = 2 if stage > 0 and b == 0 else 1
            name = f"layer{stage + 1}.{b}"
            params[name + ".conv1"] = i.conv(c_in, c, 3, bias=False)
            params[name + ".bn1"], state[name + ".bn1"] = bn_params(c)
            params[name + ".conv2"] = i.conv(c, c, 3, bias=False)
            params[name + ".bn2"], state[name + ".bn2"] = bn_params(c)
            down = stride != 1 or c_in != c
            if down:
                params[name + ".down"] = i.conv(c_in, c, 1, bias=False)
                params[name + ".downbn"], state[name + ".downbn"] = bn_params(c)
            blocks.append((name, stride, down))
            c_in = c
    params["fc"] = i.dense(64, 10)

    def apply(p, s, x, train, key):
        s = dict(s)

        def bn(name, t):
            y, s[name] = batch_norm(p[name], s[name], t, train)
            return y

        x = jax.nn.relu(bn("bn1", conv(p["conv1"], x, 1, 1)))
        for name, stride, down in blocks:
            y = jax.nn.relu(bn(name + ".bn1", conv(p[name + ".conv1"], x, stride, 1)))
            y = bn(name + ".bn2", conv(p[name + ".conv2"], y, 1, 1))
            short = bn(name + ".downbn", conv(p[name + ".down"], x, stride, 0)) if down else x
            x = jax.nn.relu(y + short)
        return dense(p["fc"], x.mean((2, 3))), s

    return params, state, apply


def alexnet():
    i = Init(0)
    params = {
        "conv1": i.conv(3, 96, 11), "conv2": i.conv(96, 256, 5), "conv3": i.conv(256, 384, 3),
        "conv4": i.conv(384, 384, 3), "conv5": i.conv(384, 256, 3),
        "fc1": i.dense(9216, 4096), "fc2": i.dense(4096, 4096), "fc3": i.dense(4096, 1000),
    }

    def drop(x, train, key):
        if not train:
            return x
        return jnp.where(jax.random.bernoulli(key, 0.5, x.shape), x * 2.0, 0.0)

    def apply(p, s, x, train, key):
        k1, k2 = jax.random.split(key)
        x = max_pool(lrn(jax.nn.relu(conv(p["conv1"], x, 4))), 3, 2)
        x = max_pool(lrn(jax.nn.relu(conv(p["conv2"], x, 1, 2))), 3, 2)
        x = jax.nn.relu(conv(p["conv3"], x, 1, 1))
        x = jax.nn.relu(conv(p["conv4"], x, 1, 1))
        x = max_pool(jax.nn.relu(conv(p["conv5"], x, 1, 1)), 3, 2)
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(dense(p["fc1"], drop(x, train, k1)))
        x = jax.nn.relu(dense(p["fc2"], drop(x, train, k2)))
        return dense(p["fc3"], x), s

    return params, {}, apply


class Layers:
    """The parameters and batch-norm state of a torchvision network, made as
    its layers are declared, and the batch norms applied by name."""

    def __init__(self):
        self.init, self.params, self.state = Init(0), {}, {}

    def conv(self, name, cin, cout, k, bias=False, groups=1):
        self.params[name] = self.init.conv(cin, cout, k, bias, groups)

    def bn(self, name, c):
        self.params[name], self.state[name] = bn_params(c)

    def conv_bn(self, name, cin, cout, k, groups=1):
        self.conv(name + ".conv", cin, cout, k, groups=groups)
        self.bn(name + ".bn", cout)


def apply_bn(p, s, name, x, train):
    y, s[name] = batch_norm(p[name], s[name], x, train)
    return y


def mobilenet_v2():
    net = Layers()
    net.conv_bn("stem", 3, 32, 3)
    blocks, c_in = [], 32
    for t, c, n, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            name, hidden, s = f"block{len(blocks)}", c_in * t, stride if i == 0 else 1
            if t != 1:
                net.conv_bn(name + ".expand", c_in, hidden, 1)
            net.conv_bn(name + ".dw", hidden, hidden, 3, groups=hidden)
            net.conv_bn(name + ".project", hidden, c, 1)
            blocks.append((name, t, hidden, s, s == 1 and c_in == c))
            c_in = c
    net.conv_bn("last", c_in, 1280, 1)
    net.params["fc"] = net.init.dense(1280, 1000)

    def apply(p, s, x, train, key):
        s = dict(s)

        def conv_bn(name, x, stride=1, pad=0, groups=1, act=True):
            y = apply_bn(p, s, name + ".bn", conv(p[name + ".conv"], x, stride, pad, groups), train)
            return jnp.clip(y, 0.0, 6.0) if act else y

        x = conv_bn("stem", x, 2, 1)
        for name, t, hidden, stride, residual in blocks:
            y = conv_bn(name + ".expand", x) if t != 1 else x
            y = conv_bn(name + ".dw", y, stride, 1, hidden)
            y = conv_bn(name + ".project", y, act=False)
            x = x + y if residual else y
        x = conv_bn("last", x).mean((2, 3))
        return dense(p["fc"], dropout(x, 0.2, train, key)), s

    return net.params, net.state, apply


def squeezenet1_1():
    net = Layers()
    net.conv("conv1", 3, 64, 3, bias=True)
    fires = [(64, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128), (256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256)]
    for i, (cin, sq, ex) in enumerate(fires):
        net.conv(f"fire{i}.squeeze", cin, sq, 1, bias=True)
        net.conv(f"fire{i}.expand1x1", sq, ex, 1, bias=True)
        net.conv(f"fire{i}.expand3x3", sq, ex, 3, bias=True)
    net.conv("classifier", 512, 1000, 1, bias=True)

    def apply(p, s, x, train, key):
        def fire(i, x):
            x = jax.nn.relu(conv(p[f"fire{i}.squeeze"], x))
            a = jax.nn.relu(conv(p[f"fire{i}.expand1x1"], x))
            b = jax.nn.relu(conv(p[f"fire{i}.expand3x3"], x, 1, 1))
            return jnp.concatenate([a, b], axis=1)

        x = max_pool(jax.nn.relu(conv(p["conv1"], x, 2)), 3, 2, ceil_mode=True)
        x = max_pool(fire(1, fire(0, x)), 3, 2, ceil_mode=True)
        x = max_pool(fire(3, fire(2, x)), 3, 2, ceil_mode=True)
        for i in range(4, 8):
            x = fire(i, x)
        x = jax.nn.relu(conv(p["classifier"], dropout(x, 0.5, train, key)))
        return x.mean((2, 3)), s

    return net.params, net.state, apply


def resnet50():
    net = Layers()
    net.conv_bn("stem", 3, 64, 7)
    blocks, c_in = [], 64
    for stage, (width, n) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for i in range(n):
            name, stride = f"layer{stage + 1}.{i}", 2 if stage > 0 and i == 0 else 1
            net.conv_bn(name + ".1", c_in, width, 1)
            net.conv_bn(name + ".2", width, width, 3)
            net.conv_bn(name + ".3", width, width * 4, 1)
            down = i == 0
            if down:
                net.conv_bn(name + ".down", c_in, width * 4, 1)
            blocks.append((name, stride, down))
            c_in = width * 4
    net.params["fc"] = net.init.dense(2048, 1000)

    def apply(p, s, x, train, key):
        s = dict(s)

        def conv_bn(name, x, stride=1, pad=0):
            return apply_bn(p, s, name + ".bn", conv(p[name + ".conv"], x, stride, pad), train)

        x = max_pool(jax.nn.relu(conv_bn("stem", x, 2, 3)), 3, 2, pad=1)
        for name, stride, down in blocks:
            y = jax.nn.relu(conv_bn(name + ".1", x))
            y = jax.nn.relu(conv_bn(name + ".2", y, stride, 1))
            y = conv_bn(name + ".3", y)
            short = conv_bn(name + ".down", x, stride) if down else x
            x = jax.nn.relu(y + short)
        return dense(p["fc"], x.mean((2, 3))), s

    return net.params, net.state, apply


ZOO = {
    "mlp": mlp,
    "lenet5": lenet5,
    "resnet20": resnet20,
    "alexnet": alexnet,
    "mobilenet_v2": mobilenet_v2,
    "squeezenet1_1": squeezenet1_1,
    "resnet50": resnet50,
}
# The torchvision networks run only when named, as in zoo_time.
TORCHVISION = {"mobilenet_v2", "squeezenet1_1", "resnet50"}


def time_model(name):
    params, state, apply = ZOO[name]()
    shape, batch = SHAPES[name]
    key = jax.random.PRNGKey(1)
    x = jax.random.uniform(key, (batch, *shape))
    labels = jax.random.randint(key, (batch,), 0, 10)
    momentum = jax.tree_util.tree_map(jnp.zeros_like, params)

    def loss_fn(p, s, key):
        logits, s = apply(p, s, x, True, key)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], 1)), s

    @jax.jit
    def step(p, v, s, key):
        (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, key)
        v = jax.tree_util.tree_map(lambda v, g: 0.9 * v + g, v, g)
        p = jax.tree_util.tree_map(lambda p, v: p - 0.01 * v, p, v)
        return p, v, s, loss

    holder = {"p": params, "v": momentum, "s": state, "k": key}

    def train_step():
        holder["k"], k = jax.random.split(holder["k"])
        holder["p"], holder["v"], holder["s"], loss = step(holder["p"], holder["v"], holder["s"], k)
        return loss

    rows = [("train_step", batch, median_ms(train_step))]
    infer = jax.jit(lambda p, s, x: apply(p, s, x, False, key)[0])
    for n in (1, batch):
        xn = x[:n]
        rows.append(("forward", n, median_ms(lambda: infer(holder["p"], holder["s"], xn))))
    return rows


def main():
    for name in sys.argv[1:] or [m for m in ZOO if m not in TORCHVISION]:
        try:
            rows = time_model(name)
        except Exception as e:  # noqa: BLE001 - a failing model is reported and skipped
            print(f"jax {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        for mode, n, ms in rows:
            print(json.dumps({"system": "jax", "model": name, "mode": mode, "batch": n, "ms": round(ms, 4)}), flush=True)


if __name__ == "__main__":
    main()
