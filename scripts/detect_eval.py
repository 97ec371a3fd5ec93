"""COCO mAP of a detector on a folder (coco-permissive), through the interpreter directly: the detection core
(edgenet.detection, edgenet.coco_eval) before `edgenet eval --task detect` is wired into the run loop.

    .venv/bin/python scripts/detect_eval.py ../shared/models/detection/ssd_mobilenet_v1_1_default_1.tflite \
        ../shared/datasets/coco-permissive --ground-truth yolo
"""

from __future__ import annotations

import argparse
import json

from edgenet import coco_eval, detection
from edgenet.imaging import prepare, read_image
from edgenet.labels import embedded_labels
from edgenet.runtime import input_spec_from_details, load_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("folder")
    parser.add_argument("--ground-truth", default="auto", choices=coco_eval.GROUND_TRUTH_KINDS)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    interpreter = load_backend().interpreter_class(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    spec = input_spec_from_details(interpreter.get_input_details()[0], interpreter)
    details = interpreter.get_output_details()
    input_index = interpreter.get_input_details()[0]["index"]
    mapping = detection.identify_outputs(
        details, detection.postprocess_outputs(interpreter._get_ops_details())
    )
    labels = detection.detector_labels(embedded_labels(args.model)) or list(detection.coco_labels())
    truth = coco_eval.load_ground_truth(args.folder, args.ground_truth)
    categories = coco_eval.category_map(labels, truth)
    results = []
    for image in truth.images:
        frame = read_image(image.path)
        interpreter.set_tensor(input_index, prepare(frame, spec, "stretch"))
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in details]
        found = detection.decode(outputs, mapping, (image.width, image.height), threshold=0.0, labels=labels)
        results += coco_eval.results_for_image(image.image_id, found, categories)
    scores = coco_eval.coco_map(truth, results)
    report = {"model": args.model, "ground_truth": truth.source, **scores.to_dict()}
    report["unmatched"] = coco_eval.unmatched_categories(categories, truth)
    del report["per_category"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
