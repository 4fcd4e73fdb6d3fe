"""A component the page needs that Gradio lacks. Gradio writes a typing stub (components.pyi) beside any module
that defines a component class, when it is missing: it is committed, so importing this never writes a file."""
from __future__ import annotations

import gradio as gr
from gradio.data_classes import GradioModel

from gradio.events import Dependency

class HeadedLabel(gr.Label):
    """gr.Label whose heading may differ from its top class: "None of the 77 intents" above the closest
    intents of an out-of-scope sentence (gr.Label always heads with the most likely class)."""

    is_template = True  # drawn by gr.Label's front end

    def postprocess(self, value):
        if isinstance(value, GradioModel):  # a LabelData with its own heading (ui/events.py: label_value)
            return value
        return super().postprocess(value)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component