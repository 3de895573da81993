"""crossrank: sentence-transformers' ``CrossEncoder``, in Rust, without PyTorch.

>>> from crossrank import CrossEncoder
>>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L12-v2")
>>> model.predict([("query", "passage")])

>>> import crossrank
>>> crossrank.patch()   # sentence_transformers.CrossEncoder is crossrank's, for frameworks
"""

from ._crossrank import SUPPORTED_MODEL_TYPES, __version__, release_memory
from ._patch import is_patched, patch, patched, unpatch
from ._threads import get_num_threads, set_num_threads
from .cross_encoder import CrossEncoder

__all__ = ["SUPPORTED_MODEL_TYPES", "CrossEncoder", "__version__", "get_num_threads",
           "is_patched", "patch", "patched", "release_memory", "set_num_threads", "unpatch"]
