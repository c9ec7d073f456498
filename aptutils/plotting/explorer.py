"""A searchable, sortable table in the rendered book, offline: ITables (DataTables) with its
JavaScript embedded in the page, no CDN. Used by chapter 4's token explorer."""
from __future__ import annotations

import pandas as pd


def interactive_table(table: pd.DataFrame, caption: str) -> None:
    """Display `table` as an interactive table (search box, sorting, paging); the library's code
    is embedded in the output (offline), every row kept (no downsampling)."""
    import itables

    itables.init_notebook_mode(all_interactive=False, connected=False)
    itables.show(table, caption=caption, maxBytes=0, display_logo_when_loading=False,
                 scrollX=True, pageLength=15, lengthMenu=[15, 50, 200], showIndex=False,
                 classes="display compact nowrap")
