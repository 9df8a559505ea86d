"""``wizardcoder serve`` under both contracts.

- Conversation contract: serve driven by the ``openai`` client, LangChain's ``ChatOpenAI`` and LlamaIndex's
  ``OpenAILike`` gives every case the chat layer's own reply (text, tool calls, invalid calls, finish reason,
  usage).
- Engine contract: :class:`RemoteEngine` through a live serve passes the same checks as the local engine (the
  check functions are imported from ``test_engine_contract``; the ``impl`` fixture here selects the remote one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_openai")
pytest.importorskip("llama_index.llms.openai_like")

from remote.conftest import Server, start_server  # tests/ is on sys.path (pytest rootdir packages)

from .cases import CASES, Case
from .runners import ChatLayerRunner, Normalized
from .serve_runners import ChatOpenAIRunner, OpenAILikeRunner, OpenAIRunner
from .test_engine_contract import (  # noqa: F401  (collected here, with the remote ``impl`` below)
    Impl,
    test_a_grammar_keeps_the_reply_valid_json,
    test_a_stop_string_ends_the_text_before_it,
    test_async_matches_sync,
    test_caller_mistakes_are_configuration_errors,
    test_cancelling_an_async_consumer_cancels_the_request,
    test_close_fails_a_running_request_and_later_ones,
    test_closing_a_stream_cancels_it_and_the_engine_goes_on,
    test_generate_and_stream_agree_and_report_usage,
    test_it_implements_the_protocol,
    test_max_new_tokens_ends_with_length,
    test_results_come_in_prompt_order,
)

pytestmark = pytest.mark.slow

SERVE_RUNNERS = [OpenAIRunner, ChatOpenAIRunner, OpenAILikeRunner]


@pytest.fixture(scope="module")
def serve(standin: Any) -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(engine: Any) -> dict[str, Normalized]:
    runner = ChatLayerRunner(engine)
    return {case.id: runner.run(case) for case in CASES}


@pytest.mark.parametrize("runner_class", SERVE_RUNNERS, ids=lambda r: r.name)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_serve_gives_the_reference_reply(case: Case, runner_class: Any, serve: Server, engine: Any,
                                         reference: dict[str, Normalized]) -> None:
    assert runner_class(f"{serve.url}/v1", engine.model_name).run(case) == reference[case.id]


def _remote(request: Any) -> Any:
    from wizardcoder_integrations.engine import RemoteEngine

    return RemoteEngine(request.getfixturevalue("serve").url, max_retries=0)


@pytest.fixture(params=[Impl("remote", _remote, _remote, decodes_grammar=True)], ids=lambda impl: impl.name)
def impl(request: Any) -> Impl:
    return request.param


@pytest.fixture
def engine_under_test(impl: Impl, request: Any) -> Iterator[Any]:
    engine = impl.shared(request)
    yield engine
    engine.close()  # a RemoteEngine per test: its connections close with it
