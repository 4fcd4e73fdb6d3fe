"""The Gradio layer: layout (layout.py), event handlers (events.py) and static texts (texts.py).

Only wiring lives here; what a request does is in mtl_core (service.py, analysis.py, viz.py).
"""
from .layout import CSS, build_demo

__all__ = ["CSS", "build_demo"]
