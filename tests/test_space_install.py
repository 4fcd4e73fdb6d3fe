"""What a Hugging Face Space installs: torch's CPU build (scripts/space_install.py measures the download)."""
import json

import pytest

from mtl_core.settings import ROOT
from scripts import space_install


def test_the_requirements_a_space_installs_name_the_cpu_index_and_the_measurement_is_under_1_gb():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert f"--extra-index-url {space_install.TORCH_CPU_INDEX}" in lines and "torch==2.13.0" in lines
    report = json.loads((ROOT / "docs" / "results" / "space_install.json").read_text())
    assert report["download_mb"] <= 1024 and report["cuda_and_triton_mb"] == 0
    assert report["largest"][0]["name"] == "torch" and report["largest"][0]["version"].endswith("+cpu")


def test_sources_pypi_alone_the_index_or_a_local_copy_of_its_wheel(tmp_path, monkeypatch):
    plain, indexed = tmp_path / "plain.txt", tmp_path / "indexed.txt"
    plain.write_text(f"# not this: --extra-index-url {space_install.TORCH_CPU_INDEX}\ntorch==2.13.0\n")
    indexed.write_text(f"--extra-index-url {space_install.TORCH_CPU_INDEX}\ntorch==2.13.0\nnumpy\n")
    assert space_install.choose_sources(plain, None, tmp_path)[:2] == (plain, None)
    monkeypatch.setattr(space_install, "reachable", lambda url: True)
    assert space_install.choose_sources(indexed, None, tmp_path)[:2] == (indexed, None)
    monkeypatch.setattr(space_install, "reachable", lambda url: False)
    with pytest.raises(SystemExit, match="--torch-wheel"):
        space_install.choose_sources(indexed, None, tmp_path)
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"not really a wheel")
    requirements, links, source = space_install.choose_sources(indexed, wheel, tmp_path)
    assert requirements.read_text() == "torch==2.13.0\nnumpy\n" and [p.name for p in links.iterdir()] == [wheel.name]
    assert "unreachable" in source and space_install.sha256(wheel) in source
