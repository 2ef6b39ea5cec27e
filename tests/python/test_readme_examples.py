"""The README's Python examples run as written: each ```python block of the
"Python" section runs in a fresh interpreter, and every `# -> text` comment
is a line it must print, in that order."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, TIMEOUT


def python_blocks():
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Python\n(.*?)(?=^## )", readme + "\n## end", re.S | re.M).group(1)
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


def expected_lines(code):
    return [m.group(1).strip() for m in re.finditer(r"# -> (.*)$", code, re.M)]


def test_the_section_has_one_example_per_protocol():
    blocks = python_blocks()
    for cls in ("RegistryClient", "BuddyClient", "RelayClient"):
        assert any(cls in b for b in blocks), f"no README example uses improto.{cls}"
    assert all(expected_lines(b) for b in blocks), "every example shows its output"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs_as_written(index, tmp_path):
    code = python_blocks()[index]
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 0, f"example {index} failed:\n{code}\n{r.stderr}"
    printed = [line.strip() for line in r.stdout.splitlines()]
    wanted = expected_lines(code)
    assert printed == wanted, f"example {index} printed {printed}, README says {wanted}"
