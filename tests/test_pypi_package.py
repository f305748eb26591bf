"""covsweep on a real package from PyPI that nobody tuned it to, downloaded at test time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.spec_to_production import spec_to_production
from tests.helpers import download_sdist

pytestmark = pytest.mark.docker

PACKAGE = ("docopt", "0.6.2")  # one flat module, no tests of its own in the sdist


@pytest.fixture
def package(tmp_path):
    return download_sdist(*PACKAGE, tmp_path, timeout=300)


def test_coverage_of_a_real_package_rises(prefect_api, sandbox_image, package):
    report = spec_to_production(target=str(package), timeout=90)

    assert report.totals.failed == 0
    assert report.totals.line_after > report.totals.line_before + 20
    assert report.totals.branch_after > report.totals.branch_before
    generated = package / report.modules[0].generated_files[0]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(generated)],
        cwd=package,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:]
