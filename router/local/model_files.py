"""Find a sentence-transformers model on disk and read how it pools.

A model is a directory in the Hugging Face / sentence-transformers layout
(config.json, tokenizer.json, model.safetensors, modules.json, 1_Pooling/),
named either as a path or as `package:NAME` for a pip package that ships one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_FORMAT = 1  # bump when the exported graph changes, to invalidate caches


class ModelFilesError(ValueError):
    pass


@dataclass(frozen=True)
class ModelFiles:
    directory: Path
    pooling: str            # "mean" | "cls"
    normalize: bool
    max_tokens: int         # the model's own limit (sentence_bert_config.json)
    dimensions: int
    num_heads: int
    hidden_size: int
    uses_token_types: bool

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / "tokenizer.json"

    def export_key(self, quantize: str) -> str:
        """Names one exported graph: same weights and options -> same cache entry."""
        weights = self.directory / "model.safetensors"
        st = weights.stat()
        ident = (f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.pooling}|{self.normalize}|"
                 f"{quantize}|{EXPORT_FORMAT}")
        return hashlib.sha256(ident.encode()).hexdigest()[:16]


def resolve_directory(path: str) -> Path:
    if path.startswith("package:"):
        name = path.removeprefix("package:")
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ModelFilesError(f"package {name!r} is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        candidates = [root, *sorted(p.parent for p in root.rglob("config.json"))]
        for candidate in candidates:
            if (candidate / "config.json").is_file() and (candidate / "tokenizer.json").is_file():
                return candidate
        raise ModelFilesError(f"package {name!r} holds no model directory (config.json + tokenizer.json)")
    directory = Path(os.path.expanduser(path))
    if not directory.is_dir():
        raise ModelFilesError(f"{path!r} is not a directory")
    return directory


def load(path: str) -> ModelFiles:
    directory = resolve_directory(path)
    for required in ("config.json", "tokenizer.json"):
        if not (directory / required).is_file():
            raise ModelFilesError(f"{directory} has no {required}")
    config = _json(directory / "config.json")
    pooling_config = _json(directory / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
    if pooling_config.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif pooling_config.get("pooling_mode_mean_tokens", True):
        pooling = "mean"
    else:
        raise ModelFilesError(f"{directory}: only mean or CLS pooling is supported")
    modules = _json(directory / "modules.json", [])
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    st_config = _json(directory / "sentence_bert_config.json", {})
    max_tokens = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
    return ModelFiles(
        directory=directory,
        pooling=pooling,
        normalize=normalize,
        max_tokens=max_tokens,
        dimensions=int(pooling_config.get("word_embedding_dimension") or config["hidden_size"]),
        num_heads=int(config.get("num_attention_heads", 12)),
        hidden_size=int(config["hidden_size"]),
        uses_token_types=int(config.get("type_vocab_size", 0)) > 0,
    )


def _json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        if default is None:
            raise ModelFilesError(f"{path} is missing")
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFilesError(f"{path}: {exc}") from exc
