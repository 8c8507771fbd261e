import streamlit as st

st.title("bias")
st.info("This page is being built.")
