"""TOML errors name the right line (issue 9): what is left open is reported where it was opened.

tomllib says "at end of document", or names the line where it gave up (the next key, after any
blank lines): a missing `]` on line 8 must be reported on line 8, not line 10.
"""
from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridrun.engine import matrix
from gridrun.engine.errors import GridrunError
from gridrun.engine.tomlpos import Locator, syntax_error

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib


def position(text: str) -> tuple[str, int | None, int | None]:
    with pytest.raises(tomllib.TOMLDecodeError) as info:
        tomllib.loads(text)
    return syntax_error(text, str(info.value))


@pytest.mark.parametrize("text, line, col, fragment", [
    # a missing `]`: tomllib names the next key's line (4), or the end of the document
    ('name = "x"\n[grid]\nlr = [0.1, 0.2\nseed = [0, 1]\n', 3, 6, "unclosed array"),
    ('name = "x"\n[grid]\nlr = [0.1,\n  0.2,\n', 3, 6, "unclosed array"),
    ('a = [\n 1,\n 2\n\n# more\n[grid]\nx = 1\n', 1, 5, "unclosed array"),
    ('a = [[1, 2], [3, 4\nb = 1\n', 1, 14, "unclosed array"),       # the inner one
    ('b = "[x"\na = [1, "]", 2\nc = 1\n', 2, 5, "unclosed array"),   # brackets in strings
    # a missing `}`
    ('name = "x"\nopt = {a = 1, b = 2\nc = 3\n', 2, 7, "unclosed inline table"),
    ('name = "x"\nopt = {a = 1,', 2, 7, "unclosed inline table"),
    # a multi-line string never closed
    ('a = 1\ndoc = """abc\nb = 1\n', 2, 7, "unterminated string"),
    ("a = 1\ndoc = '''abc\n", 2, 7, "unterminated string"),
])
def test_what_is_left_open_is_reported_where_it_was_opened(text, line, col, fragment):
    message, got_line, got_col = position(text)
    assert (got_line, got_col) == (line, col)
    assert message.startswith(fragment) and "expected" in message


@pytest.mark.parametrize("text, line, col, fragment", [
    ('name = "x"\n[grid]\nlr = = [1]\n', 3, 6, "Invalid value"),
    ('a = [1,\n  2 3]\n', 2, 5, "Unclosed array"),      # closed later: a missing comma, here
    ('name = "x"\n[grid\nlr = 1\n', 2, 6, "Expected ']'"),
    ('a = "abc\nb = 1\n', 1, 9, "Illegal character"),
    ('a = [1]\nb = {x = 1}\nc =\n', 3, 4, "Invalid value"),
])
def test_other_errors_keep_tomllibs_position(text, line, col, fragment):
    message, got_line, got_col = position(text)
    assert (got_line, got_col) == (line, col) and message.startswith(fragment)
    assert "(at " not in message


def test_end_of_document_without_anything_open_names_the_last_line():
    message, line, col = position('a = 1\n\nb = "x"\nc = \n\n\n')
    assert line == 4 and "(at end" not in message


def test_locator_still_skips_bracket_lines_inside_values():
    text = "[grid]\nbetas = [\n[0.9, 0.999],\n]\n[sample]\nlr = 1\n"
    loc = Locator(text)
    assert [name for _, name in loc.headers] == ["grid", "sample"]
    assert loc.find("sample", "lr") == (6, 1)


MATRIX = textwrap.dedent("""\
    name = "s"
    command = ["python", "train.py", "--lr", "{lr}"]

    [params]
    epochs = 3

    [grid]
    lr = [0.1, 0.01, 0.001
    seed = [0, 1]

    optimizer = ["sgd", "adam"]
    """)


def test_missing_bracket_on_line_8_is_reported_on_line_8_by_the_cli(cli, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(MATRIX)
    assert MATRIX.splitlines()[7].startswith("lr = [")           # line 8
    res = cli("queue", "add", str(path), check=2)
    first, *rest = res.stderr.splitlines()
    assert first.startswith(f"gridrun: {path}:8:6: invalid TOML: unclosed array"), first
    assert "expected ']'" in first
    assert len(rest) <= 1 and all(line.startswith("hint: ") for line in rest)
    assert "Traceback" not in res.stderr
    assert not (cli.home / "gridrun.db").exists()                  # nothing stored


def test_missing_brace_through_the_cli(cli, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\ncommand = ["python", "t.py"]\n[params]\n'
                    'optim = {name = "sgd", momentum = 0.9\n\n[grid]\nlr = [0.1]\n')
    res = cli("queue", "add", str(path), check=2)
    assert res.stderr.startswith(f"gridrun: {path}:4:9: invalid TOML: unclosed inline table")
    assert not (cli.home / "gridrun.db").exists()


# Anything given as a TOML file: a parsed result or a one-line GridrunError, nothing else.
toml_pieces = st.one_of(
    st.sampled_from(['name = "s"\n', "[grid]\n", "[[stage]]\n", "lr = ", "[", "]", "{", "}",
                     '"', "'", '"""', "'''", "#", "=", ",", ".", "\n", " ", "0.1", "1e999",
                     "nan", "inf", "true", "x", "a.b", "\\", "\\u", "1979-05-27T07:32:00Z",
                     "\x00", "\ud800", "\r\n", "\t"]),
    st.text(max_size=5),
)
toml_texts = st.one_of(st.lists(toml_pieces, max_size=40).map("".join), st.text(max_size=200))


@settings(max_examples=300, deadline=None)
@given(toml_texts)
def test_any_text_parses_or_is_a_one_line_error(text):
    try:
        data = matrix.parse_text(text, "s.toml")
    except GridrunError as err:
        assert "\n" not in str(err) and "\r" not in str(err)
        assert str(err).startswith("s.toml")
        if err.line is not None:
            assert 1 <= err.line <= max(1, len(text.splitlines()))
    else:
        assert isinstance(data, dict)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_in_a_file_parse_or_are_a_one_line_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("toml") / "s.toml"
    path.write_bytes(raw)
    try:
        matrix.read_toml(path)
    except GridrunError as err:
        assert "\n" not in str(err)


# Whole run matrices from lines that are each right or wrong in some way: through the builder
# too, every outcome is a run matrix or one GridrunError line.
matrix_lines = st.sampled_from([
    'name = "s"', 'command = ["python", "t.py", "{lr}"]', "command = 3", "[grid]", "[params]",
    "[sample]", "count = 3", "count = -1", "lr = [0.1, 0.2]", "lr = []", "lr = 1",
    'lr = ["a\\u0000"]', "seed = [0, 1]", "[[stage]]", "keep = 2", "[zip]", "a = [1]",
    "b = [1, 2]", "lr = { uniform = [0.1, 1.0] }", "lr = { log_uniform = [0, 1] }",
    "x = { choice = [] }", "[parse]", 'patterns = ["(?P<a>x"]', "metric = 'acc'",
    "mode = 'sideways'", "timeout_min = nan", "timeout_min = inf", "gpus = 1e400",
    "seeds = [1, 2]", "[params.optim]", "betas = [0.9, 0.999]", '"" = 1',
    "lr = [0.1, 0.2", "opt = {a = 1", 'doc = """x', "[stage.params]", "[include]"])


@settings(max_examples=300, deadline=None)
@given(st.lists(matrix_lines, max_size=12).map("\n".join))
def test_any_run_matrix_text_builds_or_is_a_one_line_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("m") / "s.toml"
    try:
        spec = matrix.loads(text, path, check_program=False)
    except GridrunError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(spec, matrix.SweepSpec) and spec.name
