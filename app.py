"""segloss: Streamlit entry point. Routes to the pages in ``pages/`` with ``st.navigation``."""

import streamlit as st

st.set_page_config(page_title="segloss", page_icon="🩻", layout="wide")

PAGES = [
    st.Page("pages/playground.py", title="Playground", icon="🧪", default=True, url_path="playground"),
    st.Page("pages/gradients.py", title="Gradient maps", icon="🧭", url_path="gradients"),
    st.Page("pages/landscape.py", title="Loss landscapes", icon="⛰️", url_path="landscape"),
    st.Page("pages/bias.py", title="Region-size bias", icon="⚖️", url_path="bias"),
    st.Page("pages/agreement.py", title="Metric agreement", icon="🤝", url_path="agreement"),
    st.Page("pages/optimise.py", title="What-if training", icon="🏃", url_path="optimise"),
]

st.navigation(PAGES).run()
