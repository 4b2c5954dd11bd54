"""``llm-cost-tracker demo``: the real SDKs against the built-in stand-in server, into the ledger, then a report.

Offline and quick: the stand-in server on 127.0.0.1 replays recorded provider
responses, so the openai and anthropic SDKs (whichever are installed) make real
HTTP calls that the instrumentors record like any other. The events land in the
configured database tagged ``demo=true``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._main import EXIT_DATABASE, EXIT_OK, EXIT_USAGE, database_url

_EXAMPLES = """\
examples:
  llm-cost-tracker demo                                   # -> llm_costs.db and llm-cost-report.html
  llm-cost-tracker demo --database-url sqlite:///demo.db -o demo-report.html
  llm-cost-tracker demo --database-url postgresql://app@localhost/llm

The demo's calls are real rows in the ledger, tagged demo=true. Leave them out of
your own queries with: WHERE id NOT IN (SELECT call_id FROM llm_cost_tracker_call_tags
WHERE key = 'demo')
"""

DEMO_TAG = {"demo": "true"}

_QUERIES_TO_TRY = (
    "SELECT provider, model, COUNT(*) AS calls, SUM(total_cost) AS cost FROM llm_cost_tracker_calls GROUP BY provider, model ORDER BY cost DESC",
    "SELECT t.value AS feature, COUNT(*) AS calls, SUM(c.total_cost) AS cost FROM llm_cost_tracker_calls c JOIN llm_cost_tracker_call_tags t ON t.call_id = c.id AND t.key = 'feature' GROUP BY t.value ORDER BY cost DESC",
    "SELECT model, input_tokens, cache_read_tokens, output_tokens, total_cost, cost_status FROM llm_cost_tracker_calls ORDER BY occurred_at DESC LIMIT 10",
)


@dataclass(frozen=True)
class Step:
    """One kind of call the demo makes: a recorded scenario, the tags in force, how many times."""

    scenario: str
    tags: dict[str, str]
    times: int = 1


# A small product: a support chat, a research assistant, a summarizer, a search
# index and an agent, for two tenants. The scenarios are the shipped payloads.
OPENAI_STEPS = [
    Step(
        "openai_chat_cached_gpt4omini",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "alice"},
        3,
    ),
    Step(
        "openai_chat_stream_include_usage",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "bob"},
        2,
    ),
    Step(
        "openai_chat_reasoning_gpt5nano",
        {"feature": "research", "tenant_id": "globex", "user_id": "carol"},
        2,
    ),
    Step(
        "openai_chat_priority_gpt5",
        {"feature": "research", "tenant_id": "globex", "user_id": "carol"},
    ),
    Step(
        "openai_responses_plain", {"feature": "research", "tenant_id": "globex", "user_id": "erin"}
    ),
    Step("openai_embeddings", {"feature": "search-index", "tenant_id": "acme"}, 3),
    Step("openai_chat_stream_without_usage", {"feature": "agent", "tenant_id": "globex"}),
    Step(
        "openai_chat_cached_gpt4omini", {}
    ),  # a call nobody tagged: the report's "untagged" bucket
]
ASYNC_OPENAI_STEPS = [
    Step(
        "openai_chat_cached_gpt4omini",
        {"feature": "summarize", "tenant_id": "acme", "user_id": "dave"},
        4,
    ),
]
ANTHROPIC_STEPS = [
    Step(
        "anthropic_cache_read",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "alice"},
        3,
    ),
    Step(
        "anthropic_stream_basic_2025_shape",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "bob"},
        2,
    ),
    Step(
        "anthropic_cache_write_5m_and_1h_breakdown",
        {"feature": "summarize", "tenant_id": "acme", "user_id": "dave"},
    ),
    Step(
        "anthropic_messages_plain_opus3",
        {"feature": "summarize", "tenant_id": "globex", "user_id": "frank"},
    ),
    Step(
        "anthropic_web_search_server_tool_use",
        {"feature": "research", "tenant_id": "globex", "user_id": "carol"},
    ),
    Step("anthropic_stream_cache_write", {"feature": "agent", "tenant_id": "globex"}),
    Step("anthropic_error_429_rate_limit", {"feature": "agent", "tenant_id": "globex"}),
]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="llm-cost-report.html",
        help="where to write the report (default: llm-cost-report.html)",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="record the calls, skip the report"
    )


# instrumentor -> the module its SDK is imported as
_SDKS = {"openai": "openai", "anthropic": "anthropic", "bedrock": "boto3", "requests": "requests"}

# A plain ``requests`` call to an OpenAI-compatible gateway (the stand-in, registered as one):
# (scenario, tags, times)
REQUESTS_STEP = (
    "openai_chat_cached_gpt4omini",
    {"feature": "nightly-report", "tenant_id": "acme"},
    2,
)


def installed_sdks() -> list[str]:
    return [name for name, module in _SDKS.items() if importlib.util.find_spec(module) is not None]


def _consume(result: Any, payload: dict[str, Any]) -> None:
    """Read a stream to the end, as an application would; other results need nothing."""
    if payload.get("stream"):
        for _ in result:
            pass


async def _aconsume(result: Any, payload: dict[str, Any]) -> None:
    if payload.get("stream"):
        async for _ in result:
            pass


def _openai_call(client: Any, api: str) -> Callable[..., Any]:
    methods: dict[str, Callable[..., Any]] = {
        "openai.chat.completions": client.chat.completions.create,
        "openai.responses": client.responses.create,
        "openai.embeddings": client.embeddings.create,
        "openai.completions": client.completions.create,
    }
    return methods[api]


def run_calls(server: Any, say: Callable[[str], None]) -> int:
    """Make every demo call through the installed SDKs; return how many were made."""
    import llm_cost_tracker as lct

    from ._standin.server import load_payloads

    payloads = load_payloads()
    made = 0
    sdks = installed_sdks()
    if "openai" in sdks:
        import openai

        for step in OPENAI_STEPS:
            payload = payloads[step.scenario]
            client = openai.OpenAI(
                base_url=server.scenario_url(step.scenario, "/v1"), api_key="sk-demo", max_retries=0
            )
            with lct.with_tags(**step.tags):
                for _ in range(step.times):
                    _consume(_openai_call(client, payload["api"])(**payload["request"]), payload)
                    made += 1
            client.close()

        async def concurrent() -> int:
            count = 0
            for step in ASYNC_OPENAI_STEPS:
                payload = payloads[step.scenario]
                client = openai.AsyncOpenAI(
                    base_url=server.scenario_url(step.scenario, "/v1"),
                    api_key="sk-demo",
                    max_retries=0,
                )
                with lct.with_tags(**step.tags):
                    call = _openai_call(client, payload["api"])
                    results = await asyncio.gather(
                        *(call(**payload["request"]) for _ in range(step.times))
                    )
                for result in results:
                    await _aconsume(result, payload)
                count += len(results)
                await client.close()
            return count

        made += asyncio.run(concurrent())
        say(
            f"  openai {openai.__version__}: chat, streams, cached, reasoning, priority, responses, embeddings, async"
        )
    if "anthropic" in sdks:
        import anthropic

        for step in ANTHROPIC_STEPS:
            payload = payloads[step.scenario]
            claude = anthropic.Anthropic(
                base_url=server.scenario_url(step.scenario), api_key="sk-ant-demo", max_retries=0
            )
            with lct.with_tags(**step.tags):
                for _ in range(step.times):
                    # The recorded 429 raises: an error call, shown in the report's data quality.
                    with contextlib.suppress(anthropic.APIStatusError):
                        _consume(claude.messages.create(**payload["request"]), payload)
                    made += 1
            claude.close()
        say(
            f"  anthropic {anthropic.__version__}: messages, streams, cache reads and writes, web search, a 429"
        )
    if "bedrock" in sdks:
        from ._demo_bedrock import run_bedrock_calls

        made += run_bedrock_calls(server, say)
    if "requests" in sdks:
        made += _requests_calls(server, payloads[REQUESTS_STEP[0]], say)
    return made


def _requests_calls(server: Any, payload: dict[str, Any], say: Callable[[str], None]) -> int:
    """POST chat completions with plain ``requests`` to a gateway registered as OpenAI-compatible."""
    from urllib.parse import urlsplit

    import requests

    import llm_cost_tracker as lct
    from llm_cost_tracker.instrumentation._hosts import unregister_host

    scenario, tags, times = REQUESTS_STEP
    url = server.scenario_url(scenario, "/v1") + "/chat/completions"
    host = urlsplit(url).netloc
    lct.register_host(host, "openai")  # as for an internal gateway: its calls are OpenAI-shaped
    try:
        with lct.with_tags(**tags), requests.Session() as session:
            for _ in range(times):
                session.post(url, json=payload["request"], timeout=10).raise_for_status()
    finally:
        unregister_host(host)
    version = importlib.metadata.version("requests")
    say(f"  requests {version}: chat completions posted to a registered gateway")
    return times


def run(args: argparse.Namespace) -> int:
    from .. import ledger
    from ._report import budgets_from, write_report

    url = database_url(args)
    shown = ledger.redact_url(url)
    sdks = installed_sdks()
    if not sdks:
        print(
            "error: the demo needs the openai or anthropic SDK: pip install 'llm-cost-tracker[openai,anthropic]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    started = time.perf_counter()
    outcome = _record(url, shown, sdks)
    if outcome is None:
        return EXIT_DATABASE
    made, recorded, dropped = outcome
    _say(f"Made {made} LLM calls; recorded {recorded} events, tagged demo=true, in {shown}.")
    if recorded == 0:
        print(
            "warning: nothing was recorded: no instrumentor is active for "
            f"{', '.join(sdks)} (see llm-cost-tracker doctor)",
            file=sys.stderr,
        )
    if not args.no_report:
        where, _ = write_report(
            url,
            output=args.output,
            since="1d",
            group_by=["feature", "tenant_id", "user_id"],
            budgets=budgets_from(args),
            dropped=dropped,
            quiet=True,
        )
        _say(f"Report: {where}")
    _print_next_steps(url, shown, started)
    return EXIT_OK


def _say(message: str) -> None:
    print(message, flush=True)


def _record(url: str, shown: str, sdks: list[str]) -> tuple[int, int, dict[str, int]] | None:
    """Make the demo's calls into the ledger at ``url``.

    Returns (calls made, events recorded, events dropped by name), or None,
    having said why, when the events could not be written.
    """
    import llm_cost_tracker as lct

    from .._stats import STATS
    from ._standin import StandInServer

    recorded: list[int] = [0]

    def count(event: Any) -> None:
        recorded[0] += 1

    lct.configure(
        database_url=url,
        instrument=sdks,
        default_tags=DEMO_TAG,
        exporters=[count],
    )
    _say(
        f"Running the demo against a local stand-in server (no network, no API keys); ledger: {shown}"
    )
    try:
        with StandInServer() as server:
            made = run_calls(server, _say)
        delivered = lct.flush(timeout=30.0)
    finally:
        dropped = {
            k: v
            for k, v in STATS.snapshot().items()
            if k.startswith(("dropped.", "export_failed."))
        }
        lct.shutdown()
    failed = {k: v for k, v in STATS.snapshot().items() if k.startswith("errors.exporter")}
    if failed or not delivered:
        print(
            f"error: the calls could not be written to {shown} ({', '.join(failed) or 'flush timed out'}); "
            "check the URL and that the database is up (llm-cost-tracker doctor)",
            file=sys.stderr,
        )
        return None
    return made, recorded[0], dropped


def _print_next_steps(url: str, shown: str, started: float) -> None:
    """Three queries to run against the demo's rows, with this database's URL when not the default."""
    flag = "" if url == database_url(argparse.Namespace()) else f" --database-url '{shown}'"
    _say("\nThree queries to try:")
    for query in _QUERIES_TO_TRY:
        _say(f'  llm-cost-tracker sql{flag} "{query}"')
    _say(
        f"\nThe demo's rows stay in the ledger, tagged demo=true ({time.perf_counter() - started:.1f} s). "
        "Next: llm-cost-tracker report --help, docs/getting-started.md"
    )
