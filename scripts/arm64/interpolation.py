"""INTER_LINEAR against INTER_LINEAR_EXACT: top-1 on the shared photos for several models, with edgenet's crop
(shorter side to S / 0.875, centre S x S), printed as JSON. Run it on x86-64 and on arm64 and compare:

    .venv/bin/python scripts/arm64/interpolation.py --save out/x86
    ARM64_RUN='.venv/bin/python scripts/arm64/interpolation.py --save out/arm64' make test-arm64
    .venv/bin/python scripts/arm64/interpolation.py --compare out/x86 out/arm64

`--save` keeps the resized crops (npz) and the raw outputs; `--compare` counts the pixels and the top-1 that
differ between two machines. Figures: docs/boards.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))
MODELS = {
    "v1-0.25-128": "mobilenet_v1_0.25_128_quant.tflite",
    "v1-0.5-160": "mobilenet_v1_0.5_160_quant.tflite",
    "v1-0.75-192": "mobilenet_v1_0.75_192_quant.tflite",
    "v2-qat": "mobilenet_v2_1.0_224_quant.tflite",
    "v2": "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "v3-small": "v3-small_224_1.0_uint8.tflite",
    "edgetpu-0.75": "mobilenet_edgetpu_0.75_224_post_training_quant.tflite",
}
TRUTH = {  # the photo's true ImageNet class (tests/test_eval.py); kite_and_cold.jpg has none
    "bird.bmp": "chickadee",
    "cat.bmp": "Egyptian cat",
    "cat_1080p.jpg": "Egyptian cat",
    "cat_720p.jpg": "Egyptian cat",
    "dragonfly.bmp": "dragonfly, darning needle, devil's darning needle, "
    "sewing needle, snake feeder, snake doctor, mosquito hawk, skeeter hawk",
    "grace_hopper.bmp": "military uniform",
    "hot_dog.jpg": "hotdog, hot dog, red hot",
    "owl.jpg": "great grey owl, great gray owl, Strix nebulosa",
    "parrot.jpg": "macaw",
    "pets.jpg": "Italian greyhound",
    "sunflower.bmp": "daisy",
}
INTERPOLATIONS = ("INTER_LINEAR", "INTER_LINEAR_EXACT")


def crop(image_bgr: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    import cv2

    from edgenet.imaging import crop_box

    resized_h, resized_w, top, left = crop_box(image_bgr.shape[0], image_bgr.shape[1], size, size)
    full = cv2.resize(image_bgr, (resized_w, resized_h), interpolation=interpolation)
    return cv2.cvtColor(full[top : top + size, left : left + size], cv2.COLOR_BGR2RGB)


def measure(save: Path | None) -> dict:
    import cv2

    from edgenet.imaging import read_image, to_input_tensor
    from edgenet.runtime import Engine

    labels = (SHARED / "models" / "imagenet_labels.txt").read_text().splitlines()  # 1001, background first
    photos = {name: read_image(str(SHARED / "images" / name)) for name in sorted(TRUTH)}
    result = {"machine": platform.machine(), "opencv": cv2.__version__, "models": {}}
    for model, file in MODELS.items():
        engine = Engine(SHARED / "models" / file, threads=1)
        offset = 1 if engine.output.classes == 1001 else 0
        size = engine.input.height
        per_model = result["models"][model] = {}
        for name in INTERPOLATIONS:
            tops, crops, outputs = {}, {}, {}
            for photo, image in photos.items():
                pixels = crop(image, size, getattr(cv2, name))
                raw = engine.run(to_input_tensor(pixels, engine.input)).copy()
                order = np.argsort(-raw.astype(np.int64), kind="stable")
                margin = int(raw[order[0]]) - int(raw[order[1]])
                tops[photo] = [int(order[0]), labels[int(order[0]) + 1 - offset], margin]
                crops[photo], outputs[photo] = pixels, raw
            hits = sum(labels.index(TRUTH[p]) - 1 + offset == top[0] for p, top in tops.items())
            per_model[name] = {"top1": hits, "of": len(tops), "tops": tops}
            if save:
                save.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(save / f"{model}-{name}-crops.npz", **crops)
                np.savez_compressed(save / f"{model}-{name}-outputs.npz", **outputs)
    return result


def compare(first: Path, second: Path) -> dict:
    """Per model and interpolation: resized values that differ, and photos whose top-1 differs."""
    summary = {}
    for crops_file in sorted(first.glob("*-crops.npz")):
        key = crops_file.name[: -len("-crops.npz")]
        a, b = np.load(crops_file), np.load(second / crops_file.name)
        differ = sum(int((a[p] != b[p]).sum()) for p in a.files)
        total = sum(a[p].size for p in a.files)
        max_step = max(int(np.abs(a[p].astype(int) - b[p].astype(int)).max()) for p in a.files)
        oa = np.load(first / f"{key}-outputs.npz")
        ob = np.load(second / f"{key}-outputs.npz")
        flips = [p for p in oa.files if int(np.argmax(oa[p])) != int(np.argmax(ob[p]))]
        output_differs = sum(int((oa[p] != ob[p]).any()) for p in oa.files)
        summary[key] = {
            "pixels_differ": round(differ / total, 4),
            "max_step": max_step,
            "outputs_differ": output_differs,
            "top1_flips": flips,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="keep crops and raw outputs in this folder")
    parser.add_argument("--compare", type=Path, nargs=2, metavar="FOLDER")
    options = parser.parse_args()
    if options.compare:
        print(json.dumps(compare(*options.compare), indent=1))
        return
    result = measure(options.save)
    if options.save:
        (options.save / "result.json").write_text(json.dumps(result, indent=1))
    for model, per in result["models"].items():
        line = ", ".join(f"{name} {v['top1']}/{v['of']}" for name, v in per.items())
        print(f"{result['machine']} {model}: top-1 {line}")


if __name__ == "__main__":
    main()
