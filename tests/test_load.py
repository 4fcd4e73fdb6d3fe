"""The load script keeps working: its quick mode runs against a real app server and reports sane numbers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.app, pytest.mark.integration]


def test_load_quick_mode_reports_every_request(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.load", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["requests"] == 4 * 5 and run["errors"] == 0
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
    assert run["rss_before_mb"] > 100 and run["rss_after_mb"] > 100 and run["rss_half_mb"] > 100
    assert set(run["per_endpoint_p50_ms"]) <= {"/analyse", "/predict", "/embed", "/similarity", "/projection"}
