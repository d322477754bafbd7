"""The NTU RGB+D benchmark protocols as id rules (Shahroudy et al. 2016; Liu et al. 2019).

Used by `stf.data.splits` (which sample goes to train or test) and by `stf.data.synth.ids`
(so that every synthetic class has samples on both sides of every split).
"""

from __future__ import annotations

# NTU RGB+D 60 cross-subject: training performers (the other 20 are test).
NTU60_XSUB_TRAIN: frozenset[int] = frozenset([1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38])
# NTU RGB+D 120 cross-subject: the 20 above plus 33 more, 53 of the 106 performers.
NTU120_XSUB_TRAIN: frozenset[int] = NTU60_XSUB_TRAIN | frozenset(
    [45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
     89, 91, 92, 93, 94, 95, 97, 98, 100, 103]
)  # fmt: skip
# NTU RGB+D 60 cross-view: cameras 2 and 3 train, camera 1 test.
NTU60_XVIEW_TRAIN_CAMERAS: frozenset[int] = frozenset([2, 3])
# (NTU RGB+D 120 cross-setup needs no list: even setup ids train, odd ones test.)
# Id ranges of the two releases: setups S001-S017 / S001-S032, performers P001-P040 / P001-P106.
NTU_SETUPS = {"ntu60": range(1, 18), "ntu120": range(1, 33)}
NTU_PERFORMERS = {"ntu60": range(1, 41), "ntu120": range(1, 107)}
