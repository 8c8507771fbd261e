import streamlit as st

st.title("optimise")
st.info("This page is being built.")
