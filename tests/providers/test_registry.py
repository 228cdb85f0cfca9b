"""The registry, and the README's providers example: a valid config naming every kind."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from router.config import parse
from router.providers import KINDS
from tests.conftest import config_dict

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_is_valid_and_names_every_kind():
    block = re.search(r"<!-- providers-example:start -->\n```yaml\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README lost its providers example"
    example = yaml.safe_load(block.group(1))
    raw = config_dict("http://127.0.0.1:9")
    raw["providers"], raw["models"] = example["providers"], example["models"]
    env = {name: "sk-readme-example" for name in re.findall(r"\$\{(\w+)\}", block.group(1))}
    config = parse(yaml.safe_dump(raw), env=env)
    assert {p.kind for p in config.providers.values()} == set(KINDS)
