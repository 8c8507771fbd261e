"""The numerical core: validation and size caps (``_tensors``, ``limits``), ``LossSpec`` / ``ParamSpec``
(``spec``), soft confusion tables (``stats``), distance maps (``distance``), surface and overlap
metrics (``metrics``), the losses (``losses/``) and their ``registry``, the one evaluation ``engine``
and the peers' settings as parameter sets (``conventions``). Imports nothing from the other packages."""
