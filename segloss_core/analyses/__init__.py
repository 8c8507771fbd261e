"""What the pages show, computed without Streamlit: ``playground``, ``gradients``, ``landscape``,
``bias``, ``agreement``, ``optimise`` (what-if training), ``dataset`` (validation sets) and ``claims``
(the live numbers behind the app's and the README's statements). Imports from ``data`` and ``core``."""
