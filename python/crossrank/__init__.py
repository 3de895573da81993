"""crossrank: sentence-transformers' ``CrossEncoder``, in Rust, without PyTorch.

>>> from crossrank import CrossEncoder
>>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L12-v2")
>>> model.predict([("query", "passage")])
"""

from ._crossrank import SUPPORTED_MODEL_TYPES, __version__, release_memory
from ._threads import get_num_threads, set_num_threads
from .cross_encoder import CrossEncoder

__all__ = ["SUPPORTED_MODEL_TYPES", "CrossEncoder", "__version__", "get_num_threads",
           "release_memory", "set_num_threads"]
