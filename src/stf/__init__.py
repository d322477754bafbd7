"""stf: To-a-T Spatio-Temporal Focus (Ke, Peng, Lyu, AAAI 2022) on the MS-G3D backbone."""

__version__ = "0.1.0"
