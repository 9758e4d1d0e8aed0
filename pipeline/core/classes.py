"""The competition's 29 classes; a label map's pixel value is the index into CLASS_NAMES."""

CLASS_NAMES = (
    "mountain", "sky", "water", "sea", "rock", "tree", "earth", "hill", "river", "sand",
    "land", "building", "grass", "plant", "person", "boat", "waterfall", "wall", "pier", "path",
    "lake", "bridge", "field", "road", "railing", "fence", "ship", "house", "other",
)
NUM_CLASSES = len(CLASS_NAMES)
CLASS_ID = {name: i for i, name in enumerate(CLASS_NAMES)}

assert NUM_CLASSES == 29
