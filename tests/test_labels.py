import zipfile

import pytest

from edgenet.labels import (
    embedded_labels,
    fit_to_classes,
    imagenet_labels,
    imagenet_wnids,
    labels_for_model,
    parse_labels,
    read_labels,
)


def test_four_formats_parse_to_the_same_list(mirror):
    plain = read_labels(mirror / "imagenet_labels.txt")
    colon = read_labels(mirror / "labels" / "imagenet_labels_colon.txt")
    assert len(plain) == 1001 and plain[0] == "background" and plain[286] == "Egyptian cat"
    assert colon == plain
    indexed = read_labels(mirror / "labels" / "imagenet_labels_indexed.txt")
    assert len(indexed) == 1001 and indexed[286] == "Egyptian cat" and indexed[1000] == plain[1000]


def test_single_space_index_and_gaps():
    assert parse_labels("0 person\n1 bicycle\n3 motorcycle\n") == ["person", "bicycle", "2", "motorcycle"]


def test_plain_labels_starting_with_a_digit_stay_plain():
    assert parse_labels("7-up can\nbottle\n") == ["7-up can", "bottle"]


def test_embedded_labels_in_a_tflite_zip(model_file):
    labels = embedded_labels(model_file("mobilenet_v2_1.0_224_inat_bird_quant.tflite"))
    assert labels is not None and labels[659] == "Poecile atricapillus (Black-capped Chickadee)"
    assert embedded_labels(model_file("mobilenet_v2_1_0_quant.tflite")) is None


def test_background_is_added_or_dropped_to_fit_the_output():
    assert fit_to_classes(imagenet_labels(), 1000)[285] == "Egyptian cat"
    assert fit_to_classes(list(imagenet_labels())[1:], 1001)[0] == "background"


def test_labels_for_a_1000_class_model_without_any(model_file):
    labels, source = labels_for_model(model_file("mobilenet_v2_1_0_quant.tflite"), 1000)
    assert source == "imagenet" and len(labels) == 1000 and labels[285] == "Egyptian cat"


def test_package_wnids_line_up_with_the_labels(mirror):
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids[0] == "n01440764"
    assert list(wnids) == (mirror / "labels" / "imagenet_wnids.txt").read_text().split()


# -- label files that bomb memory, in other encodings --------------------------------------------------

LABELS_BOMB = "0:a\n5:b\n1000000000:c\n"  # built a billion-entry list (OOM-killed at 24 GB)


def _in_a_child_with_little_memory(code: str, *args: str) -> str:
    """Run `code` under a 1 GB address-space limit: a regression fails with MemoryError, not an OOM kill."""
    import subprocess
    import sys

    limited = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n" + code
    child = subprocess.run(
        [sys.executable, "-c", limited, *args], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return child.stdout


def test_an_absurd_index_is_capped_at_the_model_classes_with_a_warning(tmp_path, model_file):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text(LABELS_BOMB)
    code = (
        "import json, sys\n"
        "from edgenet.labels import find_labels\n"
        "found = find_labels(sys.argv[1], 1001, sys.argv[2])\n"
        "print(json.dumps([found.labels, found.source, found.warnings]))\n"
    )
    import json

    out = _in_a_child_with_little_memory(
        code, str(model_file("mobilenet_v2_1_0_quant.tflite")), str(labels_file)
    )
    labels, source, warnings = json.loads(out)
    assert labels == ["a", "1", "2", "3", "4", "b"] and source == str(labels_file)
    assert warnings == [
        f"the labels ({labels_file}) go past the model's 1001 classes (index 1000000000): left out"
    ]


def test_parse_labels_never_allocates_past_the_limit():
    dropped = []
    assert parse_labels(LABELS_BOMB, 10, dropped) == ["a", "1", "2", "3", "4", "b"]
    assert dropped == ["index 1000000000"]
    assert parse_labels("0 a\n" + "9" * 5000 + " b\n") == ["a"]  # int() of 4300+ digits would raise
    dropped = []
    assert parse_labels("a\nb\n\nc\nd\n", 3, dropped) == ["a", "b", ""] and dropped == [
        "2 more line(s) after line 3"
    ]
    assert parse_labels("0:a\n1001:b\n", 1002) == ["a", *map(str, range(1, 1001)), "b"]  # a background slot


def test_labels_file_far_too_big_is_a_usage_error(tmp_path):
    import pytest

    from edgenet.errors import UsageError
    from edgenet.labels import MAX_LABELS_BYTES

    huge = tmp_path / "labels.txt"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_LABELS_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UsageError, match="is over 16 MB: not a labels file"):
        read_labels(huge)


def _model_with_zip(tmp_path, model_file, data: bytes) -> str:
    """A real model with labels.txt appended as a zip, the way TFLite metadata packs associated files."""
    model = tmp_path / "with_labels.tflite"
    model.write_bytes(model_file("mobilenet_v2_1_0_quant.tflite").read_bytes())
    with zipfile.ZipFile(model, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labels.txt", data)
    return str(model)


def test_embedded_labels_are_capped_too(tmp_path, model_file):
    from edgenet.labels import find_labels

    model = _model_with_zip(tmp_path, model_file, LABELS_BOMB.encode())
    found = find_labels(model, 1001)
    assert found.source == "embedded" and found.labels == ["a", "1", "2", "3", "4", "b"]
    assert found.warnings == (
        "the labels (embedded) go past the model's 1001 classes (index 1000000000): left out",
    )


def test_an_embedded_zip_bomb_is_not_unpacked(tmp_path, model_file):
    from edgenet.labels import MAX_LABELS_BYTES, find_labels

    model = _model_with_zip(tmp_path, model_file, b"a\n" * (MAX_LABELS_BYTES // 2 + 1))
    with zipfile.ZipFile(model) as archive:
        member = archive.getinfo("labels.txt")
    assert member.compress_size < 100_000 < MAX_LABELS_BYTES < member.file_size  # a small zip bomb
    found = find_labels(model, 1000)
    assert found.source == "imagenet"  # not used: the next source in line
    assert found.warnings == ("the labels embedded in the model (labels.txt) unpack to over 16 MB: not used",)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
def test_label_files_in_utf16_utf32_and_with_a_bom_read_right(tmp_path, mirror, encoding):
    text = (mirror / "imagenet_labels.txt").read_text(encoding="utf-8")
    path = tmp_path / f"labels-{encoding}.txt"
    path.write_bytes(("Café\n" + text).encode(encoding))  # utf-16-le/be: no BOM, as some tools write
    labels = read_labels(path)
    assert labels[0] == "Café" and labels[1] == "background" and labels[287] == "Egyptian cat"
    assert labels == ["Café", *read_labels(mirror / "imagenet_labels.txt")]
