"""What `pip install -r requirements.txt` downloads on a fresh machine that reaches PyPI and PyTorch's CPU
index (a Hugging Face Space).

    python -m scripts.space_install [--torch-wheel PATH] [--requirements FILE]

Runs pip's resolver as a fresh machine would (`--isolated`: no local wheel folders or indexes of this
machine; `--ignore-installed --dry-run`: nothing is downloaded or installed), then reads each chosen
file's size from PyPI's JSON API (or the file itself). Writes docs/results/space_install.json.

PyPI serves Linux the CUDA build of torch; `requirements.txt` names PyTorch's CPU index
(download.pytorch.org/whl/cpu), where `torch==2.13.0` finds `2.13.0+cpu`. Where that index cannot be
reached (a machine that reaches PyPI only), pass `--torch-wheel` a copy of the CPU index's wheel:
the resolver then sees PyPI plus that one file in place of the index, and the report says so.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mtl_core.settings import ROOT

OUT = ROOT / "docs" / "results" / "space_install.json"
CUDA = ("nvidia-", "triton")  # GPU-only libraries a CPU Space never loads
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=15):
            return True
    except (urllib.error.URLError, OSError):
        return False


def resolve(requirements: Path, find_links: Path | None) -> list[dict]:
    """pip's choice of distributions for `requirements` on a machine with none installed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
        extra = ["--find-links", str(find_links)] if find_links else []
        subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                        "--quiet", "--report", str(report), *extra, "-r", str(requirements)], check=True, env=env)
        return json.loads(report.read_text())["install"]


def without_torch_index(requirements: Path, folder: Path) -> Path:
    """A copy of `requirements` without the line naming PyTorch's index (it cannot be reached here)."""
    lines = [line for line in requirements.read_text().splitlines() if not line.startswith("--extra-index-url")]
    copy = folder / "requirements.txt"
    copy.write_text("\n".join(lines) + "\n")
    return copy


def file_size(item: dict) -> int:
    url = item["download_info"]["url"]
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(url.removeprefix("file://"))).stat().st_size
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60) as response:
        files = json.load(response)["releases"].get(version, [])
    sizes = [f["size"] for f in files if f["filename"] == url.rsplit("/", 1)[-1]]
    if sizes:
        return sizes[0]
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as response:  # not listed
        return int(response.headers["Content-Length"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def choose_sources(requirements: Path, torch_wheel: Path | None, tmp: Path) -> tuple[Path, Path | None, str]:
    """The requirements file and wheel folder the resolver gets, and a sentence saying where torch came from."""
    if not any(TORCH_CPU_INDEX in line and not line.startswith("#") for line in requirements.read_text().splitlines()):
        return requirements, None, "PyPI only (the requirements name no other index)"
    if reachable(f"{TORCH_CPU_INDEX}/torch/"):
        return requirements, None, f"PyTorch's CPU index ({TORCH_CPU_INDEX}), as the requirements name it"
    if torch_wheel is None:
        raise SystemExit(f"{TORCH_CPU_INDEX} cannot be reached from here: pass --torch-wheel PATH, a copy of "
                         "its torch wheel for this Python and platform")
    links = tmp / "wheels"
    links.mkdir()
    (links / torch_wheel.name).symlink_to(torch_wheel.resolve())
    return (without_torch_index(requirements, tmp), links,
            f"{TORCH_CPU_INDEX} unreachable from this machine: its wheel {torch_wheel.name} given as a local "
            f"file (sha256 {sha256(torch_wheel)}), the rest from PyPI")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--torch-wheel", type=Path, help="a copy of the CPU index's torch wheel, used when "
                        "the index cannot be reached")
    parser.add_argument("--out", type=Path, default=OUT, help=f"report file (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        requirements, find_links, torch_source = choose_sources(args.requirements, args.torch_wheel, Path(tmp))
        items = resolve(requirements, find_links)
        with ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(file_size, items))
    rows = sorted(({"name": i["metadata"]["name"], "version": i["metadata"]["version"], "mb": round(s / 2**20, 1)}
                   for i, s in zip(items, sizes)), key=lambda r: -r["mb"])
    command = " ".join(["python -m scripts.space_install", *(sys.argv[1:] if argv is None else argv)])
    report = {"command": command, "python": sys.version.split()[0], "platform": sys.platform,
              "torch_source": torch_source, "distributions": len(rows),
              "download_mb": round(sum(sizes) / 2**20),
              "cuda_and_triton_mb": round(sum(r["mb"] for r in rows if r["name"].lower().startswith(CUDA))),
              "largest": rows[:12]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "largest"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
