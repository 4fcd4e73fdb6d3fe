"""What `pip install -r requirements.txt` downloads on a machine that sees only PyPI (a Hugging Face Space).

    python -m scripts.space_install

Runs pip's resolver against PyPI alone (`--isolated`, no local wheel folders or indexes, `--dry-run`, so
nothing is downloaded or installed), then reads each chosen file's size from PyPI's JSON API. Writes
docs/results/space_install.json. Needs access to pypi.org.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mtl_core.settings import ROOT

OUT = ROOT / "docs" / "results" / "space_install.json"
CUDA = ("nvidia-", "triton")  # GPU-only libraries a CPU Space never loads


def resolve(requirements: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
        subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                        "--quiet", "--report", str(report), "-r", str(requirements)], check=True, env=env)
        return json.loads(report.read_text())["install"]


def file_size(item: dict) -> int:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    url = item["download_info"]["url"]
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60) as response:
        files = json.load(response)["releases"].get(version, [])
    sizes = [f["size"] for f in files if f["filename"] == url.rsplit("/", 1)[-1]]
    if sizes:
        return sizes[0]
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as response:  # not listed
        return int(response.headers["Content-Length"])


def main() -> int:
    items = resolve(ROOT / "requirements.txt")
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(file_size, items))
    rows = sorted(({"name": i["metadata"]["name"], "version": i["metadata"]["version"], "mb": round(s / 2**20, 1)}
                   for i, s in zip(items, sizes)), key=lambda r: -r["mb"])
    report = {"command": "python -m scripts.space_install", "python": sys.version.split()[0],
              "distributions": len(rows), "download_mb": round(sum(sizes) / 2**20),
              "cuda_and_triton_mb": round(sum(r["mb"] for r in rows if r["name"].lower().startswith(CUDA))),
              "largest": rows[:12]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "largest"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
