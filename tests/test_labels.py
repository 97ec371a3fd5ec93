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
