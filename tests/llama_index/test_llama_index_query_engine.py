"""A query engine over the repository's own docs/: real BM25 retrieval, an answer from the stand-in, sources."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.retrievers.bm25")

from llama_index.core import Settings, SimpleDirectoryReader
from llama_index.core.node_parser import MarkdownNodeParser
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.retrievers.bm25 import BM25Retriever

from wizardcoder_integrations.scenarios.llama_index_agents import DOCS_DIR, QA_QUESTION, QA_TOP_K

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retriever():
    files = sorted(str(p) for p in DOCS_DIR.glob("*.md"))
    assert len(files) >= 5, "the docs/ set shipped in the repository is missing"
    documents = SimpleDirectoryReader(input_files=files,
                                      file_metadata=lambda path: {"file_name": Path(path).name}).load_data()
    nodes = MarkdownNodeParser().get_nodes_from_documents(documents)
    return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=QA_TOP_K)


@pytest.fixture
def settings_llm(llm):
    """``Settings.llm`` set the way LlamaIndex users do it (restored afterwards)."""
    previous = Settings._llm
    Settings.llm = llm
    try:
        yield llm
    finally:
        Settings._llm = previous


def test_bm25_finds_the_section_that_answers(retriever):
    hits = retriever.retrieve(QA_QUESTION)
    assert hits[0].node.metadata["file_name"] == "standin.md"
    assert "gptq-4bit-32g-actorder_True" in hits[0].node.get_content()
    assert hits[0].score > hits[-1].score > 0


def test_query_engine_answers_from_the_docs_with_sources(retriever, settings_llm):
    engine = RetrieverQueryEngine.from_args(retriever)  # takes Settings.llm
    response = engine.query(QA_QUESTION)
    answer = str(response)
    assert "`gptq-4bit-32g-actorder_True` branch uses act-order" in answer
    assert "`main` branch has no act-order" in answer
    # the answer is what the docs say
    source = response.source_nodes[0].node
    assert source.metadata["file_name"] == "standin.md"
    assert "`gptq-4bit-32g-actorder_True` is 4-bit with group size 32 and\nact-order" in source.get_content()
    assert len(response.source_nodes) == QA_TOP_K


async def test_streaming_and_async_query_engines_give_the_same_answer(retriever, llm):
    expected = str(RetrieverQueryEngine.from_args(retriever, llm=llm).query(QA_QUESTION))
    streaming = RetrieverQueryEngine.from_args(retriever, llm=llm, streaming=True).query(QA_QUESTION)
    assert "".join(streaming.response_gen) == expected
    answer = await RetrieverQueryEngine.from_args(retriever, llm=llm).aquery(QA_QUESTION)
    assert str(answer) == expected
