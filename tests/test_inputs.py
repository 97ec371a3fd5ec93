"""What the inputs expand to, and that no candidate is skipped silently: unreadable folders, dangling links,
FIFOs, GIFs, names that are not UTF-8; and files given as videos that are not videos."""

import multiprocessing
import os
import shutil

import cv2
import numpy as np
import pytest

from edgenet import sources
from edgenet.inputs import find_inputs


def _jpeg(path, value=90):
    ok, encoded = cv2.imencode(".jpg", np.full((48, 64, 3), value, np.uint8))
    path.write_bytes(encoded.tobytes())
    return path


def _listed_by_someone_without_read_access(folder, inputs):
    """find_inputs(inputs) run from inside `folder` by a process that file permissions apply to (root reads
    any folder: the child drops to nobody, and the tree is handed to nobody first)."""
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(folder):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), 65534, 65534, follow_symlinks=False)
        os.chown(folder, 65534, 65534)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child():
        os.chdir(folder)
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        found = find_inputs(inputs)
        results.put((list(found.paths), list(found.failures)))

    process = ctx.Process(target=child)
    process.start()
    outcome = results.get(timeout=30)
    process.join(10)
    return outcome


def test_unreadable_subfolder_and_top_folder_are_failures(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "locked").mkdir(parents=True)
    _jpeg(inbox / "a.jpg")
    _jpeg(inbox / "locked" / "b.jpg")
    (tmp_path / "closed").mkdir()
    _jpeg(tmp_path / "closed" / "c.jpg")
    os.chmod(inbox / "locked", 0)
    os.chmod(tmp_path / "closed", 0)
    try:
        paths, failures = _listed_by_someone_without_read_access(tmp_path, ["inbox", "closed"])
    finally:
        os.chmod(inbox / "locked", 0o755)
        os.chmod(tmp_path / "closed", 0o755)
    assert paths == ["inbox/a.jpg"]
    assert failures == [
        ("inbox/locked", "cannot list folder: Permission denied"),
        ("closed", "cannot list folder: Permission denied"),
    ]


def test_a_dangling_link_matched_by_a_glob_gets_an_error_record(tmp_path):
    _jpeg(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "sub.jpg").mkdir()  # a folder a glob matches is left out, as before
    found = find_inputs([str(tmp_path / "*.jpg")])
    assert found.paths == (str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"))
    frames = list(sources.image_frames(list(found.paths)))
    assert frames[0].error is None
    assert (
        frames[1].error
        == f"cannot read image: a broken symbolic link (to {tmp_path / 'gone.jpg'}, which does not exist)"
    )


def test_gifs_in_a_folder_are_classified_like_a_gif_named_on_the_command_line(tmp_path):
    from PIL import Image

    _jpeg(tmp_path / "a.jpg")
    Image.new("RGB", (60, 40), (255, 0, 0)).save(tmp_path / "b.gif")
    found = find_inputs([str(tmp_path)])
    assert found.paths == (str(tmp_path / "a.jpg"), str(tmp_path / "b.gif"))
    frame = list(sources.image_frames(list(found.paths)))[1]
    if cv2.haveImageReader(str(tmp_path / "b.gif")):  # OpenCV reads GIF since 4.11
        assert frame.error is None and frame.image.shape == (40, 60, 3)
        assert frame.image[0, 0].tolist() == [0, 0, 254] or frame.image[0, 0].tolist() == [0, 0, 255]
    else:
        assert (
            frame.error
            == "cannot decode image: damaged GIF data, or a GIF variant this OpenCV build cannot read"
        )


def test_fifos_and_linked_folders_in_a_folder_are_counted_warnings(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _jpeg(inbox / "a.jpg")
    os.mkfifo(inbox / "pipe.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _jpeg(elsewhere / "c.jpg")
    (inbox / "more").symlink_to(elsewhere)
    (inbox / "notes.txt").write_text("a sidecar")
    (inbox / "IMG_1.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    found = find_inputs([str(inbox)])
    assert found.paths == (str(inbox / "a.jpg"),) and found.failures == ()
    assert found.warnings == (
        f"skipped 1 file(s) that are not regular files (FIFO, socket or device), e.g. {inbox / 'pipe.jpg'}",
        f"skipped 1 symbolic link(s) to folders, e.g. {inbox / 'more'}: give the folder itself to classify "
        "what it holds",
    )
    assert found.other_files == ((".heic", 1), (".txt", 1))


def test_a_fifo_named_or_globbed_is_an_error_record_and_never_blocks(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # nobody writes to it: a blocking open would hang for ever
    for given in (str(tmp_path / "pipe.jpg"), str(tmp_path / "*.jpg")):
        found = find_inputs([given])
        assert found.paths == (str(tmp_path / "pipe.jpg"),)
        frame = next(sources.image_frames(list(found.paths)))
        assert frame.error == "cannot read image: not a regular file (a FIFO, socket or device)"


def test_file_names_that_are_not_utf8_are_listed_read_and_keyed(tmp_path):
    folder = os.fsencode(tmp_path)
    shutil.copyfile(_jpeg(tmp_path / "plain.jpg"), os.path.join(folder, b"0\xff.jpg"))
    found = find_inputs([str(tmp_path)])
    name = os.fsdecode(os.path.join(folder, b"0\xff.jpg"))  # what os.listdir gives: a surrogate escape
    assert found.paths == (name, str(tmp_path / "plain.jpg"))
    frame = next(sources.image_frames([name]))
    info = os.stat(name)
    assert frame.error is None and frame.file_key == (info.st_size, info.st_mtime_ns)


def test_frames_carry_the_key_of_the_file_as_read_and_call_the_hooks_around_it(tmp_path):
    good, bad = _jpeg(tmp_path / "a.jpg"), tmp_path / "b.jpg"
    bad.write_bytes(b"not a jpeg")
    calls = []
    frames = list(
        sources.image_frames(
            [str(good), str(bad)],
            before_read=lambda path: calls.append(("before", os.path.basename(path))),
            after_read=lambda path: calls.append(("after", os.path.basename(path))),
        )
    )
    assert calls == [("before", "a.jpg"), ("after", "a.jpg"), ("before", "b.jpg"), ("after", "b.jpg")]
    assert frames[0].file_key == (good.stat().st_size, good.stat().st_mtime_ns)
    assert frames[1].error and frames[1].file_key == (10, bad.stat().st_mtime_ns)


def test_a_failing_hook_stops_the_frames_instead_of_becoming_error_records(tmp_path):
    from edgenet.errors import DeviceError

    def full(path):
        raise DeviceError("the disk holding the state file is full")

    with pytest.raises(DeviceError):
        next(sources.image_frames([str(_jpeg(tmp_path / "a.jpg"))], before_read=full))


def test_max_pixels_reaches_the_decoder(tmp_path):
    path = str(_jpeg(tmp_path / "a.jpg"))  # 64 x 48 = 3,072 pixels
    assert "past the cap of 3,000" in next(sources.image_frames([path], max_pixels=3000)).error
    assert next(sources.image_frames([path], max_pixels=3072)).error is None


# -- videos ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "readme.nfo", "art.asc", "clip.mjpeg", "clip.mp4"])
def test_a_text_file_given_as_a_video_is_an_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello, this is a log file\n" * 40 + "\x1b[31mand some colour\x1b[0m\n")
    frames = list(sources.video_frames(str(path)))
    assert len(frames) == 1 and frames[0].image is None
    assert frames[0].error.startswith("cannot open video: this is a text file")


def test_ffmpeg_would_have_drawn_that_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is a log file\n" * 40)
    capture = cv2.VideoCapture(str(path))  # the reason for the check: FFmpeg's tty demuxer opens it
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"ansi"
    capture.release()


def test_a_video_with_no_frames_is_an_error(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()  # a valid AVI header with no frame in it
    assert cv2.VideoCapture(str(path)).isOpened()
    frames = list(sources.video_frames(str(path)))
    assert [(f.index, f.error) for f in frames] == [
        (0, "the video has no frames (empty or damaged); nothing to classify")
    ]


def test_a_one_frame_video_and_a_fifo_given_as_a_video(tmp_path):
    path = tmp_path / "one.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert [f.error for f in sources.video_frames(str(path))] == [None]
    os.mkfifo(tmp_path / "pipe.mp4")
    frames = list(sources.video_frames(str(tmp_path / "pipe.mp4")))
    assert [f.error for f in frames] == ["cannot open video: not a regular file (a FIFO or socket)"]
