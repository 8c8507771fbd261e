"""Cases and where they come from: the ``Case`` (``case``), safe in-memory readers and writers for
uploads and folders (``files``), the prediction perturbations behind the sliders and landscapes
(``perturb``) and the built-in ground truths (``presets``). Imports only from ``core``."""
