"""Chat prompts for the response-attribute family: the built-in set, or a user's file."""
from __future__ import annotations

import itertools
import json
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

BUILTIN = Path(__file__).parent / "data" / "chat_prompts.yaml"


@dataclass(frozen=True)
class ChatPrompt:
    id: str
    """Stable id: the group and the prompt's index in it; splits hold out whole prompts by id."""
    group: str
    text: str


def expand_groups(groups: dict) -> list[ChatPrompt]:
    """Each template over the product of the slot values it uses, deduplicated, in a fixed order."""
    prompts: list[ChatPrompt] = []
    for group, spec in groups.items():
        seen: set[str] = set()
        for template in spec["templates"]:
            names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
            values = [spec.get("slots", {})[n] for n in names]
            for combo in itertools.product(*values):
                text = template.format(**dict(zip(names, combo)))
                if text not in seen:
                    seen.add(text)
                    prompts.append(ChatPrompt(id=f"{group}/{len(seen) - 1:03d}", group=group, text=text))
    return prompts


def load_prompts(source: str = "builtin") -> list[ChatPrompt]:
    """``builtin``, a YAML of groups like the built-in file, or a JSONL/text file (one prompt a line)."""
    path = BUILTIN if source == "builtin" else Path(source)
    if not path.exists():
        raise FileNotFoundError(f"prompt file {path} does not exist (attributes.prompts); use 'builtin' or a path")
    if path.suffix in (".yaml", ".yml"):
        return expand_groups(yaml.safe_load(path.read_text()))
    prompts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        text = json.loads(line)["prompt"] if path.suffix == ".jsonl" else line.strip()
        prompts.append(ChatPrompt(id=f"{path.stem}/{number:04d}", group=path.stem, text=text))
    if not prompts:
        raise ValueError(f"prompt file {path} holds no prompts")
    return prompts
