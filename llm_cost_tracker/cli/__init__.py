"""The ``llm-cost-tracker`` command line: one module per command family, the demo and its stand-in server.

``main(argv)`` returns the exit status; ``console_main()`` is the console
script's entry point. Nothing here is imported by the core: the command line
uses the library, never the other way round.
"""

from __future__ import annotations

from ._main import console_main, main

__all__ = ["console_main", "main"]
