"""The Bedrock instrumentor under aioboto3: its own Session and clients, against the stand-in.

aioboto3 pins an aiobotocore older than the current generation's, so this module
runs in the legacy generation of the noxfile matrix only (``LEGACY_ONLY_TESTS``).
Every result is compared with the same call made without instrumentation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError
from test_instrument_bedrock import MESSAGES, OK_PAYLOADS
from test_instrument_bedrock_async import (
    assert_same_result_and_one_event,
    bare,  # noqa: F401 (a fixture)
)

from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events


@contextlib.asynccontextmanager
async def client(standin: StandInServer, path: str) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        region_name="us-east-1",
    )
    async with session.client(
        "bedrock-runtime",
        endpoint_url=standin.url + path,
        config=AioConfig(retries={"total_max_attempts": 1}),
    ) as c:
        yield c


@pytest.mark.parametrize("payload_id", OK_PAYLOADS)
async def test_payload_gives_the_same_result_and_the_expected_event(
    standin: StandInServer,
    bare: None,  # noqa: F811
    payload_id: str,
) -> None:
    await assert_same_result_and_one_event(client, standin, payload_id, ["bedrock", "aiohttp"])


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
            with pytest.raises(ClientError) as caught:
                await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert type(caught.value).__name__ == "ThrottlingException"
    assert str(caught.value) == str(bare_error.value)
    (event,) = events
    assert (event.status, event.error_type, event.usage) == ("error", "ThrottlingException", None)
    assert (event.model, event.tags["cloud.region"]) == ("amazon.nova-pro", "us-east-1")
