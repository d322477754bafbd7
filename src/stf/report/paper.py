"""The numbers the paper publishes, for the report to print beside ours.

Source: Ke, Peng, Lyu, "Towards To-a-T Spatio-Temporal Focus for Skeleton-Based Action
Recognition", AAAI 2022 (Tables 2-5 and the text of its "Experimental Results" section).
All accuracies are top-1 in percent. Table 2 cells are keyed like the columns of
`results/table2.csv`: "<setting>:<cell>" with cell J (joint), B (bone) or J+B (fused);
`None` is the paper's "-" (not reported). The paper reports no top-5 accuracy.
"""

from __future__ import annotations

PAPER = "Ke, Peng, Lyu. Towards To-a-T Spatio-Temporal Focus for Skeleton-Based Action Recognition. AAAI 2022."

TABLE2_SETTINGS: tuple[str, ...] = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "kinetics")
CELLS: tuple[str, ...] = ("J", "B", "J+B")


def _row(values: tuple[float | None, ...]) -> dict[str, float | None]:
    keys = [f"{s}:{c}" for s in TABLE2_SETTINGS for c in CELLS]
    return dict(zip(keys, values, strict=True))


# Table 2. "MS-G3D (code)" is the authors' run of the public MS-G3D code, the baseline STF is
# built on and compared with; "MS-G3D (paper)" is what the MS-G3D paper reports.
TABLE2: dict[str, dict[str, float | None]] = {
    "MS-G3D (code)": _row(
        (88.77, 89.59, 90.67, 94.88, 94.86, 95.82, 82.35, 84.86, 86.42, 84.14, 86.79, 87.98, 35.74, 34.77, 37.23)
    ),
    "STF": _row(
        (91.34, 91.09, 92.47, 96.46, 96.51, 96.86, 85.06, 86.80, 88.85, 86.40, 88.86, 89.92, 38.20, 37.56, 39.87)
    ),
    "MS-G3D (paper)": _row(
        (89.40, 90.10, 91.50, 95.00, 95.30, 96.20, None, None, 86.90, None, None, 88.40, 35.80, 35.44, 38.00)
    ),
}

# Table 3 (Kinetics only): the gain of MS-G3D over 2s-AGCN, the gain of STF over MS-G3D (code),
# and their ratio ("3.8/1.9/2.3 times").
TABLE3_MSG3D_OVER_2SAGCN: dict[str, float] = {"J": 0.64, "B": 1.47, "J+B": 1.13}
TABLE3_STF_OVER_MSG3D: dict[str, float] = {"J": 2.46, "B": 2.79, "J+B": 2.64}
TABLE3_RATIO: dict[str, float] = {"J": 3.8, "B": 1.9, "J+B": 2.3}

# Table 4: NTU-60 x-sub, joint, trained on p% of the training set (p = 100: Table 2).
TABLE4: dict[str, dict[int, float]] = {
    "MS-G3D (code)": {10: 72.01, 20: 79.11, 25: 81.91, 100: 88.77},
    "STF": {10: 72.73, 20: 80.77, 25: 84.27, 100: 91.34},
}
# The text beside Table 4: 25% of Kinetics-400.
KINETICS_25: dict[str, dict[str, float]] = {
    "MS-G3D (code)": {"J": 24.69, "B": 25.22},
    "STF": {"J": 25.56, "B": 26.30},
}

# Table 5: ablation on NTU-60 x-sub, joint. M1 = MS-G3D, then + L_c, + L_d, + L_Gk, + L_e (= STF).
TABLE5: dict[str, float] = {"M1": 88.77, "M2": 89.33, "M3": 89.92, "M4": 90.65, "M5": 91.34}
TABLE5_LOSSES: dict[str, str] = {"M1": "", "M2": "L_c", "M3": "L_c + L_d", "M4": "L_c + L_d + L_Gk",
                                 "M5": "L_c + L_d + L_Gk + L_e"}  # fmt: skip

# Data shift: NTU-60 x-sub joint models frozen, a new 120-way head trained on NTU-120 x-sub joint.
SHIFT: dict[str, float] = {"MS-G3D (code)": 82.34, "STF": 83.38}

# "STF only uses 10% more FLOPs than MS-G3D".
FLOPS_RATIO: float = 1.10

# Figure 3 (NTU-60 x-sub joint), the per-class gains the text quotes, by 0-based NTU label.
FIGURE3_QUOTED: dict[int, tuple[str, float]] = {
    46: ("touch neck", 7.61),
    43: ("touch head", 4.71),
    16: ("take off a shoe", 7.30),
    15: ("wear a shoe", 3.66),
}
