"""ornet: weakly supervised object localization (ORNet, ICCV 2021) and baselines."""

__version__ = "0.1.0"
