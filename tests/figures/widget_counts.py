"""How many controls of each kind a widget tree holds: the browser test compares them with what renders."""
import ipywidgets as widgets


def count_widgets(widget):
    """How many sliders, buttons, dropdowns, checkboxes, text boxes and images a widget tree holds.

    The browser test compares these counts with the elements JupyterLab renders.
    """
    kinds = {"slider": (widgets.IntSlider, widgets.FloatSlider, widgets.SelectionSlider),
             "button": (widgets.Button,), "dropdown": (widgets.Dropdown,), "checkbox": (widgets.Checkbox,),
             "text": (widgets.Text,), "image": (widgets.Image,)}
    counts = dict.fromkeys(kinds, 0)
    stack = [widget]
    while stack:
        w = stack.pop()
        for kind, classes in kinds.items():
            if isinstance(w, classes):
                counts[kind] += 1
        stack.extend(getattr(w, "children", ()))
    return counts
