"""edgenet from Python: the same records as the command line, for your own scripts (a Home Assistant add-on,
a notebook). Run it with the venv's Python: .venv/bin/python examples/api.py [PHOTO_FOLDER]"""

import sys
from pathlib import Path

import cv2

import edgenet


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if folder is None:
        from edgenet import zoo

        folder = zoo.sample_images()  # the three sample photos, pulled and checked like models
    model = edgenet.open_model("v2", threads=1)  # a zoo name or a .tflite path; delegate="cpu", ...
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    for photo in photos:
        record = model.process(str(photo))  # a path ...
        if "error" in record:
            print(f"{photo.name}: {record['error']}")
            continue
        best = record["top_k"][0]
        print(
            f"{photo.name}: {best['label']} {best['score']:.2f} ({record['latency_ms']['inference']:.1f} ms)"
        )
    frame = cv2.imread(str(photos[-1]))  # ... or a frame you already have (HxWx3 uint8, BGR)
    detector = edgenet.open_model("ssd-v1", threads=1)
    found = detector.process(frame, source="my-frame")["detections"]
    print("detected:", ", ".join(f"{d['label']} {d['score']:.2f}" for d in found) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
