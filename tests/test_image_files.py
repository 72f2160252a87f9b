"""Tests for data.image_files: what --input names, opening images, and the prediction dataset."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from data.image_files import ImageFiles, LoadedImage, collate_by_shape, find_images, open_image
from utils.errors import UsageError


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """``a.png`` (30x20), ``b.JPG`` (12x40) and ``notes.txt`` in ``photos/``, one image below."""
    folder = tmp_path / "photos"
    (folder / "deeper").mkdir(parents=True)
    Image.new("RGB", (30, 20), (10, 20, 30)).save(folder / "a.png")
    Image.new("L", (12, 40), 99).save(folder / "b.JPG", format="JPEG")
    (folder / "notes.txt").write_text("not an image\n")
    Image.new("RGB", (8, 8)).save(folder / "deeper" / "c.png")
    return folder


def test_a_folder_gives_its_own_images_sorted(photos):
    assert find_images([str(photos)]) == [photos / "a.png", photos / "b.JPG"]


def test_files_are_taken_as_given_and_globs_expand(photos):
    found = find_images([str(photos / "notes.txt"), str(photos / "**" / "*.png")])
    assert found == [photos / "notes.txt", photos / "a.png", photos / "deeper" / "c.png"]


def test_an_image_named_twice_is_found_once(photos):
    found = find_images([str(photos / "a.png"), str(photos), str(photos / "*.png")])
    assert found == [photos / "a.png", photos / "b.JPG"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing", "--input {root}/missing: no such file or folder"),
        ("empty", "--input {root}/empty: the folder holds no image file"),
        ("photos/*.gif", "--input {root}/photos/*.gif: the pattern matches no image file"),
    ],
)
def test_a_name_without_images_is_a_usage_error(photos, name, expected):
    (photos.parent / "empty").mkdir()
    with pytest.raises(UsageError) as err:
        find_images([str(photos / "a.png"), str(photos.parent / name)])
    assert str(err.value).startswith(expected.format(root=photos.parent))


def test_open_image_names_an_unreadable_file(photos):
    with pytest.raises(UsageError, match=f"cannot read {photos / 'notes.txt'}"):
        open_image(photos / "notes.txt")
    truncated = photos / "truncated.jpg"
    truncated.write_bytes((photos / "b.JPG").read_bytes()[:200])
    with pytest.raises(UsageError, match=f"cannot read {truncated}"):
        open_image(truncated)


def test_image_files_load_each_file_with_its_size_or_its_error(photos):
    files = ImageFiles(
        [photos / "a.png", photos / "notes.txt", photos / "b.JPG"],
        lambda path: torch.tensor(open_image(path).size),
    )
    good, bad, grey = (files[i] for i in range(len(files)))
    assert (good.path, good.input.tolist(), good.size, good.error) == (
        photos / "a.png",
        [30, 20],
        (20, 30),
        None,
    )
    assert grey.size == (40, 12)
    assert bad.input is None and bad.error.startswith(f"cannot read {photos / 'notes.txt'}")


def test_collate_stacks_each_run_of_one_shape_and_keeps_the_errors():
    def item(name: str, height: int) -> LoadedImage:
        return LoadedImage(Path(name), torch.full((3, height, 5), height), (height, 5), None)

    bad = LoadedImage(Path("bad.png"), None, (0, 0), "cannot read bad.png")
    errors, batches = collate_by_shape(
        [item("a", 4), item("b", 4), bad, item("c", 6), item("d", 4)]
    )
    assert errors == ["cannot read bad.png"]
    assert [[p.name for p in batch.paths] for batch in batches] == [["a", "b"], ["c"], ["d"]]
    assert [tuple(batch.inputs.shape) for batch in batches] == [
        (2, 3, 4, 5),
        (1, 3, 6, 5),
        (1, 3, 4, 5),
    ]
    assert batches[0].sizes == [(4, 5), (4, 5)] and batches[1].inputs.unique().tolist() == [6]
