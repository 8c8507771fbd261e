"""segloss: Streamlit entry point. Routes to the pages in ``pages/`` with ``st.navigation`` and
draws the sidebar case builder that every page shares (``ui.case_builder``)."""

import streamlit as st

st.set_page_config(page_title="segloss", page_icon="🩻", layout="wide")

PAGES = [
    st.Page("pages/playground.py", title="Playground", icon=":material/science:", default=True, url_path="playground"),
    st.Page("pages/gradients.py", title="Gradient maps", icon=":material/explore:", url_path="gradients"),
    st.Page("pages/landscape.py", title="Loss landscapes", icon=":material/landscape:", url_path="landscape"),
    st.Page("pages/bias.py", title="Region-size bias", icon=":material/balance:", url_path="bias"),
    st.Page("pages/agreement.py", title="Metric agreement", icon=":material/handshake:", url_path="agreement"),
    st.Page("pages/optimise.py", title="What-if training", icon=":material/directions_run:", url_path="optimise"),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:", url_path="dataset"),
]

# st.navigation before the heavy imports: until its first call in a server process, Streamlit
# treats the pages/ folder as a legacy multipage app (see ui/pages_mode.py).
page = st.navigation(PAGES)

import torch  # noqa: E402

from ui import case_builder  # noqa: E402

torch.set_num_threads(1)  # one thread per server process: the machine's cores are shared

case_builder.render()
page.run()
