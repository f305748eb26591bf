"""check_file: the rule checks on a written test file, their levels and the score in the report."""

from __future__ import annotations

import textwrap

import pytest

from tasks.coverage.validation import check_file, readable_issues
from tests import readable_samples as samples

CLEAN = textwrap.dedent("""
    import pytest


    def test_adds():
        assert 1 + 1 == 2


    class TestDivision:
        def test_by_zero(self):
            with pytest.raises(ZeroDivisionError):
                1 / 0


    def test_reads_a_literal_path():
        with open(__file__) as handle:
            assert handle.read()
        with open("/dev/null", "r") as handle:
            assert handle.read() == ""
""")

IN_TMP = textwrap.dedent("""
    import os


    def test_writes_inside_its_tmp_dir(tmp_path):
        (tmp_path / "out.txt").write_text("hello")
        tmp_path.joinpath("raw.bin").write_bytes(b"x")
        with open(tmp_path / "other.txt", "w") as handle:
            handle.write("x")
        os.makedirs(tmp_path / "a" / "b")
        assert (tmp_path / "out.txt").read_text() == "hello"
""")


def write(tmp_path, source, name="test_generated.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def rules(validation) -> list[tuple[str, str]]:
    return [(i.level, i.rule) for i in validation.issues]


def test_a_clean_file_scores_one(tmp_path):
    validation = check_file(write(tmp_path, CLEAN), [])
    assert validation.issues == []
    assert validation.score == 1.0


def test_writes_into_the_tests_own_tmp_dir_are_fine(tmp_path):
    validation = check_file(write(tmp_path, IN_TMP), [])
    assert validation.issues == []
    assert validation.score == 1.0


def test_a_missing_file_is_an_error(tmp_path):
    validation = check_file(tmp_path / "test_never_written.py", [])
    assert rules(validation) == [("ERROR", "file-exists")]
    assert validation.score == 0.5


@pytest.mark.parametrize("source", ["", "\n\n   \n"])
def test_an_empty_file_is_an_error(tmp_path, source):
    validation = check_file(write(tmp_path, source), [])
    assert rules(validation) == [("ERROR", "not-empty")]
    assert validation.score == 0.5


def test_invalid_python_is_an_error(tmp_path):
    validation = check_file(write(tmp_path, "def test_x(:\n    assert True\n"), [])
    assert rules(validation) == [("ERROR", "valid-python")]
    assert "test_generated.py" in validation.issues[0].message
    assert validation.score == 0.5


def test_a_file_without_a_test_function_is_an_error(tmp_path):
    validation = check_file(write(tmp_path, "import math\n\n\ndef helper():\n    return math.pi\n"), [])
    assert rules(validation) == [("ERROR", "test-naming")]
    assert validation.score == 0.5


def test_a_file_pytest_does_not_collect_is_an_error(tmp_path):
    validation = check_file(write(tmp_path, "def test_x():\n    assert True\n", name="generated.py"), [])
    assert rules(validation) == [("ERROR", "test-naming")]
    assert validation.score == 0.5


@pytest.mark.parametrize(
    "call, shown",
    [
        ('open("results.txt", "w").write("x")', "results.txt"),
        ('open("/tmp/shared.log", "a")', "/tmp/shared.log"),
        ('os.remove("/etc/hosts")', "/etc/hosts"),
        ('shutil.rmtree("build")', "build"),
        ('os.makedirs("output/dir")', "output/dir"),
        ('Path("report.txt").write_text(str(1))', "report.txt"),
        ('Path("/tmp/covsweep-cache").mkdir()', "/tmp/covsweep-cache"),
        ('Path("data.json").unlink()', "data.json"),
    ],
)
def test_literal_writes_outside_tmp_are_a_warning(tmp_path, call, shown):
    source = (
        f"import os\nimport shutil\nfrom pathlib import Path\n\n\ndef test_x():\n    {call}\n    assert os.getcwd()\n"
    )
    validation = check_file(write(tmp_path, source), [])
    assert rules(validation) == [("WARNING", "tmp-only")]
    assert shown in validation.issues[0].message
    assert validation.score == 0.9


def test_each_literal_write_is_reported(tmp_path):
    source = 'import os\n\n\ndef test_x():\n    os.remove("a.txt")\n    os.rename("b.txt", "c.txt")\n    assert os.getcwd()\n'
    validation = check_file(write(tmp_path, source), [])
    assert rules(validation) == [("WARNING", "tmp-only")] * 2
    assert validation.score == 0.8


def test_failing_tests_are_errors_naming_the_test(tmp_path):
    path = write(tmp_path, CLEAN)
    one = check_file(path, ["test_adds"])
    assert rules(one) == [("ERROR", "passes")]
    assert "test_adds" in one.issues[0].message
    assert one.score == 0.5
    two = check_file(path, ["test_adds", "TestX.test_y"])
    assert rules(two) == [("ERROR", "passes")] * 2
    assert two.score == 0.0


def test_the_score_never_goes_below_zero(tmp_path):
    validation = check_file(tmp_path / "test_missing.py", ["test_a", "test_b", "test_c"])
    assert len(validation.issues) == 4
    assert validation.score == 0.0


CHECKED = textwrap.dedent("""
    import unittest
    from unittest import mock

    import pytest


    def check_positive(value):
        assert value > 0


    def check_all(values):
        for value in values:
            check_positive(value)


    def test_plain_assert():
        assert abs(-1) == 1


    def test_expects_an_exception():
        with pytest.raises(ZeroDivisionError):
            1 / 0


    def test_raises_as_a_call():
        pytest.raises(ZeroDivisionError, lambda: 1 / 0)


    def test_fails_itself():
        try:
            int("1")
        except ValueError:
            pytest.fail("not a number")


    def test_through_a_helper():
        check_all([1, 2])


    def test_a_mock_is_asserted():
        callback = mock.Mock()
        callback(1)
        callback.assert_called_once_with(1)


    @pytest.mark.xfail(raises=ZeroDivisionError, strict=True)
    def test_expected_to_raise():
        1 / 0


    class TestUnittestStyle(unittest.TestCase):
        def test_assert_method(self):
            self.assertEqual(abs(-2), 2)

        def test_assert_raises(self):
            with self.assertRaises(ValueError):
                int("x")
""")


def test_tests_that_check_something_have_no_no_assertion_warning(tmp_path):
    validation = check_file(write(tmp_path, CHECKED), [])
    assert validation.issues == []
    assert validation.score == 1.0


def test_tests_without_assertion_or_expected_exception_are_named_in_one_warning(tmp_path):
    source = """
        import pytest

        from shop.cart import Cart


        def log(value):
            print(value)


        def test_only_calls():
            Cart().add("apple", 50)


        def test_checks():
            assert Cart().count() == 0


        def test_through_a_helper_that_checks_nothing():
            log(Cart().count())


        class TestCart:
            def test_method_only_calls(self):
                Cart().subtotal()

            @pytest.mark.parametrize("sku", ["a", "b"])
            def test_parametrized_but_unchecked(self, sku):
                Cart().add(sku, 1)
    """
    validation = check_file(write(tmp_path, source), [])
    assert rules(validation) == [("WARNING", "no-assertion")]
    message = validation.issues[0].message
    named = message.split(": ", 1)[1].split(", ")
    assert named == [
        "test_only_calls",
        "test_through_a_helper_that_checks_nothing",
        "TestCart.test_method_only_calls",
        "TestCart.test_parametrized_but_unchecked",
    ]
    assert validation.score == 0.9


def test_the_readable_rule_warns_once_per_kind_of_what_a_reviewer_would_stumble_on():
    preamble_file = (
        "import sys as _covsweep_sys\n\n_covsweep_sys.path.insert(0, '/src')\nimport os\nimport os\n\n\n"
        "def test_3():\n    var_1 = os.getcwd()\n    assert var_1\n"
    )

    messages = [(i.level, i.rule, i.message) for i in readable_issues(preamble_file)]

    assert messages == [
        ("WARNING", "readable", "named by number, not by what they are: test_3, var_1"),
        ("WARNING", "readable", "imported more than once: os"),
        (
            "WARNING",
            "readable",
            "edits sys.path (a conftest.py or the project's pytest configuration does that once): "
            "_covsweep_sys.path.insert(0, '/src')",
        ),
    ]
    raw = [(i.rule, i.message.split(":")[0]) for i in readable_issues(samples.PYNGUIN_MONEY)]
    assert raw == [("readable", "named by number, not by what they are"), ("readable", "assertions that cannot fail")]
    assert "test_1: assert isinstance(var_11, money_.Money)" in readable_issues(samples.PYNGUIN_MONEY)[1].message


def test_the_readable_rule_is_quiet_on_a_file_a_person_would_write():
    assert readable_issues(CLEAN) == []
    assert readable_issues(IN_TMP) == []


def test_the_readable_rule_shows_five_examples_and_counts_the_rest():
    source = "\n\n".join(f"def test_{n}():\n    pass\n" for n in range(8))

    (issue,) = readable_issues(source)

    assert issue.message == "named by number, not by what they are: test_0, test_1, test_2, test_3, test_4 and 3 more"
