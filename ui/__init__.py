"""The Gradio layer: layout (layout.py), event handlers (events.py), static texts (texts.py), the plotly
figures (figures.py) and one custom component (components.py).

Only wiring and drawing live here; what a request does is in mtl_core/serving (service.py, analysis.py).
"""
from .layout import CSS, build_demo

__all__ = ["CSS", "build_demo"]
