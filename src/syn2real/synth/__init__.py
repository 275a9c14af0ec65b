"""SynStreets: labelled synthetic street scenes rendered on the CPU, with no download.

`render_dataset` writes a dataset folder, `write_preview` a contact sheet of it; `sample_scene`, `render` and
`apply_style` are the steps of one frame, and `scene` has the pieces to build scenes by hand.
"""

from syn2real.synth.raster import render
from syn2real.synth.street import Knobs, sample_scene
from syn2real.synth.styles import STYLES, apply_style
from syn2real.synth.writer import RENDERER_VERSION, render_dataset, render_frame, write_preview

__all__ = ["Knobs", "RENDERER_VERSION", "STYLES", "apply_style", "render", "render_dataset", "render_frame",
           "sample_scene", "write_preview"]
