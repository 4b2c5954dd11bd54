"""The public surface: __all__ is sorted and equals the public names; importing has no side effects."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import llm_cost_tracker


def test_all_is_sorted_and_matches_public_names() -> None:
    public = {name for name in vars(llm_cost_tracker) if not name.startswith("_")}
    public -= {"annotations"}  # from __future__ import annotations
    # Submodules imported as a side effect of importing the package are not API.
    public = {name for name in public if not isinstance(getattr(llm_cost_tracker, name), type(sys))}
    assert sorted(llm_cost_tracker.__all__) == llm_cost_tracker.__all__
    assert set(llm_cost_tracker.__all__) - {"__version__"} == public


def test_version_is_the_distribution_version() -> None:
    from importlib.metadata import version

    assert llm_cost_tracker.__version__ == version("llm-cost-tracker")


_IMPORT_PROBE = textwrap.dedent(
    """
    import importlib.abc, os, sys, threading

    BLOCKED = ("openai", "anthropic", "httpx", "httpx2", "psycopg", "pymysql", "yaml", "botocore",
               "opentelemetry.sdk", "google")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED or name.startswith(BLOCKED):
                raise ImportError(f"blocked optional dependency {name}")
            return None

    sys.meta_path.insert(0, Block())
    threads_before = threading.active_count()
    import llm_cost_tracker as lct
    optional = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not optional, optional
    assert threading.active_count() == threads_before, "import started a thread"
    assert not os.path.exists("llm_costs.db"), "import opened a database"
    assert "opentelemetry" not in sys.modules, "import loaded opentelemetry eagerly"

    # The core works with core dependencies only: SQLite default, manual tracking.
    lct.configure(instrument=None)
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 10, "output": 5})
    assert lct.flush(5)
    import sqlite3
    count = sqlite3.connect("llm_costs.db").execute("select count(*) from llm_cost_tracker_calls").fetchone()[0]
    assert count == 1, count
    print("ok")
    """
)


def test_import_patches_nothing_starts_no_thread_and_needs_no_optional_dependency(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_leaves_sdk_methods_unpatched() -> None:
    import openai.resources.chat.completions as chat
    import wrapt

    import llm_cost_tracker  # noqa: F401  (imported for its side effects, of which there must be none)

    assert not isinstance(chat.Completions.create, wrapt.ObjectProxy)
