"""Action class names: NTU RGB+D 120 (A001..A120; NTU-60 is the first 60) and Kinetics-400.

`NTU_ACTIONS[label]` is the name of action `A{label + 1:03d}` as listed in the official dataset
README (github.com/shahroudy/NTURGB-D), with typographic apostrophes written as ASCII and the
stray trailing ". " of A049/A083 dropped. `KINETICS400_ACTIONS` (`stf.data.kinetics_classes`)
holds the 400 Kinetics names by `label_index`. `action_name(dataset, label)` maps a 0-based
label to a name for any dataset; a caller may pass its own `names` mapping (synthetic classes).
"""

from __future__ import annotations

from collections.abc import Mapping

from stf.data.kinetics_classes import KINETICS400_ACTIONS

__all__ = ["NTU_ACTIONS", "action_name", "class_names", "num_classes", "synthetic_name"]

NTU_ACTIONS: tuple[str, ...] = (
    "drink water",
    "eat meal/snack",
    "brushing teeth",
    "brushing hair",
    "drop",
    "pickup",
    "throw",
    "sitting down",
    "standing up (from sitting position)",
    "clapping",
    "reading",
    "writing",
    "tear up paper",
    "wear jacket",
    "take off jacket",
    "wear a shoe",
    "take off a shoe",
    "wear on glasses",
    "take off glasses",
    "put on a hat/cap",
    "take off a hat/cap",
    "cheer up",
    "hand waving",
    "kicking something",
    "put something inside pocket / take out something from pocket",
    "hopping (one foot jumping)",
    "jump up",
    "make a phone call/answer phone",
    "playing with phone/tablet",
    "typing on a keyboard",
    "pointing to something with finger",
    "taking a selfie",
    "check time (from watch)",
    "rub two hands together",
    "nod head/bow",
    "shake head",
    "wipe face",
    "salute",
    "put the palms together",
    "cross hands in front (say stop)",
    "sneeze/cough",
    "staggering",
    "falling",
    "touch head (headache)",
    "touch chest (stomachache/heart pain)",
    "touch back (backache)",
    "touch neck (neckache)",
    "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person",
    "kicking other person",
    "pushing other person",
    "pat on back of other person",
    "point finger at the other person",
    "hugging other person",
    "giving something to other person",
    "touch other person's pocket",
    "handshaking",
    "walking towards each other",
    "walking apart from each other",
    "put on headphone",
    "take off headphone",
    "shoot at the basket",
    "bounce ball",
    "tennis bat swing",
    "juggling table tennis balls",
    "hush (quite)",
    "flick hair",
    "thumb up",
    "thumb down",
    "make ok sign",
    "make victory sign",
    "staple book",
    "counting money",
    "cutting nails",
    "cutting paper (using scissors)",
    "snapping fingers",
    "open bottle",
    "sniff (smell)",
    "squat down",
    "toss a coin",
    "fold paper",
    "ball up paper",
    "play magic cube",
    "apply cream on face",
    "apply cream on hand back",
    "put on bag",
    "take off bag",
    "put something into a bag",
    "take something out of a bag",
    "open a box",
    "move heavy objects",
    "shake fist",
    "throw up cap/hat",
    "hands up (both hands)",
    "cross arms",
    "arm circles",
    "arm swings",
    "running on the spot",
    "butt kicks (kick backward)",
    "cross toe touch",
    "side kick",
    "yawn",
    "stretch oneself",
    "blow nose",
    "hit other person with something",
    "wield knife towards other person",
    "knock over other person (hit with body)",
    "grab other person's stuff",
    "shoot at other person with a gun",
    "step on foot",
    "high-five",
    "cheers and drink",
    "carry something with other person",
    "take a photo of other person",
    "follow other person",
    "whisper in other person's ear",
    "exchange things with other person",
    "support somebody with one's hand (someone is sick, help him to walk)",
    "finger-guessing game (playing rock-paper-scissors)",
)

_NUM_CLASSES = {"ntu60": 60, "ntu120": 120, "kinetics": 400}


def num_classes(dataset: str) -> int:
    """Classes of the real dataset: 60 (NTU-60), 120 (NTU-120), 400 (Kinetics-400)."""
    try:
        return _NUM_CLASSES[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(_NUM_CLASSES)}") from None


def action_name(dataset: str, label: int, names: Mapping[int, str] | None = None) -> str:
    """Name of 0-based `label` in `dataset`.

    NTU: the official name (label 0 = A001 "drink water"); Kinetics: the Kinetics-400 name
    (label 0 = "abseiling"). A label outside the dataset's classes raises ValueError.
    `names[label]`, when given and known, overrides both (e.g. synthetic class sets).
    """
    n = num_classes(dataset)
    if not 0 <= int(label) < n:
        raise ValueError(f"label {label} outside 0..{n - 1} for dataset {dataset!r}")
    if names is not None and int(label) in names:
        return names[int(label)]
    if dataset == "kinetics":
        return KINETICS400_ACTIONS[int(label)]
    return NTU_ACTIONS[int(label)]


def synthetic_name(label: int) -> str:
    """The name `stf synth` gives class `label` (its Kinetics label files say the same)."""
    return f"synthetic class {int(label)}"


def class_names(dataset: str, num_class: int, synthetic: bool) -> list[str]:
    """Names of labels 0..num_class-1: the real dataset's, or `synthetic_name` for data of `stf synth`."""
    if synthetic:
        return [synthetic_name(k) for k in range(num_class)]
    return [action_name(dataset, k) for k in range(num_class)]
