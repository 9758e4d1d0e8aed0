"""The built-in sample dataset: procedural landscape label maps and matching photo-like images.

`landscape sample-data --out DIR --train N --test M --seed S` writes the competition's layout
(write.py). Scenes (coast, lake, countryside, river valley, alpine; scenes.py, a registry of draw
functions over the primitives in shapes.py) are drawn back to front: sky, mountains, hills, water
with a horizon, ground (grass, fields, earth, sand), rivers, paths and roads, houses and buildings,
trees, rocks and boats: 17 classes in all.

Each class has its own colour and texture family (palette.py), and each scene draws one global
style (styles.py: dawn, noon, golden hour, dusk, overcast, autumn, misty) that moves every class's
colour together (render.py), so a reference photo's style is both learnable and measurable, and
each class stays recognisable within any style. The generator knows every photo's style
(train/styles.json), so it can paint any map in its reference's style: the style oracle
(oracle.py), the ceiling of the style term.

Image `i` of a split depends only on (seed, split, i): the same seed gives identical bytes, and
a smaller dataset is a prefix of a larger one with the same seed.
"""

from .oracle import read_styles_json, run_style_oracle, write_style_oracle
from .render import render_in_style, render_photo
from .scenes import SCENES, make_scene, register_scene
from .styles import STYLE_NAMES, STYLES, Style, style_by_name
from .write import STYLES_JSON, sample_pair, write_sample_dataset

__all__ = [
    "SCENES", "STYLES", "STYLE_NAMES", "STYLES_JSON", "Style", "make_scene", "register_scene",
    "read_styles_json", "render_in_style", "render_photo", "run_style_oracle", "sample_pair",
    "style_by_name", "write_sample_dataset", "write_style_oracle",
]
