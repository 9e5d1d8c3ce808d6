"""Shared fixtures: the repository's paths, the CLI to compare against, engines."""

import json
import os
import pathlib
import subprocess

import pytest

import resnet_wgpu

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = ROOT / "samples"


def relative_error(got, want):
    """max |got - want| / max |want|, as tests/suite/end_to_end.rs measures it."""
    import numpy as np

    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.isfinite(got).all()
    return float(np.abs(got - want).max() / np.abs(want).max())


def manifest():
    return json.loads((FIXTURES / "manifest.json").read_text())


@pytest.fixture(scope="session")
def default_engine():
    return resnet_wgpu.Engine()


@pytest.fixture(scope="session")
def cli():
    """The `resnet` binary (RESNET_CLI, else target/debug/resnet, which test.sh builds)."""
    path = pathlib.Path(os.environ.get("RESNET_CLI", ROOT / "target" / "debug" / "resnet"))
    assert path.is_file(), f"{path}: no CLI to compare with; build it (cargo build --bin resnet)"
    return path


@pytest.fixture(scope="session")
def cli_samples_json(cli):
    """`resnet classify --json samples` run from the repository root, parsed."""
    out = subprocess.run(
        [str(cli), "classify", "--json", "samples"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def sample_paths():
    """The samples as the CLI names them from the root: `samples/NAME`, sorted."""
    return [f"samples/{p.name}" for p in sorted(SAMPLES.iterdir()) if p.suffix == ".png"]


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is a failed one here: every test must run (python/test.sh)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and (reporter.stats.get("skipped") or reporter.stats.get("xfailed")):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
