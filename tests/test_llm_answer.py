"""From an LLM answer to a test file: which code is taken, and what is refused."""

from __future__ import annotations

import pytest

from tasks.llm.answers import extract_code, extract_test_source, known_modules
from tasks.llm.client import LLMError

TEST = "from tinypkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


def refused(text: str, **kw) -> str:
    with pytest.raises(LLMError) as info:
        extract_test_source(text, **kw)
    assert info.value.type == "invalid_response"
    return info.value.message


def test_a_python_fence_is_taken_without_the_prose_around_it():
    assert extract_test_source(f"Sure! Here you go:\n\n```python\n{TEST}```\n\nHope it helps.") == TEST


@pytest.mark.parametrize("tag", ["", "py", "Python", "python3"])
def test_the_only_fence_is_taken_whatever_its_tag(tag):
    assert extract_test_source(f"```{tag}\n{TEST}```") == TEST


def test_a_python_fence_wins_over_other_fences():
    text = f"Run it with:\n```bash\npytest -q\n```\nThe file:\n```python\n{TEST}```\n"
    assert extract_test_source(text) == TEST


def test_an_example_block_without_tests_is_ignored_when_another_has_tests():
    text = f"The module does:\n```python\nadd(1, 2)\n```\nTests:\n```python\n{TEST}```\n"
    assert extract_test_source(text) == TEST


def test_several_test_blocks_are_joined():
    second = "def test_more():\n    assert True\n"
    source = extract_test_source(f"```python\n{TEST}```\nand\n```python\n{second}```")
    assert "def test_add" in source and "def test_more" in source


def test_code_without_a_fence_is_taken_when_it_is_python_with_tests():
    assert extract_test_source(TEST) == TEST


def test_prose_is_refused():
    assert "no code" in refused("To test add, call it with 1 and 2 and check that the result is 3.")


def test_a_fence_of_another_language_alone_is_taken_and_then_fails_to_parse():
    assert "does not parse" in refused("```\nThis is not python at all!\n```")


def test_code_that_does_not_parse_is_refused_with_the_line():
    message = refused("```python\ndef test_x(:\n    pass\n```")
    assert "does not parse: line 1" in message


def test_an_answer_cut_off_inside_its_fence_is_refused():
    assert "does not parse" in refused(f"```python\n{TEST}\ndef test_cut():\n    assert add(")
    assert extract_code("```python\nx = 1\n") == "x = 1\n"


def test_code_without_tests_is_refused():
    assert "no test functions" in refused("```python\nfrom tinypkg.calc import add\nprint(add(1, 2))\n```")


def test_an_empty_fence_is_refused():
    assert "empty" in refused("```python\n\n```")


@pytest.mark.parametrize("line", ["import covsweep", "from covsweep.settings import load", "import covsweep.cli as c"])
def test_code_importing_covsweep_is_refused(line):
    assert "covsweep" in refused(f"```python\n{line}\n\n\ndef test_x():\n    assert True\n```")


@pytest.mark.parametrize(
    "line",
    [
        "import socket",
        "import requests",
        "import httpx",
        "from urllib.request import urlopen",
        "import urllib.request",
        "from http.client import HTTPConnection",
        "from http import client",
        "import importlib\nsock = importlib.import_module('socket')",
        "s = __import__('socket')",
    ],
)
def test_code_touching_the_network_is_refused(line):
    assert "network" in refused(f"```python\n{line}\n\n\ndef test_x():\n    assert True\n```")


def test_a_network_module_the_module_under_test_uses_itself_is_allowed():
    code = "import requests\n\n\ndef test_x(monkeypatch):\n    monkeypatch.setattr(requests, 'get', None)\n"
    assert extract_test_source(f"```python\n{code}```", allowed={"requests"}) == code


def test_http_status_codes_are_not_the_network():
    code = "from http import HTTPStatus\n\n\ndef test_x():\n    assert HTTPStatus.OK == 200\n"
    assert extract_test_source(code) == code


@pytest.mark.parametrize(
    "call",
    [
        "open('/etc/covsweep', 'w')",
        "open('out.txt', mode='a')",
        "Path('/tmp/x').write_text('x')",
        "os.remove('/home/user/file')",
        "shutil.rmtree('/var/data')",
        "Path('data') .mkdir()",
    ],
)
def test_writes_outside_the_tmp_dir_are_refused(call):
    code = f"import os, shutil\nfrom pathlib import Path\n\n\ndef test_x():\n    {call}\n"
    assert "outside its tmp dir" in refused(f"```python\n{code}```")


def test_writes_below_tmp_path_are_fine():
    code = (
        "def test_x(tmp_path):\n    (tmp_path / 'a.txt').write_text('x')\n"
        "    with open(tmp_path / 'b.txt', 'w') as f:\n        f.write('y')\n"
        "    with open(__file__) as f:\n        assert f.read()\n"
    )
    assert extract_test_source(code) == code


def test_an_import_nothing_provides_is_refused_when_known_modules_are_given():
    code = "import numpy_nonexistent_xyz\nfrom tinypkg.calc import add\n\n\ndef test_x():\n    assert add\n"
    known = known_modules({"tinypkg"})
    assert "numpy_nonexistent_xyz" in refused(f"```python\n{code}```", known=known)
    assert extract_test_source(code) == code  # without known modules it is left to the test run


def test_known_modules_are_stdlib_pytest_and_the_project():
    code = (
        "from __future__ import annotations\nimport json, unittest.mock\nimport pytest\n"
        "from tinypkg.calc import add\n\n\ndef test_x():\n    assert json and pytest and add\n"
    )
    assert extract_test_source(code, known=known_modules({"tinypkg"})) == code


def test_a_relative_import_is_refused():
    assert "relative import" in refused("from .calc import add\n\n\ndef test_x():\n    assert add\n")
