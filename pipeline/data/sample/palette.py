"""What each class looks like at noon: base colours of its parts, texture mix, colour variation.

A global style (styles.py) then moves all of these together. The tables are indexed by
`part * NUM_CLASSES + label`, so one lookup paints a label map and its part map at once.
"""

from __future__ import annotations

import numpy as np

from ...core.classes import CLASS_ID, NUM_CLASSES

SKY, MOUNTAIN, HILL = CLASS_ID["sky"], CLASS_ID["mountain"], CLASS_ID["hill"]
SEA, LAKE, RIVER = CLASS_ID["sea"], CLASS_ID["lake"], CLASS_ID["river"]
GRASS, FIELD, EARTH, SAND = CLASS_ID["grass"], CLASS_ID["field"], CLASS_ID["earth"], CLASS_ID["sand"]
TREE, ROCK, PATH, ROAD = CLASS_ID["tree"], CLASS_ID["rock"], CLASS_ID["path"], CLASS_ID["road"]
BUILDING, HOUSE, BOAT = CLASS_ID["building"], CLASS_ID["house"], CLASS_ID["boat"]

NUM_PARTS = 4  # sub-parts of a class with their own colour: 0 main, 1 lit/roof/trunk, 2 snow/windows

# Base colours (noon light) of each class's parts, RGB 0..1.
COLOURS: dict[int, tuple] = {
    MOUNTAIN: ((0.42, 0.42, 0.48), (0.58, 0.56, 0.58), (0.94, 0.95, 0.98)),  # shade, lit, snow
    SKY: ((0.5, 0.7, 0.9),),  # drawn from the style's gradient instead
    SEA: ((0.08, 0.27, 0.48), (0.85, 0.90, 0.92)),  # water, foam
    LAKE: ((0.12, 0.36, 0.40),),
    RIVER: ((0.30, 0.44, 0.42),),
    ROCK: ((0.45, 0.43, 0.40), (0.62, 0.60, 0.56)),  # rock, lit facet
    TREE: ((0.13, 0.30, 0.12), (0.30, 0.21, 0.12)),  # crown, trunk
    EARTH: ((0.46, 0.35, 0.24),),
    HILL: ((0.30, 0.44, 0.26),),
    SAND: ((0.88, 0.80, 0.60),),
    GRASS: ((0.35, 0.58, 0.20),),
    FIELD: ((0.80, 0.70, 0.32),),
    PATH: ((0.70, 0.60, 0.46),),
    ROAD: ((0.26, 0.26, 0.28), (0.90, 0.88, 0.80)),  # asphalt, centre line
    BUILDING: ((0.74, 0.72, 0.68), (0.40, 0.40, 0.44), (0.20, 0.24, 0.30)),  # wall, roof, windows
    HOUSE: ((0.92, 0.86, 0.74), (0.62, 0.22, 0.16), (0.22, 0.18, 0.16)),
    BOAT: ((0.80, 0.20, 0.16), (0.96, 0.96, 0.94)),  # hull, sail
}
# Texture amplitudes per class: fine, medium, coarse, horizontal streaks, stripes, ridged.
TEXTURE: dict[int, tuple] = {
    MOUNTAIN: (0.04, 0.06, 0.10, 0.00, 0.00, 0.14),
    SEA: (0.03, 0.03, 0.04, 0.22, 0.00, 0.00),
    LAKE: (0.02, 0.02, 0.04, 0.06, 0.00, 0.00),
    RIVER: (0.06, 0.05, 0.03, 0.08, 0.00, 0.00),
    ROCK: (0.10, 0.08, 0.05, 0.00, 0.00, 0.10),
    TREE: (0.12, 0.30, 0.08, 0.00, 0.00, 0.00),
    EARTH: (0.14, 0.08, 0.08, 0.00, 0.00, 0.00),
    HILL: (0.04, 0.10, 0.12, 0.00, 0.00, 0.00),
    SAND: (0.05, 0.03, 0.06, 0.03, 0.00, 0.00),
    GRASS: (0.16, 0.06, 0.10, 0.00, 0.00, 0.00),
    FIELD: (0.04, 0.04, 0.06, 0.00, 0.20, 0.00),
    PATH: (0.10, 0.05, 0.04, 0.00, 0.00, 0.00),
    ROAD: (0.06, 0.02, 0.03, 0.00, 0.00, 0.00),
    BUILDING: (0.03, 0.02, 0.03, 0.00, 0.00, 0.00),
    HOUSE: (0.03, 0.02, 0.03, 0.00, 0.00, 0.00),
    BOAT: (0.02, 0.00, 0.00, 0.00, 0.00, 0.00),
}
# Colour variation (added along this RGB direction times coarse noise): grass with dry patches...
HUE_VAR: dict[int, tuple] = {
    GRASS: (0.10, 0.06, -0.04),
    FIELD: (0.06, 0.04, -0.02),
    TREE: (0.04, 0.05, 0.00),
    HILL: (0.05, 0.04, 0.00),
    EARTH: (0.06, 0.03, 0.00),
    MOUNTAIN: (0.04, 0.03, 0.02),
    SEA: (0.00, 0.05, 0.04),
}
# Water mirrors the sky by this much: the strongest carrier of a scene's style on the ground.
REFLECT = {SEA: 0.30, LAKE: 0.40, RIVER: 0.22}
# Haze multiplier per class (distant classes fade most towards the sky's horizon colour).
_HAZE = {MOUNTAIN: 1.0, HILL: 0.7, SKY: 0.0}
HAZE_TABLE = np.array([[_HAZE.get(c, 0.6)] for c in range(NUM_CLASSES)], np.float32)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables indexed by `part * 29 + label`: base colour, texture mix, hue variation."""
    n = NUM_PARTS * NUM_CLASSES
    colour = np.full((n, 3), 0.5, np.float32)
    texture = np.zeros((n, 6), np.float32)
    hue = np.zeros((n, 3), np.float32)
    for cls, parts in COLOURS.items():
        for p in range(NUM_PARTS):
            colour[p * NUM_CLASSES + cls] = parts[min(p, len(parts) - 1)]
            texture[p * NUM_CLASSES + cls] = TEXTURE.get(cls, (0.03, 0, 0, 0, 0, 0))
            hue[p * NUM_CLASSES + cls] = HUE_VAR.get(cls, (0, 0, 0))
    # Snow, foam, sails, windows and centre lines are plain: little texture.
    for cls, p in ((MOUNTAIN, 2), (SEA, 1), (BOAT, 1), (ROAD, 1), (HOUSE, 2), (BUILDING, 2)):
        texture[p * NUM_CLASSES + cls] = (0.03, 0.02, 0.0, 0.0, 0.0, 0.0)
    return colour, texture, hue


COLOUR_TABLE, TEXTURE_TABLE, HUE_TABLE = _tables()
