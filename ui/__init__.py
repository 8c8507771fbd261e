"""Streamlit-side helpers shared by the pages: session state, the sidebar case builder, error
boundaries and cached wrappers around segloss_core. Widgets and layout only; no numerics."""
