"""Sessions: tests (SDK version matrix), lint, types, bench, tests_latest, lock.

nox -s lint types tests      # what CI runs (the README's test command), from the lock
nox -s tests_latest          # the suite against the newest releases: what an upgrade would break
nox -s lock                  # re-resolve and rewrite constraints/*.txt (then run the suite)
nox -s bench                 # the benchmarks, printing ratios against in-run baselines

Every session but tests_latest and lock installs from a committed constraints
file (constraints/current.txt, constraints/legacy.txt): the exact versions of
the SDKs, httpx, the database drivers and the tools that the suite last passed
with, so its verdict does not depend on the day it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent

# The SDKs we support, newest first. "current" is openai 3.x and anthropic 2.x
# (on httpx2), with aiobotocore 3.x; "legacy" is the newest openai 1.x and
# anthropic 0.x (on httpx), still widely deployed, with aioboto3, which pins
# the older AWS stack (aiobotocore 2.x, botocore 1.40, and wrapt 1.x).
SDK_MATRIX = {
    "current": ["openai>=3,<4", "anthropic>=2,<3"],
    "legacy": ["openai>=1,<2", "anthropic<1", "aioboto3>=15"],
}
# The exact versions each generation was last tested with (``nox -s lock`` writes them).
CONSTRAINTS = {name: ROOT / "constraints" / f"{name}.txt" for name in SDK_MATRIX}
# Test modules that exercise the SDKs themselves; the legacy run repeats only these.
SDK_TESTS = [
    "tests/test_instrument_extract.py",
    "tests/test_instrument_openai.py",
    "tests/test_instrument_anthropic.py",
    "tests/test_streams.py",
    "tests/test_httpx_transport.py",
    "tests/test_recording.py",
    "tests/test_instrument_bedrock.py",
    "tests/test_instrument_bedrock_async.py",
    "tests/test_instrument_aioboto3.py",
]
# Tests of a library only the legacy generation installs (aioboto3 pins an aiobotocore
# the current one is past): the current run leaves them out, the legacy run has them.
LEGACY_ONLY_TESTS = ["tests/test_instrument_aioboto3.py"]


@nox.session
@nox.parametrize("sdks", list(SDK_MATRIX))
def tests(session: nox.Session, sdks: str) -> None:
    """Run the test suite with one SDK generation installed (the legacy one runs the SDK tests)."""
    _install_locked(session, sdks, "-e", ".[dev]", *SDK_MATRIX[sdks])
    _print_sdk_versions(session)
    if sdks == "current":
        ignored = [f"--ignore={t}" for t in LEGACY_ONLY_TESTS]
        session.run("pytest", *ignored, *session.posargs)
    else:
        present = [t for t in SDK_TESTS if (ROOT / t).exists()]
        session.run("pytest", *(session.posargs or present))


def _install_locked(session: nox.Session, generation: str, *args: str) -> None:
    """Install ``args`` at the versions pinned for ``generation``."""
    session.install("-c", str(CONSTRAINTS[generation]), *args)


def _print_sdk_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "import openai, anthropic; print('openai', openai.__version__, 'anthropic', anthropic.__version__)",
    )


def _frozen(session: nox.Session) -> dict[str, str]:
    """The session's installed distributions, name -> version (our own editable install left out)."""
    out = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True)
    pins = {}
    for line in str(out).splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.lower()] = version
    return pins


def _locked(generation: str) -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS[generation].read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.lower()] = version
    return pins


@nox.session
@nox.parametrize("sdks", list(SDK_MATRIX))
def tests_latest(session: nox.Session, sdks: str) -> None:
    """The suite against the newest releases (not part of CI): what upgrading would break.

    Prints every version that moved past the lock, then runs the same tests as
    ``tests``. A failure here is news about a release, not a broken main: fix
    what it shows, then ``nox -s lock``.
    """
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev]", *SDK_MATRIX[sdks])
    _print_sdk_versions(session)
    locked, now = _locked(sdks), _frozen(session)
    moved = [
        f"  {name} {locked.get(name, '(not locked)')} -> {version}"
        for name, version in sorted(now.items())
        if locked.get(name) != version
    ]
    session.log("newer than constraints/%s.txt:\n%s", sdks, "\n".join(moved) or "  nothing")
    tests = SDK_TESTS if sdks == "legacy" else [f"--ignore={t}" for t in LEGACY_ONLY_TESTS]
    session.run("pytest", *(session.posargs or tests))


@nox.session(reuse_venv=False)
@nox.parametrize("sdks", list(SDK_MATRIX))
def lock(session: nox.Session, sdks: str) -> None:
    """Resolve the newest versions for one generation and write them to constraints/<sdks>.txt."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev]", *SDK_MATRIX[sdks])
    pins = _frozen(session)
    python = ".".join(map(str, sys.version_info[:2]))
    header = (
        f"# The {sdks} SDK generation ({', '.join(SDK_MATRIX[sdks])}) and every tool the sessions\n"
        f"# install, at the versions the suite last passed with (resolved on CPython {python}).\n"
        "# Written by `nox -s lock`; see docs/contributing.md before editing.\n"
    )
    body = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    CONSTRAINTS[sdks].parent.mkdir(exist_ok=True)
    CONSTRAINTS[sdks].write_text(header + body)
    session.log("wrote %s (%d pins)", CONSTRAINTS[sdks].relative_to(ROOT), len(pins))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check."""
    _install_locked(session, "current", "ruff")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the package, as it is installed.

    instrumentation/ and exporters/ are mapped into llm_cost_tracker by
    package-dir. A strict editable install lays the package out as it is
    installed, in a link tree a .pth file names, which mypy follows (it cannot
    follow the import hook of a default editable install). mypy runs outside
    the checkout, whose llm_cost_tracker/ folder lacks the mapped subpackages.
    """
    _install_locked(session, "current", "-e", ".[dev]", "--config-settings", "editable_mode=strict")
    config = str(ROOT / "pyproject.toml")
    session.chdir(session.create_tmp())
    session.run("mypy", "--strict", "--config-file", config, "-p", "llm_cost_tracker")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ (python -m bench)."""
    _install_locked(session, "current", "-e", ".[dev]")
    session.run("python", "-m", "bench", *session.posargs)
