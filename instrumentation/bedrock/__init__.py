"""Instrument AWS Bedrock Runtime through botocore and aiobotocore: Converse, InvokeModel, streams.

``BedrockInstrumentor().instrument()`` wraps ``botocore.client.BaseClient._make_api_call``
(boto3's clients) and, when aiobotocore is installed, ``AioBaseClient._make_api_call``
(aiobotocore's and aioboto3's async clients) once; calls of the ``bedrock-runtime``
service's ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` are recorded under the
provider ``aws_bedrock``, every other call passes straight through. Model ids
are normalized for pricing (``_models.py``); the id the caller sent is kept as
``request_model`` and the client's region as the ``cloud.region`` tag. The
anthropic SDK's ``AnthropicBedrock`` client does not go through botocore's
clients (it only signs with botocore), so it is recorded by the anthropic
instrumentor alone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .._base import BaseInstrumentor, WrappedMethod
from .._bedrock_models import model_of, pricing_mode_of
from ._async import async_make_api_call_wrapper
from ._wrappers import REGION_TAG, make_api_call_wrapper


class BedrockInstrumentor(BaseInstrumentor):
    """Record every Bedrock Runtime inference call made through botocore or aiobotocore clients."""

    name = "bedrock"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("botocore >= 1.31",)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        return [
            ("botocore.client", "BaseClient._make_api_call", make_api_call_wrapper()),
            # skipped when aiobotocore is not installed
            ("aiobotocore.client", "AioBaseClient._make_api_call", async_make_api_call_wrapper()),
        ]


__all__ = ["REGION_TAG", "BedrockInstrumentor", "model_of", "pricing_mode_of"]
