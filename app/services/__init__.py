"""What each page needs, gathered from the sources with fallbacks: one module per page
(overview and its shared cache, flag detail, canary, phases). Pages and the CLI call
these; they never import Streamlit."""
