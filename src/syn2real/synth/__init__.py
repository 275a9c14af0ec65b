"""SynStreets: labelled synthetic street scenes rendered on the CPU, with no download.

`render_dataset` writes a dataset folder, `write_preview` a contact sheet of it (`write_sheet` one of frames
rendered straight away); `sample_scene`, `render` and `apply_look` (or `apply_style`) are the steps of one
frame, and `scene` has the pieces to build scenes by hand. `load_randomization` reads a randomisation file
(structured domain randomisation: every knob's range in one YAML file; see `randomize`).
"""

from syn2real.synth.raster import render
from syn2real.synth.street import Knobs, sample_scene
from syn2real.synth.styles import STYLES, apply_style
from syn2real.synth.look import Look, apply_look
from syn2real.synth.randomize import Randomization, load_randomization
from syn2real.synth.writer import RENDERER_VERSION, render_dataset, render_frame, write_preview, write_sheet

__all__ = ["Knobs", "Look", "RENDERER_VERSION", "Randomization", "STYLES", "apply_look", "apply_style",
           "load_randomization", "render", "render_dataset", "render_frame", "sample_scene", "write_preview",
           "write_sheet"]
