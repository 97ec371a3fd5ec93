"""An SSD pipeline written apart from edgenet's, for tests to hold edgenet's detection core against.

It resizes with its own calls, and reads the four postprocess outputs by the tensor names each converter
gives them (as the model mirror's MANIFEST records), never through edgenet.detection.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgenet.runtime import load_backend

# tensor name -> what it holds, per converter
OUTPUT_NAMES = {
    "TFLite_Detection_PostProcess": "boxes",  # TF1
    "TFLite_Detection_PostProcess:1": "classes",
    "TFLite_Detection_PostProcess:2": "scores",
    "TFLite_Detection_PostProcess:3": "count",
    "StatefulPartitionedCall:3": "boxes",  # TF2 (the FPNLite model)
    "StatefulPartitionedCall:2": "classes",
    "StatefulPartitionedCall:1": "scores",
    "StatefulPartitionedCall:0": "count",
}


class ReferenceDetector:
    def __init__(self, model_path):
        self.interpreter = load_backend().interpreter_class(model_path=str(model_path))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = {OUTPUT_NAMES[d["name"]]: d["index"] for d in self.interpreter.get_output_details()}

    def raw(self, image_bgr: np.ndarray) -> dict:
        """The four outputs by name, after one invoke on the whole frame resized to the input."""
        height, width = (int(x) for x in self.input["shape"][1:3])
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        pixels = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.input["dtype"] == np.float32:
            # [-1, 1], in the very arithmetic edgenet uses: this float model moves its boxes by about a pixel
            # for a one-ulp change of its input ((p - 127.5) / 127.5 instead of p * (2 / 255) - 1)
            tensor = pixels.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
        else:
            tensor = pixels  # uint8 with the model's own quantization: raw pixels
        self.interpreter.set_tensor(self.input["index"], tensor[None])
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}

    def detect(self, image_bgr: np.ndarray, threshold: float = 0.0) -> list[tuple[int, float, tuple]]:
        """(class, score, (xmin, ymin, xmax, ymax) in pixels of the frame), best first."""
        out = self.raw(image_bgr)
        frame_h, frame_w = image_bgr.shape[:2]
        found = []
        for i in range(min(int(out["count"].reshape(-1)[0]), out["scores"].shape[-1])):
            score = float(out["scores"][0, i])
            if score < threshold:
                continue
            ymin, xmin, ymax, xmax = (min(max(float(v), 0.0), 1.0) for v in out["boxes"][0, i])
            box = (xmin * frame_w, ymin * frame_h, xmax * frame_w, ymax * frame_h)
            found.append((int(round(float(out["classes"][0, i]))), score, box))
        return found
