"""Settings of the LangChain classes on a scripted engine: custom token ids, validation, LangChain conventions."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="the 'langchain' extra is not installed")

from langchain_core.messages import HumanMessage

from contract.fakes import ScriptedEngine
from wizardcoder_integrations.chat.settings import DEFAULT_MAX_RETRIES
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM

CLASSES = [ChatWizardCoder, WizardCoderLLM]
REPLY = "def add(a, b):\n    return a + b"


@pytest.fixture
def engine() -> ScriptedEngine:
    """One character per token."""
    return ScriptedEngine(REPLY)


def words(text: str) -> list[int]:
    return list(range(len(text.split())))


@pytest.mark.parametrize("cls", CLASSES)
def test_custom_get_token_ids_is_used_when_set(engine, cls):
    model = cls(engine=engine, custom_get_token_ids=words)
    assert model.get_token_ids("def add ( a )") == [0, 1, 2, 3, 4]
    assert model.get_num_tokens("def add ( a )") == 5
    plain = cls(engine=engine)
    assert plain.get_token_ids("ab") == [ord("a"), ord("b")] and plain.get_num_tokens("ab") == 2


def test_custom_get_token_ids_counts_the_rendered_chat_prompt(engine):
    chat = ChatWizardCoder(engine=engine, custom_get_token_ids=words)
    messages = [HumanMessage("Add two numbers.")]
    prompt = chat.render(messages).prompt
    assert chat.get_num_tokens_from_messages(messages) == len(prompt.split())
    assert ChatWizardCoder(engine=engine).get_num_tokens_from_messages(messages) == len(prompt) + 1  # + BOS


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("setting", "message"), [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
    ({"max_tokens": 0}, "max_tokens must be >= 1"),
    ({"timeout": -1}, "timeout must be > 0"),
    ({"max_retries": -1}, "max_retries must be >= 0"),
    ({"max_retries": "many"}, "max_retries: Input should be a valid integer"),
    ({"stop": [""]}, "stop strings must be non-empty strings"),
    ({"stop": ["ok", 1]}, "stop strings must be non-empty strings"),
    ({"stop": 3}, "stop must be a string or a list of strings"),
])
def test_invalid_settings_are_configuration_errors(engine, cls, setting, message):
    with pytest.raises(ConfigurationError, match=message) as error:
        cls(engine=engine, **setting)
    assert str(error.value).startswith(f"Invalid {cls.__name__} settings: ")


@pytest.mark.parametrize("cls", CLASSES)
def test_max_retries_none_means_the_default_as_in_chat_openai(engine, cls):
    assert cls(engine=engine, max_retries=None).max_retries == DEFAULT_MAX_RETRIES == cls(engine=engine).max_retries


@pytest.mark.parametrize("cls", CLASSES)
def test_one_stop_string_is_a_list_of_one(engine, cls):
    model = cls(engine=engine, stop="return")
    assert model.stop == ["return"]
    assert "return" not in _text(model.invoke("Add."))
    assert _text(cls(engine=engine).invoke("Add.", stop="(")) == "def add"  # not split into characters


@pytest.mark.parametrize("cls", CLASSES)
def test_an_unknown_setting_names_the_valid_ones(engine, cls):
    with pytest.raises(ConfigurationError, match="temprature: unknown setting") as error:
        cls(engine=engine, temprature=0)
    assert "did you mean 'temperature'?" in str(error.value)
    assert "Valid settings: " in str(error.value) and "max_retries" in str(error.value)


def _text(output: object) -> str:
    return output if isinstance(output, str) else output.content  # type: ignore[attr-defined]
