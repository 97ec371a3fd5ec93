"""`edgenet learn`: the real extractor, real photos (../shared/datasets/flowers-fewshot), the real CLI, both
backends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MIRROR, ROOT, SHARED, run_cli

from edgenet import heads
from edgenet.embeddings import EmbeddingExtractor
from edgenet.errors import InputError, UsageError
from edgenet.labels import embedded_labels
from edgenet.learn import learn
from edgenet.learned_model import HEAD_OPS, describe, labels_text, read_model, write_model
from edgenet.roi import Region, parse_region

FLOWERS = SHARED / "datasets" / "flowers-fewshot"
EXTRACTOR = MIRROR / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
EXTRACTOR_TPU = MIRROR / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite"
TFLITE_RUNTIME = ROOT / ".venv-tflite" / "bin" / "python"


def _require_data():
    for path in (FLOWERS / "train", FLOWERS / "val", EXTRACTOR, EXTRACTOR_TPU):
        if not path.exists():
            pytest.fail(f"{path} is missing: tests need the shared data sets and model mirror", pytrace=False)


@pytest.fixture(scope="module")
def flowers_model(tmp_path_factory):
    """`edgenet learn flowers-fewshot/train` through the real console script, once for this module."""
    _require_data()
    folder = tmp_path_factory.mktemp("learned")
    env = {"EDGENET_MODEL_MIRROR": str(MIRROR), "EDGENET_HOME": str(folder / "home")}
    run = run_cli(
        "learn", str(FLOWERS / "train"), "-o", str(folder / "flowers.tflite"), "-f", "json", env=env
    )
    return folder / "flowers.tflite", run, env


def _one_line_error(run, code: int) -> str:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgenet: error: "), run.stderr
    return lines[0]


def _class_folders(root: Path, counts: dict[str, int], source: str = "train") -> Path:
    """Class folders holding the first N real flower photos of the flower class of the same name."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for photo in sorted((FLOWERS / source / name).iterdir())[:count]:
            shutil.copy(photo, root / name / photo.name)
    return root


# -- what a user does ------------------------------------------------------------------------------------


def test_learn_on_flowers_then_eval_reaches_the_reference(flowers_model):
    model, run, env = flowers_model
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert report["photos"] == dict.fromkeys(report["classes"], 20)
    assert set(report["held_out"]["accuracy"]) == set(heads.HEADS) and report["held_out"]["folds"] == 5
    assert report["head"] in heads.HEADS and report["head_choice"] == "auto"
    best = max(report["held_out"]["accuracy"].values())
    assert report["held_out"]["accuracy"][report["head"]] == best
    assert "held-out accuracy (5-fold cross-validation)" in run.stderr
    assert embedded_labels(model) == report["classes"]
    evaluated = run_cli("eval", str(FLOWERS / "val"), "--model", str(model), "-f", "json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["images"] == 100 and result["errors"] == 0
    assert result["top1"] >= 0.71, result


def test_the_imprinting_head_matches_corals_reference(tmp_path):
    _require_data()
    report = learn(
        FLOWERS / "train", tmp_path / "imprinted.tflite", extractor=str(EXTRACTOR), head="imprinting"
    )
    assert report.head == "imprinting" and report.head_choice == "imprinting"
    weights = report.linear_head.weights / np.float32(report.temperature)
    assert np.allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-5)  # L2-normalised class means
    assert np.all(report.linear_head.bias == 0)
    evaluated = run_cli(
        "eval", str(FLOWERS / "val"), "--model", str(tmp_path / "imprinted.tflite"), "-f", "json"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["top1"] >= 0.71


def test_the_learned_model_gives_the_numpy_heads_scores_in_both_backends(tmp_path):
    """The .tflite's scores = the numpy head on that backend's own extractor output, in ai-edge-litert
    (XNNPACK) and in tflite-runtime 2.14; and the two backends agree with each other."""
    _require_data()
    report = learn(FLOWERS / "train", tmp_path / "flowers.tflite", extractor=str(EXTRACTOR), threads=1)
    from edgenet.imaging import prepare, read_image

    extractor = EmbeddingExtractor(EXTRACTOR, threads=1)
    photos = [sorted((FLOWERS / "val" / name).iterdir())[i] for name in report.classes for i in (0, 7)]
    tensors = np.concatenate([prepare(read_image(str(p)), extractor.input) for p in photos])
    np.save(tmp_path / "inputs.npy", tensors)
    results = {}
    for backend, python in (("ai_edge_litert", sys.executable), ("tflite_runtime", TFLITE_RUNTIME)):
        if not Path(python).exists():
            compat_python = os.environ.get("COMPAT_PYTHON", "python3.11")  # as in the Makefile
            if shutil.which(compat_python) is None:
                pytest.skip(f"tflite-runtime 2.14 needs Python <= 3.11; {compat_python} is not installed")
            pytest.fail(f"{python} is missing: run `make compat-venv` (make test does)", pytrace=False)
        run = subprocess.run(
            [
                str(python),
                "-c",
                _RUN_MODELS,
                backend,
                str(tmp_path / "inputs.npy"),
                str(EXTRACTOR),
                str(tmp_path / "flowers.tflite"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        raw, scores = (np.asarray(rows, dtype=np.float32) for rows in json.loads(run.stdout))
        embeddings = (raw - extractor.zero_point) * extractor.scale
        assert np.abs(report.linear_head.scores(embeddings) - scores).max() < 1e-5, backend
        assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
        results[backend] = scores
    litert, runtime = results["ai_edge_litert"], results["tflite_runtime"]
    assert (litert.argmax(axis=1) == runtime.argmax(axis=1)).all()
    assert np.abs(litert - runtime).max() < 0.05  # the backbones' uint8 outputs differ by a few steps


_RUN_MODELS = """
import importlib, json, sys
import numpy as np
backend, inputs, models = sys.argv[1], np.load(sys.argv[2]), sys.argv[3:]
Interpreter = importlib.import_module(backend + ".interpreter").Interpreter
rows = []
for model in models:
    interpreter = Interpreter(model_path=model, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    outputs = []
    for tensor in inputs:
        interpreter.set_tensor(inp, tensor[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out).reshape(-1).astype(float).tolist())
    rows.append(outputs)
print(json.dumps(rows))
"""


def test_the_edgetpu_twin_runs_the_backbone_on_the_tpu_and_the_head_on_the_cpu(flowers_model):
    model, run, _ = flowers_model
    assert run.returncode == 0, run.stderr
    twin = model.with_name("flowers_edgetpu.tflite")
    assert json.loads(run.stdout)["edgetpu_output"] == str(twin)
    cpu, tpu = describe(model), describe(twin)
    assert tpu.ops == ("edgetpu-custom-op", *HEAD_OPS)
    assert cpu.ops[-4:] == HEAD_OPS and "edgetpu-custom-op" not in cpu.ops
    assert tpu.inputs[0]["shape"] == [1, 224, 224, 3] and tpu.inputs[0]["type"] == "uint8"
    assert tpu.outputs[0]["shape"] == cpu.outputs[0]["shape"] == [1, 5]
    assert tpu.outputs[0]["type"] == "float32"
    assert embedded_labels(twin) == embedded_labels(model)
    original, learned = (read_model(path.read_bytes()) for path in (EXTRACTOR_TPU, twin))
    graph = learned.subgraphs[0]
    custom, dequantize = graph.operators[0], graph.operators[1]
    # the compiled backbone is carried over byte for byte, and its output is what the head reads
    assert bytes(custom.customOptions) == bytes(original.subgraphs[0].operators[0].customOptions)
    assert list(dequantize.inputs) == list(custom.outputs) == list(original.subgraphs[0].outputs)
    embedding = graph.tensors[int(custom.outputs[0])]
    assert list(embedding.shape) == [1, 1, 1, 1024] and embedding.quantization.scale[0] == pytest.approx(
        0.0235285
    )
    # the same head weights as the CPU model's
    cpu_graph = read_model(model.read_bytes())
    weights = [
        bytes(m.buffers[g.tensors[int(g.operators[-2].inputs[1])].buffer].data)
        for m, g in ((learned, graph), (cpu_graph, cpu_graph.subgraphs[0]))
    ]
    assert weights[0] == weights[1] and len(weights[0]) == 5 * 1024 * 4


def test_roi_crops_the_training_photos_as_live_frames_will_be(tmp_path):
    """Photos pasted into the top-left quarter of noisy frames, learned with --roi 0,0,0.5,0.5, give the very
    same model as the photos themselves; without --roi the noise changes it."""
    import cv2

    rng = np.random.default_rng(7)
    for variant in ("photos", "frames"):
        for name in ("daisy", "sunflowers"):
            (tmp_path / variant / name).mkdir(parents=True)
    for name in ("daisy", "sunflowers"):
        for photo in sorted((FLOWERS / "train" / name).iterdir())[:6]:
            image = cv2.imread(str(photo))
            height, width = image.shape[:2]
            frame = rng.integers(0, 256, (2 * height, 2 * width, 3), dtype=np.uint8)
            frame[:height, :width] = image
            cv2.imwrite(str(tmp_path / "photos" / name / f"{photo.stem}.png"), image)
            cv2.imwrite(str(tmp_path / "frames" / name / f"{photo.stem}.png"), frame)
    common = {"extractor": str(EXTRACTOR), "head": "imprinting"}
    learn(tmp_path / "photos", tmp_path / "photos.tflite", **common)
    learn(tmp_path / "frames", tmp_path / "cropped.tflite", region=parse_region("0,0,0.5,0.5"), **common)
    learn(tmp_path / "frames", tmp_path / "whole.tflite", **common)
    assert (tmp_path / "cropped.tflite").read_bytes() == (tmp_path / "photos.tflite").read_bytes()
    assert (tmp_path / "whole.tflite").read_bytes() != (tmp_path / "photos.tflite").read_bytes()


def test_learn_takes_classifys_named_roi_as_it_is(tmp_path, cli):
    """The README's two lines share one value: `--roi door=x,y,w,h` learns what `--roi x,y,w,h` does."""
    for name in ("daisy", "sunflowers"):
        (tmp_path / "few" / name).mkdir(parents=True)
        for photo in sorted((FLOWERS / "train" / name).iterdir())[:5]:
            (tmp_path / "few" / name / photo.name).symlink_to(photo)
    made = {}
    for label, roi in (("plain", "0.1,0.2,0.5,0.6"), ("named", "door=0.1,0.2,0.5,0.6")):
        out = tmp_path / f"{label}.tflite"
        run = cli("learn", str(tmp_path / "few"), "-o", str(out), "--head", "imprinting", "--roi", roi)
        assert run.returncode == 0, run.stderr
        made[label] = out.read_bytes()
    whole = tmp_path / "whole.tflite"
    assert cli("learn", str(tmp_path / "few"), "-o", str(whole), "--head", "imprinting").returncode == 0
    assert made["plain"] == made["named"] != whole.read_bytes()


def test_a_learned_model_whose_labels_were_cut_off_says_so(tmp_path, cli):
    """The zip at the end of a learned model lost its last bytes (a torn copy): classify still runs, on
    class indices, and says that no labels were found instead of passing it by."""
    for name in ("daisy", "sunflowers"):
        (tmp_path / "few" / name).mkdir(parents=True)
        for photo in sorted((FLOWERS / "train" / name).iterdir())[:5]:
            (tmp_path / "few" / name / photo.name).symlink_to(photo)
    model = tmp_path / "m.tflite"
    assert cli("learn", str(tmp_path / "few"), "-o", str(model), "--head", "imprinting").returncode == 0
    model.write_bytes(model.read_bytes()[:-50])
    photo = sorted((FLOWERS / "val" / "daisy").iterdir())[0]
    run = cli("classify", str(photo), "-m", str(model), "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    assert "no labels for this model's 2 classes" in run.stderr
    assert json.loads(run.stdout)["top_k"][0]["label"] in ("0", "1")


# -- refusals and bad photos -------------------------------------------------------------------------------


def test_a_path_that_is_not_a_folder_is_refused_in_one_line(tmp_path, cli):
    photo = sorted((FLOWERS / "train" / "daisy").iterdir())[0]
    for target in (photo, tmp_path / "missing"):
        line = _one_line_error(cli("learn", str(target), "-o", str(tmp_path / "m.tflite")), 2)
        assert "is not a folder" in line and "one sub-folder of photos per class" in line
    assert not (tmp_path / "m.tflite").exists()


def test_a_single_class_is_refused_in_one_line(tmp_path, cli):
    root = _class_folders(tmp_path / "one", {"daisy": 6})
    (root / ".thumbnails").mkdir()  # hidden folders are not classes
    line = _one_line_error(cli("learn", str(root), "-o", str(tmp_path / "m.tflite")), 2)
    assert "only one class folder (daisy)" in line and "at least two" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no class folder" in _one_line_error(cli("learn", str(empty), "-o", str(tmp_path / "m.tflite")), 2)
    assert not (tmp_path / "m.tflite").exists()


def test_a_class_with_fewer_than_five_photos_is_refused_in_one_line(tmp_path, cli):
    root = _class_folders(tmp_path / "few", {"daisy": 6, "roses": 4, "tulips": 0})
    line = _one_line_error(cli("learn", str(root), "-o", str(tmp_path / "m.tflite")), 2)
    assert "at least 5 photos" in line and "roses (4)" in line and "tulips (0)" in line
    assert "daisy" not in line
    assert not (tmp_path / "m.tflite").exists()


def test_photos_that_cannot_be_decoded_are_named_and_skipped(tmp_path, cli):
    root = _class_folders(tmp_path / "photos", {"daisy": 5, "roses": 5})
    photo = sorted((root / "roses").iterdir())[0].read_bytes()
    (root / "roses" / "cut.jpg").write_bytes(photo[: len(photo) // 2])  # a truncated JPEG
    (root / "daisy" / "noise.png").write_bytes(np.random.default_rng(3).bytes(4000))
    (root / "daisy" / "notes.txt").write_text("not a photo: ignored, not an error")
    shutil.copy(sorted((root / "daisy").iterdir())[0], root / "loose.jpg")
    run = cli("learn", str(root), "-o", str(tmp_path / "m.tflite"), "-f", "json")
    assert run.returncode == 1, run.stderr  # some inputs failed; the model is written all the same
    assert "Traceback" not in run.stderr
    skipped = [
        line for line in run.stderr.splitlines() if "skipped" in line and "cannot decode image" in line
    ]
    assert (
        len(skipped) == 2 and any("cut.jpg" in s for s in skipped) and any("noise.png" in s for s in skipped)
    )
    report = json.loads(run.stdout)
    assert sorted(Path(s["source"]).name for s in report["skipped"]) == ["cut.jpg", "noise.png"]
    assert report["photos"] == {"daisy": 5, "roses": 5}
    assert embedded_labels(tmp_path / "m.tflite") == ["daisy", "roses"]
    assert "1 photo directly in" in run.stderr and "put each in its class's folder" in run.stderr


def test_a_class_left_with_too_few_readable_photos_is_refused(tmp_path, cli):
    root = _class_folders(tmp_path / "photos", {"daisy": 5, "roses": 4})
    (root / "roses" / "empty.jpg").write_bytes(b"")
    run = cli("learn", str(root), "-o", str(tmp_path / "m.tflite"))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "empty.jpg" in run.stderr and "that can be read" in run.stderr and "roses (4)" in run.stderr
    assert not (tmp_path / "m.tflite").exists()


def test_bad_options_are_usage_errors(tmp_path, cli):
    root = str(FLOWERS / "train")
    cases = [
        (["--head", "knn"], "'knn' is not one of 'auto', 'logistic', 'imprinting'"),
        (["--roi", "1,2,3"], "--roi takes x,y,w,h"),
        (["--roi", "0.5,0,0.6,1"], "at most 1"),
        (["--extractor", "v9-embedding"], "unknown extractor"),
        (["--extractor", str(EXTRACTOR_TPU)], "compiled for the Edge TPU"),
    ]
    for options, message in cases:
        line = _one_line_error(cli("learn", root, "-o", str(tmp_path / "m.tflite"), *options), 2)
        assert message in line, (options, line)
    line = _one_line_error(cli("learn", root, "-o", str(tmp_path / "m_edgetpu.tflite")), 2)
    assert "name the CPU model" in line
    line = _one_line_error(cli("learn", root, "-o", str(tmp_path / "m.txt")), 2)
    assert "give a .tflite file name" in line and not (tmp_path / "m.txt_edgetpu.tflite").exists()
    line = _one_line_error(cli("learn", root, "-o", str(tmp_path / "nowhere" / "m.tflite")), 2)
    assert "does not exist" in line
    assert list(tmp_path.iterdir()) == []
    os.mkfifo(tmp_path / "pipe.tflite")
    assert "not a regular file" in _one_line_error(cli("learn", root, "-o", str(tmp_path / "pipe.tflite")), 2)
    assert (tmp_path / "pipe.tflite").is_fifo() and len(list(tmp_path.iterdir())) == 1


def test_an_extractor_path_without_a_twin_writes_no_twin_and_removes_a_stale_one(tmp_path):
    own = tmp_path / "extractor.tflite"
    shutil.copy(EXTRACTOR, own)
    root = _class_folders(tmp_path / "photos", {"daisy": 5, "roses": 5})
    first = learn(root, tmp_path / "garage.tflite", extractor=str(EXTRACTOR))
    assert first.edgetpu_output == str(tmp_path / "garage_edgetpu.tflite")
    second = learn(root, tmp_path / "garage.tflite", extractor=str(own))
    assert second.edgetpu_output is None
    assert not (tmp_path / "garage_edgetpu.tflite").exists()
    assert any("no extractor_edgetpu.tflite next to the extractor" in note for note in second.notes)
    assert any("removed garage_edgetpu.tflite" in note for note in second.notes)


# -- pure parts ------------------------------------------------------------------------------------------


def test_regions_in_pixels_and_fractions():
    assert parse_region("640,200,320,240") == Region(640, 200, 320, 240, fractions=False)
    assert parse_region("0.5,0,0.5,1") == Region(0.5, 0, 0.5, 1, fractions=True)
    frame = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3)
    assert parse_region("0.5,0,0.5,1").box(640, 480) == (320, 0, 640, 480)
    assert parse_region("600,400,100,100").box(640, 480) == (600, 400, 640, 480)  # cut at the edge
    assert parse_region("10,20,30,40").crop(frame).shape == (40, 30, 3)
    assert (parse_region("10,20,30,40").crop(frame) == frame[20:60, 10:40]).all()
    with pytest.raises(InputError, match="lies outside the 640x480 frame"):
        parse_region("700,0,10,10").box(640, 480)
    for text in ("a,b,c,d", "1,2,3", "0,0,0,1", "-1,0,10,10", "0.5,10,20,20", "nan,0,1,1"):
        with pytest.raises(UsageError):
            parse_region(text)


def test_labels_are_read_back_exactly(tmp_path):
    for labels in (["daisy", "roses"], ["1 car", "2 cars"], ["0:open", "closed"], ["a, b", "ç c"]):
        path = write_model(tmp_path / "m.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(64), labels)
        assert embedded_labels(path) == labels, labels_text(labels)
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["labels.txt"]
            assert archive.getinfo("labels.txt").compress_type == zipfile.ZIP_STORED
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]  # no temporary file left behind


def test_heads_on_synthetic_embeddings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    labels = np.repeat(np.arange(3), 30)
    embeddings = np.abs(centres[labels] + 0.3 * rng.normal(size=(90, 64)))
    unit = heads.normalize(embeddings)
    weights, bias = heads.fit_imprinting(unit, labels, 3)
    means = np.stack([unit[labels == k].mean(axis=0) for k in range(3)])
    assert np.allclose(weights, means / np.linalg.norm(means, axis=1, keepdims=True)) and not bias.any()
    weights, bias = heads.fit_logistic(unit, labels, 3)
    assert ((unit @ weights.T + bias).argmax(axis=1) == labels).all()
    folds = heads.stratified_folds(labels)
    assert all(sorted(np.bincount(labels[folds == f])) == [6, 6, 6] for f in range(5))
    result = heads.held_out("logistic", unit, labels, 3)
    assert result.accuracy == 1.0 and result.per_class == (1.0, 1.0, 1.0)
    head = heads.fit_head("logistic", embeddings, labels, 3, result.temperature)
    assert np.allclose(head.scores(embeddings).sum(axis=1), 1.0, atol=1e-5)


def test_class_names_that_are_not_one_line_of_utf8_are_written_as_one_line_each(tmp_path):
    """A Latin-1 folder name (its byte is a lone surrogate in Python) and one with a line break: each label
    stays one line, in its class's place, and no temporary file is left behind."""
    latin1 = os.fsdecode(b"caf\xe9")
    path = write_model(
        tmp_path / "m.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(64), [latin1, "two\nlines", "ok"]
    )
    assert embedded_labels(path) == ["caf\ufffd", "two lines", "ok"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_the_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(20000, 4))
    probabilities = heads.softmax(logits * 3.0)
    labels = (probabilities.cumsum(axis=1) > rng.random((20000, 1))).argmax(axis=1)
    assert heads.fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.05)
