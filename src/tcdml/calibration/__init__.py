"""One global threshold for a FAR or FRR target, and how unequal it is across classes."""

from tcdml.calibration.threshold import CalibrationResult, RateSpread, calibrate, calibrate_counts

__all__ = ["CalibrationResult", "RateSpread", "calibrate", "calibrate_counts"]
