"""Views: what a person looks at. Plotly figures (:mod:`~llmlab.views.plots`), the self-contained HTML report
(:mod:`~llmlab.views.report`) and the escaped static displays shared by the magic and the widgets
(:mod:`~llmlab.views.display`, also the one escaping and formatting module). Model output is untrusted: every
view shows it as text (DESIGN.md decision 6).
"""

from __future__ import annotations

__all__: list[str] = []
