"""The README's quickstart data lines, run as written against tiny originals in their published formats."""
import re
import shlex
import subprocess
import sys

from mtl_core.data import originals as datasets
from mtl_core.settings import ROOT
from tests.test_datasets import originals  # noqa: F401 (a fixture: tiny originals in tmp_path/originals)


def quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quickstart"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_clone_lines_fill_the_folders_the_data_command_reads():
    targets = [shlex.split(line)[-1] for line in quickstart_lines() if line.startswith("git clone")]
    assert targets == [f"originals/{r.folder}" for r in datasets.REPOSITORIES]
    urls = [shlex.split(line)[2] for line in quickstart_lines() if line.startswith("git clone")]
    assert urls == [f"https://github.com/{r.github}" for r in datasets.REPOSITORIES]


def test_the_data_line_builds_the_data_folder_from_the_originals(tmp_path, originals):  # noqa: F811 (the fixture)
    [line] = [line for line in quickstart_lines() if line.startswith("python -m mtl_core data prepare")]
    done = subprocess.run([sys.executable, *shlex.split(line)[1:]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    # tiny originals: every file is built, and every file but the fixed label list differs from the real data
    assert done.returncode == 2 and "differ from the data the reported numbers were measured on" in done.stderr
    for name in datasets.CHECKSUMS:
        assert (tmp_path / "data" / name).is_file(), name
