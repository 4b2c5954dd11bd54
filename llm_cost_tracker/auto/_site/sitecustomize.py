"""Started by ``llm-cost-instrument`` (this folder is put first on PYTHONPATH).

Runs any ``sitecustomize`` this one shadows, then turns on llm-cost-tracker from
the environment. Nothing here may stop the program from starting.
"""

import importlib.machinery
import importlib.util
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_shadowed_sitecustomize() -> None:
    # Another tool (opentelemetry-instrument, a distro's own sitecustomize) may
    # have one further down the path: run it, as Python would have without us.
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["_llm_cost_tracker_chained_sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        logging.getLogger("llm_cost_tracker.auto").warning(
            "llm-cost-tracker: the sitecustomize at %s failed", spec.origin, exc_info=True
        )


def _start() -> None:
    _run_shadowed_sitecustomize()
    try:
        from llm_cost_tracker.auto import initialize
    except Exception:
        logging.getLogger("llm_cost_tracker.auto").warning(
            "llm-cost-tracker: cannot import llm_cost_tracker in %s; running without cost tracking",
            sys.executable,
            exc_info=True,
        )
        return
    initialize()


_start()
