"""The Bedrock instrumentor under aioboto3: its own Session and clients, against the stand-in.

aioboto3 pins an aiobotocore older than the current generation's, so this module
runs in the legacy generation of the noxfile matrix only (``LEGACY_ONLY_TESTS``).
Every result is compared with the same call made without instrumentation.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.httpxsession import HttpxSession
from botocore.exceptions import ClientError
from test_instrument_bedrock import MESSAGES, OK_PAYLOADS, PAYLOADS
from test_instrument_bedrock_async import (
    assert_same_result_and_one_event,
    bare,  # noqa: F401 (a fixture)
    standin_as_bedrock_host,
)

from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events


@contextlib.asynccontextmanager
async def client(
    standin: StandInServer, path: str, *, over_httpx: bool = False
) -> AsyncIterator[Any]:
    """An aioboto3 client to the stand-in, sending with aiohttp (its default) or httpx."""
    session = aioboto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        region_name="us-east-1",
    )
    sessions = {"http_session_cls": HttpxSession} if over_httpx else {}
    async with session.client(
        "bedrock-runtime",
        endpoint_url=standin.url + path,
        config=AioConfig(retries={"total_max_attempts": 1}, **sessions),
    ) as c:
        yield c


@pytest.mark.parametrize("payload_id", OK_PAYLOADS)
async def test_payload_gives_the_same_result_and_the_expected_event(
    standin: StandInServer,
    bare: None,  # noqa: F811
    payload_id: str,
) -> None:
    with standin_as_bedrock_host(standin):  # the aiohttp layer would record it: it must not
        await assert_same_result_and_one_event(client, standin, payload_id, ["bedrock", "aiohttp"])


@pytest.mark.parametrize("payload_id", [p for p in OK_PAYLOADS if not PAYLOADS[p]["stream"]])
async def test_over_httpx_the_same_result_and_the_expected_event(
    standin: StandInServer,
    bare: None,  # noqa: F811
    payload_id: str,
) -> None:
    """aioboto3 on aiobotocore's httpx backend (its streams cannot be read there, with or without us)."""
    over_httpx = functools.partial(client, over_httpx=True)
    with standin_as_bedrock_host(standin):
        await assert_same_result_and_one_event(
            over_httpx, standin, payload_id, ["bedrock", "httpx", "aiohttp"]
        )


async def test_a_throttling_error_is_recorded_and_reraised_untouched(
    standin: StandInServer,
    bare: None,  # noqa: F811
) -> None:
    path = "/s/bedrock_error_throttling"
    async with client(standin, path) as c:
        with pytest.raises(ClientError) as bare_error:
            await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, path) as c:
            with pytest.raises(c.exceptions.ThrottlingException) as caught:  # the client's own
                await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert str(caught.value) == str(bare_error.value)
    assert caught.value.response["Error"] == bare_error.value.response["Error"]
    (event,) = events
    assert (event.provider, event.status, event.error_type) == (
        "aws_bedrock",
        "error",
        "ThrottlingException",
    )
    assert (event.model, event.request_model) == ("amazon.nova-pro", "amazon.nova-pro-v1:0")
    assert (event.usage, event.usage_source, event.cost.total) == (None, "unknown", None)
    assert event.tags["cloud.region"] == "us-east-1"
