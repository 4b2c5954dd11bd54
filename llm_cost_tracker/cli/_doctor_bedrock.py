"""``doctor``'s Bedrock check: botocore's Bedrock Runtime calls are recorded, with their usage.

A real boto3 client makes a Converse, a ConverseStream and an InvokeModel call
against a local stand-in (no network, no credentials) with the bedrock
instrumentor on, and the check says whether each became an event with usage.
Skipped when botocore is not installed, or when this process already records
(doctor run inside an application), whose configuration it must not replace.
"""

from __future__ import annotations

import importlib.util
import logging

from ._check import Check

NAME = "bedrock capture"
CALLS = (
    ("converse", "amazon.nova-pro-v1:0"),
    ("converse_stream", "us.amazon.nova-lite-v1:0"),
    ("invoke_model", "meta.llama3-1-70b-instruct-v1:0"),
)


def check_bedrock() -> list[Check]:
    if importlib.util.find_spec("botocore") is None or importlib.util.find_spec("boto3") is None:
        return []
    from .._api import get_config

    if get_config() is not None:
        return [Check("info", NAME, "not self-tested: this process is recording already")]
    import botocore

    from ..testing import capture_events
    from ._demo_bedrock import bedrock_client, call_bedrock
    from ._standin import StandInServer

    quiet = logging.getLogger("llm_cost_tracker")
    level = quiet.level
    quiet.setLevel(
        logging.ERROR
    )  # the stand-in's models may have no price here: not this check's news
    try:
        with StandInServer() as server, capture_events(instrument=["bedrock"]) as events:
            client = bedrock_client(server)
            for operation, model_id in CALLS:
                call_bedrock(client, operation, model_id)
            client.close()
    except Exception as error:
        return [Check("fail", NAME, f"a Bedrock call through botocore failed: {error!r}")]
    finally:
        quiet.setLevel(level)
    with_usage = [e for e in events if e.usage is not None]
    if len(events) == len(CALLS) == len(with_usage):
        return [
            Check(
                "ok",
                NAME,
                f"Converse, ConverseStream and InvokeModel through botocore {botocore.__version__} "
                "recorded with their usage (local stand-in)",
            )
        ]
    return [
        Check(
            "fail",
            NAME,
            f"{len(events)} of {len(CALLS)} Bedrock calls recorded, {len(with_usage)} with usage: "
            "calls through boto3 would go unrecorded or unpriced",
            "see docs/instrumentation.md#aws-bedrock",
        )
    ]
