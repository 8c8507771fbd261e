"""Plotly figure builders: pure functions of arrays/results, no Streamlit. One module per page."""
