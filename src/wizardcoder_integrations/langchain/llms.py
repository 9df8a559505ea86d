"""WizardCoder as a LangChain text-completion model (``prompt | llm | parser``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict

from wizardcoder_integrations.chat.driver import Call, aevents, events
from wizardcoder_integrations.chat.reply import is_final
from wizardcoder_integrations.chat.settings import SAMPLING_KEYS
from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.langchain._common import WizardCoderSettings

__all__ = ["WizardCoderLLM"]

#: Prompts of one ``_generate`` call that are put in flight together (the engine batches them).
MAX_PARALLEL_PROMPTS = 64


class WizardCoderLLM(WizardCoderSettings, BaseLLM):
    """WizardCoder-Python (GPTQ) as a LangChain LLM: an instruction in, the model's answer out.

    Each prompt is wrapped in the card's Alpaca template (``raw=True`` sends it verbatim); the output is
    only the completion, never the prompt. Batches run as one engine batch. Weights load once per
    process, on first use; with ``base_url`` an OpenAI-compatible server (vLLM, TGI, ``wizardcoder serve``)
    generates instead::

        llm = WizardCoderLLM(model="TheBloke/WizardCoder-Python-13B-V1.0-GPTQ", max_tokens=256)
        llm = WizardCoderLLM(base_url="http://gpu-box:8000/v1", max_tokens=256)
        chain = PromptTemplate.from_template("Write a Python function that {task}.") | llm | StrOutputParser()
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not silently ignored

    raw: bool = False
    """Send prompts verbatim instead of wrapping them in the Alpaca template."""
    system: str | None = None
    """Text added after the template's preamble (ignored with ``raw=True``)."""

    @property
    def _llm_type(self) -> str:
        return "wizardcoder"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {**super()._identifying_params, "raw": self.raw, "system": self.system}

    # -- generation: one streaming primitive, everything else derived ------------------------------------
    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        for event in events(self._call(prompt, stop, kwargs)):
            chunk = _chunk(event)
            if chunk is None:
                continue
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, prompt: str, stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[GenerationChunk]:
        async for event in aevents(self._call(prompt, stop, kwargs)):
            chunk = _chunk(event)
            if chunk is None:
                continue
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(self, prompts: list[str], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        """Complete every prompt; all are in flight at once, so the engine decodes them as one batch.

        LangChain hands ``_generate`` only the first run's callback manager, so in a batch every prompt's
        tokens are reported there.
        """
        def complete(prompt: str) -> GenerationChunk:
            return _join(self._stream(prompt, stop, run_manager, **kwargs))

        if len(prompts) == 1:
            chunks = [complete(prompts[0])]
        else:
            with ThreadPoolExecutor(min(len(prompts), MAX_PARALLEL_PROMPTS),
                                    thread_name_prefix="wizardcoder-llm") as pool:
                chunks = list(pool.map(complete, prompts))
        return self._result(chunks, kwargs)

    async def _agenerate(self, prompts: list[str], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        async def complete(prompt: str) -> GenerationChunk:
            return _join([chunk async for chunk in self._astream(prompt, stop, run_manager, **kwargs)])

        chunks = await asyncio.gather(*(complete(p) for p in prompts))
        return self._result(list(chunks), kwargs)

    def _call(self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any]) -> Call:
        unknown = sorted(set(kwargs) - {"model", *SAMPLING_KEYS})
        if unknown:
            raise ConfigurationError(
                f"Unknown option(s) {unknown} for WizardCoderLLM; per-call options are "
                f"{sorted({'model', *SAMPLING_KEYS})}."
            )
        return Call(self.load_engine(kwargs.get("model")), prompt, self.sampling(kwargs, stop), raw=self.raw,
                    system=self.system, timeout=self.timeout, max_retries=self.max_retries)

    def _result(self, chunks: list[GenerationChunk], kwargs: dict[str, Any]) -> LLMResult:
        generations = [[Generation(text=c.text, generation_info=c.generation_info)] for c in chunks]
        usage = {key: sum((c.generation_info or {})["token_usage"][key] for c in chunks)
                 for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return LLMResult(generations=generations,
                         llm_output={"token_usage": usage, "model_name": self.served_model(kwargs.get("model"))})


def _chunk(event: Any) -> GenerationChunk | None:
    """One engine event as a text chunk (None for an empty delta); the final result carries finish and usage."""
    if not is_final(event):
        return GenerationChunk(text=event.text) if event.text else None
    usage = {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
             "total_tokens": event.prompt_tokens + event.completion_tokens}
    return GenerationChunk(text="", generation_info={
        "finish_reason": event.finish_reason, "stop_sequence": event.stop_sequence, "token_usage": usage})


def _join(chunks: Any) -> GenerationChunk:
    total: GenerationChunk | None = None
    for chunk in chunks:
        total = chunk if total is None else total + chunk
    if total is None or total.generation_info is None:
        raise GenerationError("The engine returned no output for this prompt.")
    return total
