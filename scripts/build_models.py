#!/usr/bin/env python3
"""Build architecture-faithful, full-integer int8 MobileNets (V1 to V4) as TFLite files.

Runs in the build environment, never in edgenet's own:

    make build-venv   (python3 -m venv .venv-build && .venv-build/bin/pip install -r requirements-build.txt)
    .venv-build/bin/python scripts/build_models.py v4-conv-small v3-large --out build/models

Every file has a uint8 input and output, batch 1, TFLite builtin ops only and no float op: int8 inside,
QUANTIZE at the two edges. V1, V2, V3-Small and V3-Large come from keras.applications; V4 Conv-Small,
Conv-Medium and Hybrid-Medium are written here from the paper (arXiv 2404.10518: Universal Inverted
Bottleneck, FusedIB, Mobile multi-query attention), with the block lists of the paper's Tables 10-12 as timm
spells them, so that their trainable parameter counts equal timm's (3,774,024 / 9,715,512 / 11,074,648).

Weights: Keras ImageNet weights for V1-V3 when they can be downloaded (--weights auto, the default);
otherwise random, with BatchNorm statistics re-estimated on the calibration photos so that activation ranges
look trained, and the file is named `*_int8_random`: such a file is for latency only, its predictions mean
nothing. Calibration uses real photos (--images, default ../shared/images) augmented with random crops and
flips up to --samples.

Progress goes to stderr; stdout gets one JSON record per built model (file, params, ops, sha256, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared")) / "images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
ALLOWED_DTYPES = {"int8", "uint8", "int32"}


# --------------------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    name: str  # the zoo's name for the architecture
    stem: str  # file name before _int8[_random].tflite; {size} is the input resolution
    source: str  # "keras" (keras.applications) or "paper" (written here)
    pixel_range: str  # what the float model wants: "symmetric" [-1, 1] or "raw" [0, 255]
    timm_params: int | None = None  # trainable parameters of timm's model at 1000 classes


RECIPES = {
    r.name: r
    for r in (
        Recipe("v1", "mobilenet_v1_1.0_{size}", "keras", "symmetric"),
        Recipe("v2", "mobilenet_v2_1.0_{size}", "keras", "symmetric"),
        # Keras's MobileNetV3 includes its own Rescaling: it takes pixels 0-255.
        Recipe("v3-small", "mobilenet_v3_small_1.0_{size}", "keras", "raw"),
        Recipe("v3-large", "mobilenet_v3_large_1.0_{size}", "keras", "raw"),
        Recipe("v4-conv-small", "mobilenetv4_conv_small_{size}", "paper", "symmetric", 3_774_024),
        Recipe("v4-conv-medium", "mobilenetv4_conv_medium_{size}", "paper", "symmetric", 9_715_512),
        Recipe("v4-hybrid-medium", "mobilenetv4_hybrid_medium_{size}", "paper", "symmetric", 11_074_648),
    )
}

# MobileNetV4 block lists, stage by stage (paper Tables 10-12; timm's notation):
#   cn_k3_s2_c32          conv kxk, BN, ReLU
#   er_k3_s2_e4_c48       FusedIB: conv kxk expanding e times, BN, ReLU; conv 1x1, BN
#   uir_a3_k5_s2_e4_c80   UIB: optional DW a x a (start), 1x1 expand, optional DW k x k (middle), 1x1 project.
#                         a>0,k>0 ExtraDW; a=0,k>0 IB; a>0,k=0 ConvNeXt-like; a=0,k=0 FFN
#   mqa_k3_h4_v2_d64_c160 Mobile MQA: BN, h query heads, one shared key and value of d channels, keys and
#                         values downsampled by a DW k x k with stride v
#   rN repeats a block N times. Stage 0 follows the stem (conv 3x3 stride 2); the head is global pooling,
#   conv 1x1 to 1280, BN, ReLU and the classifier.
V4_ARCHS = {
    "v4-conv-small": [
        ["cn_r1_k3_s2_c32", "cn_r1_k1_s1_c32"],
        ["cn_r1_k3_s2_c96", "cn_r1_k1_s1_c64"],
        ["uir_r1_a5_k5_s2_e3_c96", "uir_r4_a0_k3_s1_e2_c96", "uir_r1_a3_k0_s1_e4_c96"],
        [
            "uir_r1_a3_k3_s2_e6_c128",
            "uir_r1_a5_k5_s1_e4_c128",
            "uir_r1_a0_k5_s1_e4_c128",
            "uir_r1_a0_k5_s1_e3_c128",
            "uir_r2_a0_k3_s1_e4_c128",
        ],
        ["cn_r1_k1_s1_c960"],
    ],
    "v4-conv-medium": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"],
        [
            "uir_r1_a3_k5_s2_e6_c160",
            "uir_r2_a3_k3_s1_e4_c160",
            "uir_r1_a3_k5_s1_e4_c160",
            "uir_r1_a3_k3_s1_e4_c160",
            "uir_r1_a3_k0_s1_e4_c160",
            "uir_r1_a0_k0_s1_e2_c160",
            "uir_r1_a3_k0_s1_e4_c160",
        ],
        [
            "uir_r1_a5_k5_s2_e6_c256",
            "uir_r1_a5_k5_s1_e4_c256",
            "uir_r2_a3_k5_s1_e4_c256",
            "uir_r1_a0_k0_s1_e4_c256",
            "uir_r1_a3_k0_s1_e4_c256",
            "uir_r1_a3_k5_s1_e2_c256",
            "uir_r1_a5_k5_s1_e4_c256",
            "uir_r2_a0_k0_s1_e4_c256",
            "uir_r1_a5_k0_s1_e2_c256",
        ],
        ["cn_r1_k1_s1_c960"],
    ],
    "v4-hybrid-medium": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"],
        [
            "uir_r1_a3_k5_s2_e6_c160",
            "uir_r1_a0_k0_s1_e2_c160",
            "uir_r1_a3_k3_s1_e4_c160",
            "uir_r1_a3_k5_s1_e4_c160",
            "mqa_r1_k3_h4_v2_d64_c160",
            "uir_r1_a3_k3_s1_e4_c160",
            "mqa_r1_k3_h4_v2_d64_c160",
            "uir_r1_a3_k0_s1_e4_c160",
            "mqa_r1_k3_h4_v2_d64_c160",
            "uir_r1_a3_k3_s1_e4_c160",
            "mqa_r1_k3_h4_v2_d64_c160",
            "uir_r1_a3_k0_s1_e4_c160",
        ],
        [
            "uir_r1_a5_k5_s2_e6_c256",
            "uir_r1_a5_k5_s1_e4_c256",
            "uir_r2_a3_k5_s1_e4_c256",
            "uir_r1_a0_k0_s1_e2_c256",
            "uir_r1_a3_k5_s1_e2_c256",
            "uir_r1_a0_k0_s1_e2_c256",
            "uir_r1_a0_k0_s1_e4_c256",
            "mqa_r1_k3_h4_v1_d64_c256",
            "uir_r1_a3_k0_s1_e4_c256",
            "mqa_r1_k3_h4_v1_d64_c256",
            "uir_r1_a5_k5_s1_e4_c256",
            "mqa_r1_k3_h4_v1_d64_c256",
            "uir_r1_a5_k0_s1_e4_c256",
            "mqa_r1_k3_h4_v1_d64_c256",
            "uir_r1_a5_k0_s1_e4_c256",
        ],
        ["cn_r1_k1_s1_c960"],
    ],
}
V4_STEM = 32
V4_HEAD = 1280


def parse_block(text: str) -> tuple[str, int, dict[str, int]]:
    """'uir_r2_a3_k5_s1_e4_c256' -> ('uir', 2, {'a': 3, 'k': 5, 's': 1, 'e': 4, 'c': 256})."""
    kind, *fields = text.split("_")
    options = {field[0]: int(field[1:]) for field in fields}
    return kind, options.pop("r", 1), options


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8, never below 90% of the asked value (as every MobileNet does)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# --------------------------------------------------------------------------------------------------
# MobileNetV4 in Keras
# --------------------------------------------------------------------------------------------------
def _v4_layers():
    """Keras layers of MobileNetV4, defined on first use so that --help does not import TensorFlow."""
    import keras
    import tensorflow as tf

    class LayerScale(keras.layers.Layer):
        """Per-channel learnt scale at the end of a residual branch (the hybrid models have it)."""

        def __init__(self, init_value: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.init_value = init_value

        def build(self, input_shape):
            self.gamma = self.add_weight(
                shape=(input_shape[-1],),
                initializer=keras.initializers.Constant(self.init_value),
                name="gamma",
            )

        def call(self, x):
            return x * self.gamma

        def get_config(self):
            return {**super().get_config(), "init_value": self.init_value}

    class MultiQueryAttention(keras.layers.Layer):
        """softmax(q k^T / sqrt(d)) v with `heads` query heads sharing one key and one value.

        q: [1, H, W, heads*d], k and v: [1, H', W', d]. Heads are laid out as extra query rows
        ([1, H*W*heads, d]), so that the whole block is two BATCH_MATMULs and four RESHAPEs: no TRANSPOSE.
        """

        def __init__(self, heads: int, key_dim: int, **kwargs):
            super().__init__(**kwargs)
            self.heads = heads
            self.key_dim = key_dim

        def call(self, query, key, value):
            batch, height, width, _ = query.shape
            q = tf.reshape(query, (batch, height * width * self.heads, self.key_dim))
            q = q * (self.key_dim**-0.5)
            k = tf.reshape(key, (batch, -1, self.key_dim))
            v = tf.reshape(value, (batch, -1, self.key_dim))
            attention = tf.nn.softmax(tf.linalg.matmul(q, k, transpose_b=True), axis=-1)
            out = tf.linalg.matmul(attention, v)
            return tf.reshape(out, (batch, height, width, self.heads * self.key_dim))

        def get_config(self):
            return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim}

    return keras, LayerScale, MultiQueryAttention


def build_v4(name: str, size: int, classes: int, layer_scale_init: float = 1.0):
    """MobileNetV4 `name` as a Keras functional model with a fixed [1, size, size, 3] input.

    layer_scale_init: starting value of the hybrid models' layer scale. timm starts training at 1e-5;
    random-weight builds use 1.0 so that residual branches carry trained-looking activations.
    """
    keras, LayerScale, MultiQueryAttention = _v4_layers()
    L = keras.layers
    hybrid = "hybrid" in name
    counter = Counter()

    def uid(kind: str) -> str:
        counter[kind] += 1
        return f"{kind}{counter[kind]}"

    def bn(x, prefix):
        return L.BatchNormalization(epsilon=1e-5, name=f"{prefix}_bn")(x)

    def conv(x, channels, kernel, stride, prefix, act=True):
        x = L.Conv2D(channels, kernel, stride, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
        x = bn(x, prefix)
        return L.ReLU(name=f"{prefix}_relu")(x) if act else x

    def dwconv(x, kernel, stride, prefix, act=True):
        x = L.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{prefix}_dw")(x)
        x = bn(x, prefix)
        return L.ReLU(name=f"{prefix}_relu")(x) if act else x

    def residual(x, shortcut, stride, prefix):
        if hybrid:
            x = LayerScale(layer_scale_init, name=f"{prefix}_scale")(x)
        if stride == 1 and shortcut.shape[-1] == x.shape[-1]:
            x = L.Add(name=f"{prefix}_add")([shortcut, x])
        return x

    def block(x, kind, o):
        p = uid(kind)
        if kind == "cn":
            return conv(x, o["c"], o["k"], o["s"], p)
        if kind == "er":  # FusedIB
            y = conv(x, make_divisible(x.shape[-1] * o["e"]), o["k"], o["s"], f"{p}_exp")
            y = conv(y, o["c"], 1, 1, f"{p}_proj", act=False)
            return L.Add(name=f"{p}_add")([x, y]) if o["s"] == 1 and x.shape[-1] == o["c"] else y
        if kind == "uir":  # Universal Inverted Bottleneck
            start, mid, stride = o["a"], o["k"], o["s"]
            y = dwconv(x, start, 1 if mid else stride, f"{p}_start", act=False) if start else x
            y = conv(y, make_divisible(x.shape[-1] * o["e"]), 1, 1, f"{p}_exp")
            if mid:
                y = dwconv(y, mid, stride, f"{p}_mid")
            y = conv(y, o["c"], 1, 1, f"{p}_proj", act=False)
            return residual(y, x, stride, p)
        if kind == "mqa":  # Mobile multi-query attention
            heads, dim, kv_stride = o["h"], o["d"], o["v"]
            y = bn(x, f"{p}_norm")
            query = L.Conv2D(heads * dim, 1, use_bias=False, name=f"{p}_query")(y)
            key_in, value_in = y, y
            if kv_stride > 1:
                key_in = dwconv(y, o["k"], kv_stride, f"{p}_key_down", act=False)
                value_in = dwconv(y, o["k"], kv_stride, f"{p}_value_down", act=False)
            key = L.Conv2D(dim, 1, use_bias=False, name=f"{p}_key")(key_in)
            value = L.Conv2D(dim, 1, use_bias=False, name=f"{p}_value")(value_in)
            y = MultiQueryAttention(heads, dim, name=f"{p}_attention")(query, key, value)
            y = L.Conv2D(o["c"], 1, use_bias=False, name=f"{p}_output")(y)
            return residual(y, x, 1, p)
        raise ValueError(f"unknown block kind {kind!r}")

    inputs = keras.Input(batch_shape=(1, size, size, 3), name="image")
    x = conv(inputs, V4_STEM, 3, 2, "stem")
    for stage in V4_ARCHS[name]:
        for text in stage:
            kind, repeats, options = parse_block(text)
            for _ in range(repeats):
                x = block(x, kind, options)
    x = L.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = conv(x, V4_HEAD, 1, 1, "head")
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name.replace("-", "_"))


# --------------------------------------------------------------------------------------------------
# keras.applications
# --------------------------------------------------------------------------------------------------
def build_keras_application(name: str, size: int, classes: int, weights: str):
    """V1-V3 from keras.applications, with a [1, size, size, 3] input (a dynamic batch would leave
    SHAPE/STRIDED_SLICE/PACK ops in the graph). Returns (model, pretrained)."""
    import keras

    constructors = {
        "v1": keras.applications.MobileNet,
        "v2": keras.applications.MobileNetV2,
        "v3-small": keras.applications.MobileNetV3Small,
        "v3-large": keras.applications.MobileNetV3Large,
    }
    make = constructors[name]

    def construct(with_weights):
        inputs = keras.Input(batch_shape=(1, size, size, 3), name="image")
        kwargs = {"input_tensor": inputs, "weights": with_weights, "classes": classes}
        if name.startswith("v3"):
            kwargs["include_preprocessing"] = True
        return make(**kwargs)

    if weights in ("auto", "imagenet"):
        if classes != 1000:
            if weights == "imagenet":
                raise SystemExit("ImageNet weights need --classes 1000")
        else:
            try:
                with stdout_to_stderr():  # Keras says "Downloading data from ..." on stdout
                    return construct("imagenet"), True
            except Exception as exc:  # no network, or no weights for this size
                reason = " ".join(str(exc).split())[:240]
                if weights == "imagenet":
                    raise SystemExit(f"cannot load ImageNet weights for {name} at {size}: {reason}") from None
                say(f"{name}: no ImageNet weights ({reason}); using random weights (latency only)")
    return construct(None), False


# --------------------------------------------------------------------------------------------------
# Calibration photos
# --------------------------------------------------------------------------------------------------
def load_photos(folder: Path):
    import cv2

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not photos:
        raise SystemExit(f"no readable photos in {folder}; give --images a folder of .jpg/.png/.bmp photos")
    return photos


def calibration_set(photos, size: int, samples: int, seed: int):
    """`samples` RGB float32 crops of size x size (pixels 0-255): first each photo whole (center crop of
    its shorter side), then random crops (35-100% of the area, aspect 3/4-4/3) with random flips."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    batch = np.empty((samples, size, size, 3), np.float32)
    for i in range(samples):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        if i < len(photos):
            side = min(h, w)
            top, left, ch, cw = (h - side) // 2, (w - side) // 2, side, side
        else:
            area = h * w * rng.uniform(0.35, 1.0)
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw = min(w, max(8, int(round(math.sqrt(area * aspect)))))
            ch = min(h, max(8, int(round(math.sqrt(area / aspect)))))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[top : top + ch, left : left + cw]
        if i >= len(photos) and rng.random() < 0.5:
            crop = crop[:, ::-1]
        batch[i] = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
    return batch


def to_model_range(batch, pixel_range: str):
    return batch / 127.5 - 1.0 if pixel_range == "symmetric" else batch


# --------------------------------------------------------------------------------------------------
# Weights, conversion, checks
# --------------------------------------------------------------------------------------------------
def all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def reestimate_batchnorm(model, batch) -> int:
    """Set every BatchNorm's moving mean/variance to the statistics of `batch`, layer after layer (one
    forward pass in training mode with momentum 0), so that random weights give trained-looking ranges."""
    import keras

    norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer, momentum in zip(norms, saved, strict=True):
        layer.momentum = momentum
    return len(norms)


def trainable_params(model) -> int:
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def convert(model, calibration):
    import tensorflow as tf

    def representative_dataset():
        for sample in calibration:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    with stdout_to_stderr():  # Keras's export prints the traced signature on stdout: keep stdout for records
        return converter.convert()


@contextlib.contextmanager
def stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def check_int8(path: Path, size: int, classes: int) -> dict[str, int]:
    """Load the file with builtin kernels only and refuse anything but a full-integer graph.
    Returns the op counts."""
    import numpy as np
    import tensorflow as tf

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    interpreter = tf.lite.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    problems = []
    for op in ops:
        for index in [*op["inputs"], *op["outputs"]]:
            if index < 0:
                continue
            dtype = np.dtype(tensors[index]["dtype"]).name
            if dtype not in ALLOWED_DTYPES:
                problems.append(f"{op['op_name']} has a {dtype} tensor {tensors[index]['name']!r}")
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    if list(inp["shape"]) != [1, size, size, 3] or inp["dtype"] != np.uint8:
        problems.append(f"input is {np.dtype(inp['dtype']).name} {list(inp['shape'])}")
    if list(out["shape"]) != [1, classes] or out["dtype"] != np.uint8:
        problems.append(f"output is {np.dtype(out['dtype']).name} {list(out['shape'])}")
    if problems:
        raise SystemExit(f"{path.name} is not a full-integer model: " + "; ".join(problems[:5]))
    interpreter.set_tensor(inp["index"], np.full(inp["shape"], 128, np.uint8))
    interpreter.invoke()
    return dict(Counter(op["op_name"] for op in ops).most_common())


def build_one(recipe: Recipe, args, photos) -> dict:
    import keras
    import numpy as np

    started = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    if recipe.source == "paper":
        if args.weights == "imagenet":
            raise SystemExit(f"no ImageNet weights exist for {recipe.name} here; use --weights random")
        model, pretrained = build_v4(recipe.name, args.size, args.classes), False
    else:
        model, pretrained = build_keras_application(recipe.name, args.size, args.classes, args.weights)
    params = trainable_params(model)
    say(f"{recipe.name}: {params:,} trainable parameters" + ("" if pretrained else " (random weights)"))
    if recipe.timm_params and args.classes == 1000 and params != recipe.timm_params:
        raise SystemExit(f"{recipe.name}: {params:,} parameters, timm has {recipe.timm_params:,}")

    pixels = calibration_set(photos, args.size, args.samples, args.seed)
    calibration = to_model_range(pixels, recipe.pixel_range)
    weights_source = "Keras ImageNet weights (keras.applications)"
    if not pretrained:
        norms = reestimate_batchnorm(model, calibration)
        say(f"{recipe.name}: BatchNorm statistics of {norms} layers re-estimated on {len(pixels)} photos")
        weights_source = (
            f"random (seed {args.seed}), BatchNorm statistics re-estimated on {len(pixels)} calibration "
            f"samples of {len(photos)} photos"
        )
    say(f"{recipe.name}: converting to full-integer int8 ({len(calibration)} calibration samples)")
    flatbuffer = convert(model, calibration.astype(np.float32))

    stem = recipe.stem.format(size=args.size) + ("_int8" if pretrained else "_int8_random")
    path = args.out / f"{stem}.tflite"
    path.write_bytes(flatbuffer)
    ops = check_int8(path, args.size, args.classes)
    record = {
        "model": recipe.name,
        "file": str(path),
        "size": len(flatbuffer),
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "params": params,
        "input": args.size,
        "classes": args.classes,
        "weights": "imagenet" if pretrained else "random",
        "latency_only": not pretrained,
        "weights_source": weights_source,
        "ops": ops,
        "build_s": round(time.perf_counter() - started, 1),
        "tensorflow": tf_version(),
        "keras": keras.__version__,
    }
    say(
        f"{recipe.name}: wrote {path} ({len(flatbuffer):,} bytes, {sum(ops.values())} ops) "
        f"in {record['build_s']} s" + ("" if pretrained else "; latency only: random weights")
    )
    return record


def tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Build full-integer int8 MobileNet TFLite files (uint8 I/O, batch 1, builtin ops only).",
        epilog="Run with the build environment: .venv-build/bin/python scripts/build_models.py ...",
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        choices=[*RECIPES, "all"],
        help=f"what to build: {', '.join(RECIPES)} or all",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "models", help="output folder")
    parser.add_argument("--size", type=int, default=224, help="input resolution (default 224)")
    parser.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument(
        "--weights",
        choices=("auto", "imagenet", "random"),
        default="auto",
        help="auto: Keras ImageNet weights for V1-V3 when downloadable, else random",
    )
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="photos for calibration")
    parser.add_argument("--samples", type=int, default=100, help="calibration samples (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size < 32 or args.size % 32:
        parser.error(f"--size must be a multiple of 32 and at least 32, not {args.size}")
    if args.classes < 2 or args.samples < 1:
        parser.error("--classes must be 2 or more and --samples 1 or more")
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    names = list(RECIPES) if "all" in args.models else list(dict.fromkeys(args.models))
    args.out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(args.images)
    for name in names:
        print(json.dumps(build_one(RECIPES[name], args, photos)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
