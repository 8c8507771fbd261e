import streamlit as st

st.title("agreement")
st.info("This page is being built.")
