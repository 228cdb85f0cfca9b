"""Export a model directory to an optimised ONNX graph, once, into a cache.

This is the only module that imports torch (and transformers), and only the
`embeddings-router export` command runs it; serving loads the cached graph
with ONNX Runtime alone. The graph takes input_ids, attention_mask (and
token_type_ids) and returns the pooled, optionally normalised sentence
embedding, so the serving side does no per-token work.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from router.local.model_files import ModelFiles


def cache_root() -> Path:
    base = os.environ.get("EMBEDDINGS_ROUTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "embeddings-router")
    return Path(base) / "onnx"


def exported_path(files: ModelFiles, quantize: str) -> Path:
    return cache_root() / files.export_key(quantize) / "model.onnx"


def ensure_exported(files: ModelFiles, quantize: str = "none") -> tuple[Path, bool]:
    """Return the cached graph's path, exporting it first if needed."""
    target = exported_path(files, quantize)
    if target.is_file():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        optimised = Path(tmp) / "optimised.onnx"
        _torch_export(files, raw)
        _optimise(files, raw, optimised)
        if quantize == "int8":
            quantised = Path(tmp) / "int8.onnx"
            _quantise_int8(optimised, quantised)
            optimised = quantised
        shutil.move(optimised, target)  # atomic within one filesystem: readers never see half a file
    return target, True


def _torch_export(files: ModelFiles, out: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(files.directory), attn_implementation="eager")
    model.eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            if files.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if files.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled

    ids = torch.ones((2, 16), dtype=torch.int64)
    inputs = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if files.uses_token_types else ())
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if files.uses_token_types else [])
    with torch.no_grad():
        torch.onnx.export(
            SentenceEmbedding(), inputs, str(out),
            input_names=names, output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "sentence_embedding": {0: "batch"}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )


def _optimise(files: ModelFiles, raw: Path, out: Path) -> None:
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=files.num_heads,
                                     hidden_size=files.hidden_size, opt_level=1)
    model.save_model_to_file(str(out))


def _quantise_int8(source: Path, out: Path) -> None:
    # Per-channel weights: the default per-tensor scheme loses too much (cosine min 0.88).
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused ops (Attention, SkipLayerNorm) defeat shape inference; their outputs are float.
    quantize_dynamic(str(source), str(out), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
