"""Frugal's web app: a router. Each page is one file in app_pages/; evaluation logic lives in evaluator/.

Start it with ``streamlit run app.py`` (settings in .streamlit/config.toml: 127.0.0.1, headless, no usage stats).
"""

import streamlit as st

st.set_page_config(page_title="Frugal: good enough for how much energy?", page_icon=":material/eco:", layout="wide")

pages = [
    st.Page("app_pages/run.py", title="Run", icon=":material/play_circle:", default=True),
    st.Page("app_pages/frontier.py", title="Frontier", icon=":material/scatter_plot:", url_path="frontier"),
    st.Page("app_pages/items.py", title="Items", icon=":material/compare_arrows:", url_path="items"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]
st.navigation(pages, position="top").run()
