"""The text formats every command shares: sizes and name:PATH lists."""

import pytest

from tfsynth.parsing import parse_named_paths, parse_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, size", [("256x512", (256, 512)), ("64X128", (64, 128)),
                                        (" 96 x 96 ", (96, 96))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["256by512", "256", "x512", "256x", "0x512", "-64x128",
                                  "64x128x3", "", "1.5x2"])
def test_parse_size_rejects_bad_text_naming_it(text):
    with pytest.raises(ValueError, match="HxW") as error:
        parse_size(text)
    assert repr(text) in str(error.value)


def test_a_square_size_is_one_number_where_allowed():
    assert parse_size("256", square=True) == (256, 256)
    assert parse_size("64x128", square=True) == (64, 128)
    with pytest.raises(ValueError, match="S or HxW"):
        parse_size("0", square=True)


def test_named_paths_name_each_path_and_take_urls_and_drives_as_paths():
    def default(path):
        return f"default({path})"

    assert parse_named_paths("crn:runs/a/export/1, b:gs://bucket/x,a:/abs/export/1", default) == [
        ("crn", "runs/a/export/1"), ("b", "gs://bucket/x"), ("a", "/abs/export/1")]
    assert parse_named_paths("gs://bucket/x", default) == [("default(gs://bucket/x)", "gs://bucket/x")]


def test_a_drive_letter_is_a_path_on_windows(monkeypatch):
    from tfsynth import parsing

    monkeypatch.setattr(parsing, "DRIVE_LETTERS", True)
    assert parse_named_paths("C:\\runs\\y,D:/runs/z,a:model", lambda path: path[:2]) == [
        ("C:", "C:\\runs\\y"), ("D:", "D:/runs/z"), ("a", "model")]


@pytest.mark.parametrize("text, message", [("", "at least one"), (" , ", "at least one"),
                                           ("a:x,a:y", "unique")])
def test_named_paths_refuse_empty_lists_and_repeated_names(text, message):
    with pytest.raises(ValueError, match=message):
        parse_named_paths(text, lambda path: path)
