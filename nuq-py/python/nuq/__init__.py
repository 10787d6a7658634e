"""nuq for Python: nuq's non-uniform quantizers, ``.nuq`` files and integer model.

Every function here runs nuq's own Rust code (the extension module ``nuq._nuq``), so the
codebooks, scales, thresholds and integer models are the ones the ``nuq`` command line makes.

* Codebooks and scales: :func:`fit_codebook`, :func:`calibrate_scale`.
* The weight quantizer: :func:`quantize_weights`; the activation quantizer:
  :func:`fit_activation`, with :func:`activation_codes` and :func:`nearest_indices` as the
  references of the float twin's rounding.
* Networks: :class:`Network` (nuq's models with torchvision names, loaded from a PyTorch
  ``state_dict``, or a float ONNX CNN imported with :meth:`Network.from_onnx`) and :class:`QuantizedNetwork` (nuq's float twin: quantizer tables by layer
  name, calibration, the fold into the integer model).
* The integer model: :class:`IntegerModel` (``.nuq`` read/write, integer-only inference).
* Data: :func:`load_dataset` (Fashion-MNIST / CIFAR-10 as nuq reads them).
* :mod:`nuq.torch`: fake-quantized PyTorch modules with nuq's tables, DDP-ready, and the
  export of a trained model to a ``.nuq`` file.
"""

from ._nuq import (  # noqa: F401
    IntegerModel,
    Network,
    NuqError,
    QuantizedNetwork,
    __version__,
    activation_codes,
    calibrate_scale,
    fit_activation,
    fit_codebook,
    load_dataset,
    nearest_indices,
    quantize_weights,
)

#: The default Fashion-MNIST location of the ``nuq`` command line (Debian's package).
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

__all__ = [
    "IntegerModel",
    "Network",
    "NuqError",
    "QuantizedNetwork",
    "activation_codes",
    "calibrate_scale",
    "fit_activation",
    "fit_codebook",
    "load_dataset",
    "nearest_indices",
    "quantize_weights",
    "FASHION_MNIST",
]
