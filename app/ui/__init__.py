"""Shared Streamlit widgets and the screens' display frames (`widgets`, `action_dialog`,
`overview_table`, ...). Import the module you need: this package exports nothing, so
importing one light module never loads pandas or the page services. Pure text
formatting lives below the pages, in `app.text`."""

__all__: list[str] = []
