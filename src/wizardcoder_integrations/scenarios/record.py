"""Record every (prompt, response) pair the stand-in learns into ``standin/data/*.jsonl``.

Run ``make standin-data`` (``python -m wizardcoder_integrations.scenarios.record``) after changing a scenario,
the prompt template, the adapters' rendering or ``docs/`` (the query-engine example retrieves from it).
Recording needs the ``langchain``, ``llama-index`` and ``eval`` extras; the stand-in's builder then needs none.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

from wizardcoder_integrations.chat.template import format_instruction

__all__ = ["DATA_DIR", "REGENERATE", "SOURCES", "dumps", "record", "write"]

logger = logging.getLogger(__name__)

#: Where the builder reads the recorded data (package data of ``wizardcoder_integrations.standin``).
DATA_DIR = Path(__file__).resolve().parents[1] / "standin" / "data"
#: The command that rewrites the files.
REGENERATE = "make standin-data"


def _code_tasks() -> list[tuple[str, str]]:
    from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

    return [(format_instruction(t.instruction), t.response) for t in CODE_TASKS]


def _repair() -> list[tuple[str, str]]:
    from wizardcoder_integrations.scenarios.repair import repair_examples

    return repair_examples()


def _humaneval() -> list[tuple[str, str]]:
    from wizardcoder_integrations.scenarios.humaneval import eval_examples

    return eval_examples()


def _tool_calls() -> list[tuple[str, str]]:
    from wizardcoder_integrations.scenarios.tool_calls import tool_examples

    return tool_examples()


def _llama_index_agents() -> list[tuple[str, str]]:
    from wizardcoder_integrations.scenarios.llama_index_agents import agent_examples

    return agent_examples()


#: File stem -> the function that produces its pairs.
SOURCES: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "code_tasks": _code_tasks,
    "repair": _repair,
    "humaneval": _humaneval,
    "tool_calls": _tool_calls,
    "llama_index_agents": _llama_index_agents,
}


def dumps(pairs: list[tuple[str, str]]) -> str:
    """The JSONL text of ``pairs``: one ``{"prompt", "response"}`` object per line."""
    return "".join(json.dumps({"prompt": p, "response": r}, ensure_ascii=False, sort_keys=True) + "\n"
                   for p, r in pairs)


def record() -> dict[str, str]:
    """File name -> JSONL text, produced with the installed frameworks now."""
    return {f"{stem}.jsonl": dumps(produce()) for stem, produce in SOURCES.items()}


def write(directory: Path = DATA_DIR) -> list[Path]:
    """Record and write the files that changed; returns them."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in record().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DATA_DIR, help="where to write the JSONL files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    changed = write(args.dir)
    for path in changed:
        logger.info("rewrote %s", path)
    logger.info("%d of %d files changed", len(changed), len(SOURCES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
