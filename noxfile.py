"""Sessions: tests (SDK version matrix), lint, types, docs, bench.

nox -s lint types tests      # what CI runs (the README's test command)
nox -s bench                 # the benchmarks, printing ratios against in-run baselines
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent

# The SDKs we support, newest first. "current" is openai 3.x and anthropic 2.x
# (on httpx2); "legacy" is the newest openai 1.x and anthropic 0.x (on httpx),
# still widely deployed.
SDK_MATRIX = {
    "current": ["openai>=3,<4", "anthropic>=2,<3"],
    "legacy": ["openai>=1,<2", "anthropic<1"],
}
# Test modules that exercise the SDKs themselves; the legacy run repeats only these.
SDK_TESTS = [
    "tests/test_instrument_extract.py",
    "tests/test_instrument_openai.py",
    "tests/test_instrument_anthropic.py",
    "tests/test_streams.py",
    "tests/test_httpx_transport.py",
    "tests/test_deferred_recording.py",
]


@nox.session
@nox.parametrize("sdks", list(SDK_MATRIX))
def tests(session: nox.Session, sdks: str) -> None:
    """Run the test suite with one SDK generation installed (the legacy one runs the SDK tests)."""
    session.install("-e", ".[dev]")
    session.install(*SDK_MATRIX[sdks])
    session.run(
        "python",
        "-c",
        "import openai, anthropic; print('openai', openai.__version__, 'anthropic', anthropic.__version__)",
    )
    if sdks == "current":
        session.run("pytest", *session.posargs)
    else:
        present = [t for t in SDK_TESTS if (ROOT / t).exists()]
        session.run("pytest", *(session.posargs or present))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check."""
    session.install("ruff==0.17.6")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


def _stage_for_mypy() -> Path:
    """Lay the three source folders out as the one import package mypy must see.

    instrumentation/ and exporters/ are mapped into llm_cost_tracker by
    package-dir; mypy cannot follow an editable install's import hook, so it
    gets a tree of symlinks shaped like the installed package.
    """
    stage = ROOT / ".mypy_stage"
    shutil.rmtree(stage, ignore_errors=True)
    package = stage / "llm_cost_tracker"
    package.mkdir(parents=True)
    for entry in (ROOT / "llm_cost_tracker").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "instrumentation").symlink_to(ROOT / "instrumentation")
    (package / "exporters").symlink_to(ROOT / "exporters")
    return stage


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the package, as it is installed."""
    session.install("-e", ".[dev]")
    stage = _stage_for_mypy()
    session.run("mypy", "--strict", "-p", "llm_cost_tracker", env={"MYPYPATH": str(stage)})


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ (python -m bench)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "bench", *session.posargs)
