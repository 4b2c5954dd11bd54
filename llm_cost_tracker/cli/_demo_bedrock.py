"""The demo's Bedrock calls: a real boto3 client against the stand-in's Bedrock Runtime.

One client (``endpoint_url=<stand-in>/bedrock``) answers by model family and
operation: Converse, ConverseStream, InvokeModel (Anthropic, Llama) and an
InvokeModelWithResponseStream, as a platform on Bedrock would make them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# (operation, model id, tags, times)
BEDROCK_STEPS: list[tuple[str, str, dict[str, str], int]] = [
    (
        "converse",
        "amazon.nova-pro-v1:0",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "alice"},
        2,
    ),
    (
        "converse",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        {"feature": "summarize", "tenant_id": "globex", "user_id": "frank"},
        1,
    ),
    (
        "converse_stream",
        "us.amazon.nova-lite-v1:0",
        {"feature": "support-chat", "tenant_id": "acme", "user_id": "bob"},
        2,
    ),
    (
        "invoke_model",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        {"feature": "research", "tenant_id": "globex", "user_id": "carol"},
        1,
    ),
    (
        "invoke_model",
        "meta.llama3-1-70b-instruct-v1:0",
        {"feature": "search-index", "tenant_id": "acme"},
        1,
    ),
    (
        "invoke_model_with_response_stream",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        {"feature": "agent", "tenant_id": "globex"},
        1,
    ),
]

MESSAGES = [{"role": "user", "content": [{"text": "What does our refund policy say?"}]}]


def bedrock_client(server: Any, region: str = "us-east-1") -> Any:
    """A boto3 ``bedrock-runtime`` client talking to the stand-in (dummy credentials, no retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=f"{server.url}/bedrock",
        aws_access_key_id="AKIDEXAMPLEDEMO",
        aws_secret_access_key="demo-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def call_bedrock(client: Any, operation: str, model_id: str) -> None:
    """Make one call and read what it returns to the end, as an application would."""
    if operation == "converse":
        client.converse(modelId=model_id, messages=MESSAGES)
    elif operation == "converse_stream":
        for _ in client.converse_stream(modelId=model_id, messages=MESSAGES)["stream"]:
            pass
    elif operation == "invoke_model":
        body = json.dumps(
            {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 256, "messages": []}
        )
        client.invoke_model(modelId=model_id, body=body)["body"].read()
    else:
        response = client.invoke_model_with_response_stream(modelId=model_id, body=b"{}")
        for _ in response["body"]:
            pass


def run_bedrock_calls(server: Any, say: Callable[[str], None]) -> int:
    """Make the demo's Bedrock calls; return how many were made."""
    import botocore

    import llm_cost_tracker as lct

    client = bedrock_client(server)
    made = 0
    for operation, model_id, tags, times in BEDROCK_STEPS:
        with lct.with_tags(**tags):
            for _ in range(times):
                call_bedrock(client, operation, model_id)
                made += 1
    client.close()
    say(
        f"  bedrock (botocore {botocore.__version__}): Converse, ConverseStream, InvokeModel, a response stream"
    )
    return made


__all__ = ["BEDROCK_STEPS", "bedrock_client", "call_bedrock", "run_bedrock_calls"]
